import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RolloutLine } from '../../protocol/index.js';
import { AppServerProcess, seqProblems } from '../support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../../testing/index.js';
import { inputTexts } from '../../testing/requests.js';

let model: FakeModelServer;
let home: string;
let workspace: string;
const servers: AppServerProcess[] = [];
/** Per server, the sessions it resumed, with the seq their numbering goes on from. */
const resumedFrom = new Map<AppServerProcess, Map<string, number>>();

async function start(): Promise<AppServerProcess> {
  const server = await AppServerProcess.start({ modelUrl: model.url, home });
  servers.push(server);
  return server;
}

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
});

afterEach(async () => {
  for (const server of servers.splice(0)) {
    expect(server.junk).toEqual([]);
    expect(seqProblems(server.events, resumedFrom.get(server))).toEqual([]);
    await server.dispose();
  }
  expect(model.violations).toEqual([]);
  await model.close();
  resumedFrom.clear();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
});

const say = (text: string) => ({ kind: 'response' as const, items: [{ type: 'message' as const, text }] });

describe('rollouts', () => {
  it('are written as the session goes, resumed by id, and end of stdin exits cleanly', async () => {
    model.enqueue(say('first answer'));
    const first = await start();
    const session = await first.newSession({ cwd: workspace });
    await first.turn(session, 'remember the word banana');
    const configured = first.ofSession(session)[0]!;
    expect(configured.msg.type).toBe('session_configured');
    const path = configured.msg.type === 'session_configured' ? configured.msg.rollout_path : '';
    expect(path.startsWith(join(home, 'sessions'))).toBe(true);
    expect(await first.end()).toBe(0);
    expect(first.ofSession(session).at(-1)?.msg.type).toBe('shutdown_complete');

    const lines = (await readFile(path, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => RolloutLine.parse(JSON.parse(l)));
    expect(lines[0]!.type).toBe('session_meta');
    const types = new Set(lines.map((l) => l.type));
    expect(types).toEqual(new Set(['session_meta', 'response_item', 'turn_context', 'event_msg']));
    expect(lines.some((l) => l.type === 'event_msg' && l.payload.type === 'agent_message_delta')).toBe(false);

    model.enqueue(say('it was banana'));
    const second = await start();
    // The stream goes on from the last event the first process numbered.
    const lastSeq = first.ofSession(session).at(-1)!.seq!;
    resumedFrom.set(second, new Map([[session, lastSeq + 1]]));
    const id = second.submit({ type: 'resume_session', session_id: session });
    const resumed = await second.waitForMsg('session_configured', { id });
    expect(resumed.seq).toBe(lastSeq + 1);
    expect(resumed.msg.session_id).toBe(session);
    expect(resumed.msg.history_entries).toBeGreaterThan(2);
    await second.turn(session, 'what was the word?');
    const texts = inputTexts(model.requests[1]!);
    expect(texts).toContain('remember the word banana');
    expect(texts).toContain('first answer');
    expect(texts.at(-1)).toBe('what was the word?');
    expect(await second.end()).toBe(0);
  });

  it('are listed, and forked before the nth user message', async () => {
    model.enqueue(say('one'), say('two'));
    const server = await start();
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'first question');
    await server.turn(session, 'second question');

    const listId = server.submit({ type: 'list_sessions' });
    const list = await server.waitForMsg('session_list', { id: listId });
    expect(list.session_id).toBeNull();
    expect(list.msg.sessions).toEqual([expect.objectContaining({ session_id: session, first_user_message: 'first question' })]);

    const forkId = server.submit({ type: 'fork_session', session_id: session, nth_user_message: 1 });
    const forked = await server.waitForMsg('session_configured', { id: forkId });
    expect(forked.msg.session_id).not.toBe(session);
    model.enqueue(say('forked'));
    await server.turn(forked.msg.session_id, 'third question');
    const texts = inputTexts(model.requests[2]!);
    expect(texts).toContain('first question');
    expect(texts).not.toContain('second question');
  });

  it('serves many sessions in one process, each with its own stream', async () => {
    const server = await start();
    const a = await server.newSession({ cwd: workspace });
    const b = await server.newSession({ cwd: workspace });
    model.enqueue(say('to a'), say('to b'));
    await server.turn(a, 'hello a');
    await server.turn(b, 'hello b');
    expect(server.ofSession(a).every((e) => e.session_id === a)).toBe(true);
    expect(server.ofSession(b).filter((e) => e.msg.type === 'task_complete')).toHaveLength(1);
    expect(inputTexts(model.requests[1]!)).not.toContain('hello a');
  });

  it('shutdown flushes and closes the session; later ops are refused', async () => {
    const server = await start();
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'shutdown' }, session);
    await server.waitForMsg('shutdown_complete', { session, id });
    const late = server.submit({ type: 'user_input', items: [{ type: 'text', text: 'hello?' }] }, session);
    const error = await server.waitForMsg('error', { id: late });
    expect(error.msg).toMatchObject({ code: 'unknown_session', message: expect.stringContaining(`unknown session ${session}`) });
  });
});

