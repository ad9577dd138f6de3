import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REVIEW_INSTRUCTIONS, SUMMARY_PROMPT } from '../../actors/tasks/index.js';
import { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import { initRepo } from '../support/git-repo.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { inputTexts, mentions, outputFor } from '../../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

const git = (...args: string[]) => execFileSync('git', args, { cwd: workspace, encoding: 'utf8' });
const gitRepo = () => initRepo(workspace, { 'app.js': 'export const answer = 41;\n' });

const say = (text: string, match?: (r: RecordedRequest) => boolean): ScriptStep => ({
  kind: 'response',
  items: [{ type: 'message', text }],
  ...(match ? { match } : {}),
});
const isReview = (r: RecordedRequest) => r.body.instructions === REVIEW_INSTRUCTIONS;
const isSummary = (r: RecordedRequest) => inputTexts(r).at(-1) === SUMMARY_PROMPT;
const lastText = (r: RecordedRequest) => inputTexts(r).at(-1) ?? '';

const FINDINGS = {
  findings: [
    {
      title: 'Off-by-one answer',
      body: 'The answer should be 42.',
      confidence_score: 0.9,
      priority: 1,
      code_location: { absolute_file_path: '/x/app.js', line_range: { start: 1, end: 1 } },
    },
  ],
  overall_correctness: 'patch is incorrect',
  overall_explanation: 'The constant is wrong.',
  overall_confidence_score: 0.8,
};

describe('review', () => {
  it('runs isolated from the parent, and the parent keeps the findings', async () => {
    await gitRepo();
    await writeFile(join(workspace, 'app.js'), 'export const answer = 43;\n');
    model.enqueue(say('PARENT ANSWER', (r) => !isReview(r)));
    const session = await server.newSession({ cwd: workspace, developer_instructions: 'PARENT DEVELOPER TEXT' });
    await server.turn(session, 'PARENT QUESTION');

    model.enqueue(say(JSON.stringify(FINDINGS), isReview));
    const id = server.submit({ type: 'review', review_request: { target: { type: 'uncommitted_changes' } } }, session);
    const exited = await server.waitForMsg('exited_review_mode', { session, id });
    expect(exited.msg.review_output).toEqual(FINDINGS);
    const done = await server.waitForMsg('task_complete', { session, id });
    expect(done.msg.last_agent_message).toContain('Off-by-one answer');
    const types = server
      .ofSession(session)
      .filter((e) => e.id === id)
      .map((e) => e.msg.type);
    expect(types.indexOf('entered_review_mode')).toBeLessThan(types.indexOf('exited_review_mode'));

    const review = model.requests.find(isReview)!;
    const reviewText = JSON.stringify(review.body.input);
    expect(reviewText).not.toContain('PARENT');
    expect(reviewText, reviewText).toContain('answer = 43');
    expect(review.body.tools as { name: string }[]).not.toContainEqual(expect.objectContaining({ name: 'spawn_agent' }));
    expect(JSON.stringify(review.body.text)).toContain('json_schema');

    model.enqueue(say('I will fix it', (r) => !isReview(r)));
    await server.turn(session, 'fix the review issues');
    const next = model.requests.at(-1)!;
    expect(inputTexts(next).join('\n')).toContain('Off-by-one answer');
    expect(JSON.stringify(next.body.input)).not.toContain('answer = 43');
  });

  it('falls back to the plain text when the reviewer does not answer in JSON', async () => {
    await gitRepo();
    model.enqueue(say('Looks fine to me, nothing to report.', isReview));
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'review', review_request: { target: { type: 'commit', sha: 'HEAD' } } }, session);
    const exited = await server.waitForMsg('exited_review_mode', { session, id });
    expect(exited.msg.review_output).toMatchObject({ findings: [], overall_explanation: 'Looks fine to me, nothing to report.' });
  });

  it('says so when the target cannot be resolved', async () => {
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'review', review_request: { target: { type: 'base_branch', branch: 'main' } } }, session);
    const error = await server.waitForMsg('error', { session, id });
    expect(error.msg.message).toMatch(/not inside a git repository|not a git repo/i);
  });

  it('ends with exited_review_mode(null) and turn_aborted when interrupted', async () => {
    await gitRepo();
    model.enqueue({ kind: 'hang', match: isReview });
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'review', review_request: { target: { type: 'custom', instructions: 'Check everything.' } } }, session);
    await server.waitForMsg('entered_review_mode', { session, id });
    for (let i = 0; i < 200 && !model.requests.some(isReview); i++) await new Promise((r) => setTimeout(r, 20));
    server.submit({ type: 'interrupt' }, session);
    const exited = await server.waitForMsg('exited_review_mode', { session, id });
    expect(exited.msg.review_output).toBeNull();
    await server.waitForMsg('turn_aborted', { session, id });
    const hung = model.requests.find(isReview)!;
    for (let i = 0; i < 100 && !hung.disconnected; i++) await new Promise((r) => setTimeout(r, 20));
    expect(hung.disconnected).toBe(true);
  });
});

