import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Event } from '../../protocol/index.js';
import { REVIEW_INSTRUCTIONS, SUMMARY_PROMPT } from '../../actors/tasks/index.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import { initRepo } from '../support/git-repo.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { inputTexts } from '../../testing/requests.js';
import { waitFor } from '../support/wait.js';

/**
 * Every task kind, seen from a client of `troupe app-server`: each task is announced by exactly
 * one `task_started` and closed by exactly one `task_complete` or `turn_aborted`, in that order,
 * under the id of the submission that started it; an interrupted task ends with `turn_aborted`
 * and no `task_complete`.
 */

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

const LIFECYCLE = new Set(['task_started', 'task_complete', 'turn_aborted']);
const isReview = (r: RecordedRequest) => r.body.instructions === REVIEW_INSTRUCTIONS;
const isSummary = (r: RecordedRequest) => inputTexts(r).at(-1) === SUMMARY_PROMPT;
const say = (text: string, match?: (r: RecordedRequest) => boolean): ScriptStep => ({
  kind: 'response',
  items: [{ type: 'message', text }],
  ...(match ? { match } : {}),
});

const gitRepo = () => initRepo(workspace, { 'app.js': 'export const answer = 41;\n' });

/**
 * The lifecycle events of task `id`, once the session has shut down: every event the session
 * sent for the task is then on stdout, so a count is final.
 */
async function lifecycle(session: string, id: string): Promise<Event[]> {
  server.submit({ type: 'shutdown' }, session);
  await server.waitForMsg('shutdown_complete', { session });
  const events = server.ofSession(session).filter((e) => LIFECYCLE.has(e.msg.type) && 'turn_id' in e.msg && e.msg.turn_id === id);
  for (const event of events) expect(event.id).toBe(id);
  return events;
}

const types = (events: readonly Event[]) => events.map((e) => e.msg.type);
/** The types of the session's events for submission `id`, in order. */
const eventsFor = (session: string, id: string) => types(server.ofSession(session).filter((e) => e.id === id));

describe('every task kind is started once and ended once', () => {
  it('a turn', async () => {
    model.enqueue(say('done'));
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'hello' }] }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
  });

  it('a review', async () => {
    await gitRepo();
    model.enqueue(say('Nothing to report.', isReview));
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'review', review_request: { target: { type: 'commit', sha: 'HEAD' } } }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
    const own = eventsFor(session, id);
    expect(own.indexOf('task_started')).toBeLessThan(own.indexOf('entered_review_mode'));
    expect(own.indexOf('exited_review_mode')).toBeLessThan(own.indexOf('task_complete'));
  });

  it('a review whose target cannot be resolved: started, then its error, then complete', async () => {
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'review', review_request: { target: { type: 'base_branch', branch: 'main' } } }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
    expect(eventsFor(session, id)).toEqual(['task_started', 'error', 'task_complete']);
  });

  it('a compaction', async () => {
    model.enqueue(
      say('an answer', (r) => !isSummary(r)),
      say('THE SUMMARY', isSummary),
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'a question');
    const id = server.submit({ type: 'compact' }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
    expect(eventsFor(session, id)).toEqual(['task_started', 'context_compacted', 'task_complete']);
  });

  it('an undo', async () => {
    await gitRepo();
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'undo' }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
    expect(eventsFor(session, id)).toEqual(['task_started', 'undo_started', 'undo_completed', 'task_complete']);
  });

  it("a user's shell command", async () => {
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'run_user_shell_command', command: 'echo from-the-user' }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
    const own = eventsFor(session, id);
    expect(own[0]).toBe('task_started');
    expect(own.indexOf('exec_command_end')).toBeLessThan(own.indexOf('task_complete'));
  });
});

describe('an interrupted task ends with turn_aborted and no task_complete', () => {
  it('a turn waiting for the model', async () => {
    model.enqueue({ kind: 'hang' });
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'think forever' }] }, session);
    await server.waitForMsg('task_started', { session, id });
    await waitFor(() => model.requests.length > 0, 'the model request');
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'turn_aborted']);
  });

  it('a review', async () => {
    await gitRepo();
    model.enqueue({ kind: 'hang', match: isReview });
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'review', review_request: { target: { type: 'custom', instructions: 'Check everything.' } } }, session);
    await server.waitForMsg('entered_review_mode', { session, id });
    await waitFor(() => model.requests.some(isReview), 'the review request');
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'turn_aborted']);
    const own = eventsFor(session, id);
    expect(own.indexOf('exited_review_mode')).toBeLessThan(own.indexOf('turn_aborted'));
  });

  it('a compaction', async () => {
    model.enqueue(
      say('an answer', (r) => !isSummary(r)),
      { kind: 'hang', match: isSummary },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'a question');
    const id = server.submit({ type: 'compact' }, session);
    await server.waitForMsg('task_started', { session, id });
    await waitFor(() => model.requests.some(isSummary), 'the summary request');
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'turn_aborted']);
  });

  it("a user's shell command: it is killed, and what it printed is still reported", async () => {
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'run_user_shell_command', command: 'echo started; exec sleep 600' }, session);
    await server.waitForMsg('exec_command_output_delta', { session, where: (msg) => msg.chunk.includes('started') });
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'turn_aborted']);
    const own = eventsFor(session, id);
    expect(own.indexOf('exec_command_end')).toBeLessThan(own.indexOf('turn_aborted'));
  });

  it('an undo is not stopped half-way: interrupted or not, it completes', async () => {
    await gitRepo();
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'undo' }, session);
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'task_complete']);
  });

  it('a shutdown during a task aborts it before the session ends', async () => {
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'run_user_shell_command', command: 'echo started; exec sleep 600' }, session);
    await server.waitForMsg('exec_command_output_delta', { session, where: (msg) => msg.chunk.includes('started') });
    expect(types(await lifecycle(session, id))).toEqual(['task_started', 'turn_aborted']);
    const all = types(server.ofSession(session));
    expect(all.indexOf('turn_aborted')).toBeLessThan(all.indexOf('shutdown_complete'));
  });
});