describe('bad input', () => {
  it('each problem is answered by an error naming it, and the server goes on', async () => {
    const server = await start();
    server.writeLine('this is not json');
    const notJson = await server.waitForMsg('error', { where: (m) => m.message.includes('not valid JSON') });
    expect(notJson).toMatchObject({ id: null, session_id: null, seq: null, msg: { code: 'bad_request' } });

    server.writeLine(JSON.stringify({ id: 'u1', op: { type: 'make_coffee' } }));
    const unknownOp = await server.waitForMsg('error', { id: 'u1' });
    expect(unknownOp.msg).toMatchObject({ code: 'bad_request', message: expect.stringContaining('op.type') });

    server.writeLine(JSON.stringify({ id: 'u2', session_id: 'nope', op: { type: 'interrupt' } }));
    const unknownSession = await server.waitForMsg('error', { id: 'u2' });
    expect(unknownSession.msg).toMatchObject({ code: 'unknown_session', message: expect.stringContaining('unknown session nope') });
    // It belongs to no session's stream.
    expect(unknownSession).toMatchObject({ session_id: null, seq: null });

    server.writeLine(JSON.stringify({ id: 'u3', op: { type: 'new_session', config: { cwd: 'relative/dir', approval_policy: 'sometimes' } } }));
    const badConfig = await server.waitForMsg('error', { id: 'u3' });
    expect(badConfig.msg.message).toContain('op.config.cwd');
    expect(badConfig.msg.message).toContain('op.config.approval_policy');

    server.writeLine(JSON.stringify({ id: 'u4', op: { type: 'new_session', config: { cwd: join(workspace, 'missing') } } }));
    expect((await server.waitForMsg('error', { id: 'u4' })).msg.message).toContain('config.cwd');

    server.writeLine(JSON.stringify({ id: 'u5', op: { type: 'user_turn', items: [] } }));
    expect((await server.waitForMsg('error', { id: 'u5' })).msg.message).toMatch(/session_id|items/);

    const session = await server.newSession({ cwd: workspace });
    server.submit({ type: 'exec_approval', id: 'call-nobody-asked-about', decision: 'approved' }, session, 'u6');
    const noApproval = await server.waitForMsg('error', { id: 'u6' });
    expect(noApproval.session_id).toBe(session);
    expect(noApproval.msg.message).toContain('call-nobody-asked-about');

    // The same while a turn runs: the answer carries the submission's own id, not the turn's.
    model.enqueue({ kind: 'hang' });
    const running = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'think forever' }] }, session);
    await server.waitForMsg('task_started', { session, id: running });
    server.submit({ type: 'exec_approval', id: 'call-still-nobody', decision: 'approved' }, session, 'u7');
    const duringTurn = await server.waitForMsg('error', { id: 'u7' });
    expect(duringTurn.msg.message).toContain('call-still-nobody');
    expect(server.ofSession(session).filter((e) => e.id === running && e.msg.type === 'error')).toEqual([]);
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session, id: running });

    model.enqueue(say('still here'));
    const end = await server.turn(session, 'are you alive?');
    expect(end.msg).toMatchObject({ last_agent_message: 'still here' });
    expect(server.stderr).not.toMatch(/Uncaught|TypeError/);
  });

  it('an image that cannot be read is refused without harming the session', async () => {
    const server = await start();
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'user_turn', items: [{ type: 'local_image', path: join(workspace, 'nope.png') }] }, session);
    expect((await server.waitForMsg('error', { id })).msg.message).toContain('nope.png');
    expect(existsSync(join(workspace, 'nope.png'))).toBe(false);
    model.enqueue(say('fine'));
    await server.turn(session, 'text instead');
  });
});