describe('compaction', () => {
  it('replaces the history with the summary bridge', async () => {
    model.enqueue(say('OLD ASSISTANT ANSWER', (r) => !isSummary(r)));
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'first question about the parser');
    model.enqueue(say('SUMMARY: we discussed the parser.', isSummary));
    const id = server.submit({ type: 'compact' }, session);
    await server.waitForMsg('context_compacted', { session, id });
    await server.waitForMsg('task_complete', { session, id });
    const summarizer = model.requests.find(isSummary)!;
    expect(inputTexts(summarizer)).toContain('first question about the parser');
    expect(summarizer.body.tools ?? []).toEqual([]);

    model.enqueue(say('next answer', (r) => !isSummary(r)));
    await server.turn(session, 'second question');
    const next = model.requests.at(-1)!;
    const texts = inputTexts(next).join('\n');
    expect(texts).toContain('SUMMARY: we discussed the parser.');
    expect(texts).toContain('first question about the parser');
    expect(texts).not.toContain('OLD ASSISTANT ANSWER');
    const rollout = await readFile(
      server.ofSession(session)[0]!.msg.type === 'session_configured' ? (server.ofSession(session)[0]!.msg as { rollout_path: string }).rollout_path : '',
      'utf8',
    );
    expect(rollout).toContain('"type":"compacted"');
  });

  it('survives a resume: the rollout reproduces the compacted history', async () => {
    model.enqueue(
      say('OLD ANSWER', (r) => !isSummary(r)),
      say('THE SUMMARY', isSummary),
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'the original question');
    const id = server.submit({ type: 'compact' }, session);
    await server.waitForMsg('task_complete', { session, id });
    expect(await server.end()).toBe(0);

    const resumed = await AppServerProcess.start({ modelUrl: model.url, home: server.home });
    try {
      const resumeId = resumed.submit({ type: 'resume_session', session_id: session });
      await resumed.waitForMsg('session_configured', { id: resumeId });
      model.enqueue(say('after resume', (r) => !isSummary(r)));
      await resumed.turn(session, 'next question');
      const texts = inputTexts(model.requests.at(-1)!).join('\n');
      expect(texts).toContain('THE SUMMARY');
      expect(texts).toContain('the original question');
      expect(texts).not.toContain('OLD ANSWER');
    } finally {
      await resumed.dispose();
    }
  });

  it('drops the oldest items and retries when the summary request itself is too large', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['echo', 'one'] } }] },
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c2', arguments: { command: ['echo', 'two'] } }] },
      say('worked a lot'),
      { kind: 'http_error', match: isSummary, status: 400, body: { error: { code: 'context_length_exceeded', message: 'too long' } } },
      say('SHORTER SUMMARY', isSummary),
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'do several things');
    const id = server.submit({ type: 'compact' }, session);
    await server.waitForMsg('context_compacted', { session, id });
    const [first, second] = model.requests.filter(isSummary);
    expect((second!.body.input as unknown[]).length).toBeLessThan((first!.body.input as unknown[]).length);
  });

  it('happens by itself in the middle of a turn when the usage reaches the limit', async () => {
    model.enqueue(
      {
        kind: 'response',
        match: (r) => !isSummary(r) && outputFor(r, 'c1') === undefined,
        usage: { input_tokens: 5000, output_tokens: 10 },
        items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['echo', 'big output'] } }],
      },
      say('AUTO SUMMARY of the work', isSummary),
      say('finished after compaction', (r) => !isSummary(r) && mentions(r, 'AUTO SUMMARY')),
    );
    const session = await server.newSession({ cwd: workspace, auto_compact_token_limit: 1000 });
    const end = await server.turn(session, 'do a big task');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'finished after compaction' });
    const types = server.ofSession(session).map((e) => e.msg.type);
    expect(types.filter((t) => t === 'task_started')).toHaveLength(1);
    expect(types).toContain('context_compacted');
    expect(model.requests.filter(isSummary)).toHaveLength(1);
  });
});

describe('undo', () => {
  it('restores the files the last turn changed and created, without a commit', async () => {
    await gitRepo();
    const logBefore = git('log', '--oneline').trim().split('\n').length;
    const headBefore = git('rev-parse', 'HEAD');
    model.enqueue(
      {
        kind: 'response',
        items: [
          {
            type: 'function_call',
            name: 'apply_patch',
            call_id: 'p',
            arguments: { input: '*** Begin Patch\n*** Update File: app.js\n@@\n-export const answer = 41;\n+export const answer = 42;\n*** End Patch' },
          },
          { type: 'function_call', name: 'shell', call_id: 's', arguments: { command: ['sh', '-c', 'echo made > created.txt'] } },
        ],
      },
      say('changed things'),
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'change the answer');
    expect(await readFile(join(workspace, 'app.js'), 'utf8')).toContain('42');
    expect(existsSync(join(workspace, 'created.txt'))).toBe(true);

    const id = server.submit({ type: 'undo' }, session);
    const done = await server.waitForMsg('undo_completed', { session, id });
    expect(done.msg.success).toBe(true);
    expect(await readFile(join(workspace, 'app.js'), 'utf8')).toBe('export const answer = 41;\n');
    expect(existsSync(join(workspace, 'created.txt'))).toBe(false);
    expect(git('rev-parse', 'HEAD')).toBe(headBefore);
    expect(git('log', '--oneline').trim().split('\n')).toHaveLength(logBefore);
    expect(git('status', '--porcelain')).toBe('');

    model.enqueue(say('noted'));
    await server.turn(session, 'what happened?');
    expect(JSON.stringify(model.requests.at(-1)!.body.input)).toMatch(/undid the previous turn/);
  });

  it('outside a git repository fails with a reason', async () => {
    model.enqueue(say('ok'));
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'hello');
    const id = server.submit({ type: 'undo' }, session);
    const done = await server.waitForMsg('undo_completed', { session, id });
    expect(done.msg.success).toBe(false);
    expect(done.msg.message).toBeTruthy();
  });
});

describe('rollback and user shell', () => {
  it('thread_rollback drops the last turns from what the model sees', async () => {
    model.enqueue(say('answer one'), say('answer two'));
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'QUESTION ONE');
    await server.turn(session, 'QUESTION TWO');
    const id = server.submit({ type: 'thread_rollback', num_turns: 1 }, session);
    const rolled = await server.waitForMsg('thread_rolled_back', { session, id });
    expect(rolled.msg.num_turns).toBe(1);
    model.enqueue(say('answer three'));
    await server.turn(session, 'QUESTION THREE');
    const texts = inputTexts(model.requests.at(-1)!);
    expect(texts).toContain('QUESTION ONE');
    expect(texts).not.toContain('QUESTION TWO');
    expect(texts).not.toContain('answer two');
  });

  it('thread_rollback is refused while a turn runs', async () => {
    model.enqueue({ kind: 'hang' });
    const session = await server.newSession({ cwd: workspace });
    server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'wait' }] }, session);
    await server.waitForMsg('task_started', { session });
    const id = server.submit({ type: 'thread_rollback', num_turns: 1 }, session);
    expect((await server.waitForMsg('error', { session, id })).msg.message).toMatch(/thread_rollback/);
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session });
  });

  it('run_user_shell_command streams the command and the model sees it next turn', async () => {
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'run_user_shell_command', command: 'echo hi-from-the-user' }, session);
    const end = await server.waitForMsg('exec_command_end', { session, id });
    expect(end.msg.stdout).toBe('hi-from-the-user\n');
    model.enqueue(say('I saw your command'));
    await server.turn(session, 'did you see it?');
    const texts = inputTexts(model.requests.at(-1)!).join('\n');
    expect(texts).toContain('<user_shell_command>');
    expect(texts).toContain('hi-from-the-user');
    expect(lastText(model.requests.at(-1)!)).toBe('did you see it?');
  });
});
