import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Event } from '../../protocol/index.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { inputTexts, mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

const say = (text: string, match?: (r: RecordedRequest) => boolean, delayMs?: number): ScriptStep => ({
  kind: 'response',
  items: [{ type: 'message', text }],
  ...(match ? { match } : {}),
  ...(delayMs ? { delayMs } : {}),
});
const spawn = (callId: string, message: string, extra: Record<string, unknown> = {}) => ({
  type: 'function_call' as const,
  name: 'spawn_agent',
  call_id: callId,
  arguments: { message, ...extra },
});
/** The parent's next step: wait for every agent it spawned so far (ids read from its own history). */
const waitForSpawned = (match: (r: RecordedRequest) => boolean, extra: Record<string, unknown> = {}): ScriptStep => ({
  kind: 'reply',
  match,
  handler: (request) => ({
    kind: 'response',
    items: [{ type: 'function_call', name: 'wait_agent', call_id: 'wait', arguments: { agent_ids: spawnedAgentIds(request), ...extra } }],
  }),
});
const isParent = (marker: string) => (r: RecordedRequest) => mentions(r, marker) && !mentions(r, 'CHILD');
const lastCallIs = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;

function childIds(parent: string): string[] {
  return server.events.flatMap((e) => (e.session_id === parent && e.msg.type === 'agent_spawned' ? [e.msg.agent_id] : []));
}

describe('sub-agents', () => {
  it('three children run concurrently and their results reach the parent through wait_agent', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('fan out'), items: [spawn('s1', 'CHILD task A'), spawn('s2', 'CHILD task B'), spawn('s3', 'CHILD task C')] },
      say('result A', (r) => mentions(r, 'CHILD task A'), 400),
      say('result B', (r) => mentions(r, 'CHILD task B'), 400),
      say('result C', (r) => mentions(r, 'CHILD task C'), 400),
      waitForSpawned(lastCallIs('s3')),
      say('all three reported', lastCallIs('wait')),
    );
    const parent = await server.newSession({ cwd: workspace, developer_instructions: 'PARENT SECRET' });
    const end = await server.turn(parent, 'fan out the work');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'all three reported' });

    const waitOutput = JSON.parse(outputFor(model.requests.at(-1)!, 'wait')!) as { agents: { status: string; message: string }[]; timed_out: boolean };
    expect(waitOutput.timed_out).toBe(false);
    expect(waitOutput.agents.map((a) => [a.status, a.message])).toEqual([
      ['completed', 'result A'],
      ['completed', 'result B'],
      ['completed', 'result C'],
    ]);

    const children = model.requests.filter((r) => mentions(r, 'CHILD'));
    expect(children).toHaveLength(3);
    for (const a of children) for (const b of children) if (a !== b) expect(a.startedAt).toBeLessThan(b.endedAt!);
    for (const child of children) {
      const texts = inputTexts(child).join('\n');
      expect(texts).not.toContain('fan out the work');
      expect(texts).not.toContain('PARENT SECRET');
    }

    const ids = childIds(parent);
    expect(ids).toHaveLength(3);
    for (const id of ids) {
      const configured = server.events.find((e) => e.session_id === id && e.msg.type === 'session_configured');
      expect(configured?.msg).toMatchObject({ parent_session_id: parent, depth: 1, cwd: workspace });
    }
    const statuses = server.ofSession(parent).flatMap((e) => (e.msg.type === 'agent_status' ? [e.msg.status] : []));
    expect(statuses.filter((s) => s === 'completed')).toHaveLength(3);
  });

  it("a child's approval is answered with the child's id, and denying one leaves its sibling", async () => {
    const fileA = join(workspace, 'a.txt');
    const fileB = join(workspace, 'b.txt');
    model.enqueue(
      { kind: 'response', match: isParent('two jobs'), items: [spawn('s1', 'CHILD job A'), spawn('s2', 'CHILD job B')] },
      {
        kind: 'response',
        match: (r) => mentions(r, 'CHILD job A') && outputFor(r, 'ta') === undefined,
        items: [{ type: 'function_call', name: 'shell', call_id: 'ta', arguments: { command: ['touch', fileA] } }],
      },
      {
        kind: 'response',
        match: (r) => mentions(r, 'CHILD job B') && outputFor(r, 'tb') === undefined,
        items: [{ type: 'function_call', name: 'shell', call_id: 'tb', arguments: { command: ['touch', fileB] } }],
      },
      say('A was refused', lastCallIs('ta')),
      say('B is done', lastCallIs('tb')),
      waitForSpawned(lastCallIs('s2')),
      say('collected', lastCallIs('wait')),
    );
    const parent = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'two jobs please' }] }, parent);
    const requestA = await server.waitForMsg('exec_approval_request', { where: (m) => m.call_id === 'ta' });
    const requestB = await server.waitForMsg('exec_approval_request', { where: (m) => m.call_id === 'tb' });
    expect(requestA.session_id).not.toBe(parent);
    expect(childIds(parent)).toContain(requestA.session_id);
    server.submit({ type: 'exec_approval', id: 'ta', decision: 'denied' }, requestA.session_id!);
    server.submit({ type: 'exec_approval', id: 'tb', decision: 'approved' }, requestB.session_id!);
    await server.waitForMsg('task_complete', { session: parent, id: turn });
    expect(existsSync(fileA)).toBe(false);
    expect(existsSync(fileB)).toBe(true);
    const waited = outputFor(model.requests.at(-1)!, 'wait')!;
    expect(waited).toContain('A was refused');
    expect(waited).toContain('B is done');
  });

  it('approved_for_session in one child holds for the whole tree', async () => {
    const file = join(workspace, 'shared.txt');
    const touch = (callId: string) => ({ type: 'function_call' as const, name: 'shell', call_id: callId, arguments: { command: ['touch', file] } });
    model.enqueue(
      { kind: 'response', match: isParent('share'), items: [spawn('s1', 'CHILD one')] },
      { kind: 'response', match: (r) => mentions(r, 'CHILD one') && outputFor(r, 't1') === undefined, items: [touch('t1')] },
      say('one done', lastCallIs('t1')),
      waitForSpawned(lastCallIs('s1')),
      { kind: 'response', match: lastCallIs('wait'), items: [touch('t2')] },
      say('parent done', lastCallIs('t2')),
    );
    const parent = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'share approvals' }] }, parent);
    const request = await server.waitForMsg('exec_approval_request', { where: (m) => m.call_id === 't1' });
    server.submit({ type: 'exec_approval', id: 't1', decision: 'approved_for_session' }, request.session_id!);
    await server.waitForMsg('task_complete', { session: parent, id: turn });
    expect(server.events.filter((e) => e.msg.type === 'exec_approval_request')).toHaveLength(1);
  });

  it('refuses past agent_max_depth and agent_max_threads, saying which limit', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('limits'), items: [spawn('s1', 'CHILD deep'), spawn('s2', 'CHILD second'), spawn('s3', 'CHILD third')] },
      { kind: 'response', match: (r) => mentions(r, 'CHILD deep') && outputFor(r, 'g1') === undefined, items: [spawn('g1', 'GRANDCHILD')] },
      say('could not go deeper', lastCallIs('g1')),
      say('second done', (r) => mentions(r, 'CHILD second')),
      say('checked limits', lastCallIs('s3')),
    );
    const parent = await server.newSession({ cwd: workspace, agent_max_depth: 1, agent_max_threads: 2 });
    await server.turn(parent, 'test the limits');
    const parentRequest = model.requests.find((r) => outputFor(r, 's3') !== undefined)!;
    expect(outputFor(parentRequest, 's3')).toMatch(/agent_max_threads is 2/);
    expect(childIds(parent)).toHaveLength(2);
    await server.waitFor((e) => e.msg.type === 'task_complete' && e.msg.last_agent_message === 'could not go deeper', 'the deep child');
    const childRequest = model.requests.find((r) => outputFor(r, 'g1') !== undefined)!;
    expect(outputFor(childRequest, 'g1')).toMatch(/agent_max_depth is 1/);
    expect(server.events.filter((e) => e.msg.type === 'session_configured')).toHaveLength(3);
  });

  it('interrupting the parent interrupts a child blocked in a model request', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('block'), items: [spawn('s1', 'CHILD sleepy')] },
      { kind: 'hang', match: (r) => mentions(r, 'CHILD sleepy') },
      waitForSpawned(lastCallIs('s1')),
    );
    const parent = await server.newSession({ cwd: workspace });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'block on a child' }] }, parent);
    await server.waitForMsg('agent_status', { session: parent, where: (m) => m.status === 'running' });
    for (let i = 0; i < 200 && !model.requests.some((r) => mentions(r, 'CHILD sleepy')); i++) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 200 && !model.requests.some((r) => outputFor(r, 's1') !== undefined && r.endedAt !== null); i++)
      await new Promise((r) => setTimeout(r, 20));
    server.submit({ type: 'interrupt' }, parent);
    await server.waitForMsg('turn_aborted', { session: parent, id: turn });
    const [child] = childIds(parent);
    await server.waitForMsg('turn_aborted', { session: child });
    const hung = model.requests.find((r) => mentions(r, 'CHILD sleepy'))!;
    for (let i = 0; i < 100 && !hung.disconnected; i++) await new Promise((r) => setTimeout(r, 20));
    expect(hung.disconnected).toBe(true);
    await server.waitForMsg('agent_status', { session: parent, where: (m) => m.status === 'interrupted' });
  });

  it('close_agent closes the subtree, descendants first', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('subtree'), items: [spawn('s1', 'CHILD middle')] },
      { kind: 'response', match: (r) => mentions(r, 'CHILD middle') && outputFor(r, 'g1') === undefined, items: [spawn('g1', 'CHILD leaf')] },
      { kind: 'hang', match: (r) => mentions(r, 'CHILD leaf') },
      say('middle spawned its leaf', lastCallIs('g1')),
      // The parent waits for the middle agent (so the leaf exists), then closes it.
      waitForSpawned(lastCallIs('s1')),
      {
        kind: 'reply',
        match: lastCallIs('wait'),
        handler: (r) => ({
          kind: 'response',
          items: [{ type: 'function_call', name: 'close_agent', call_id: 'close', arguments: { agent_id: spawnedAgentIds(r)[0] } }],
        }),
      },
      say('closed it', lastCallIs('close')),
    );
    const parent = await server.newSession({ cwd: workspace });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'make a subtree' }] }, parent);
    await server.waitForMsg('task_complete', { session: parent, id: turn });
    const [middle] = childIds(parent);
    const [leaf] = childIds(middle!);
    expect(leaf).toBeDefined();
    const order = server.events.filter((e) => e.msg.type === 'shutdown_complete').map((e) => e.session_id);
    expect(order.indexOf(leaf!)).toBeGreaterThanOrEqual(0);
    expect(order.indexOf(leaf!)).toBeLessThan(order.indexOf(middle!));
    const closed = JSON.parse(outputFor(model.requests.at(-1)!, 'close')!) as { status: string };
    expect(closed.status).toBe('shutdown');
  });

  it('a child that errors reports errored and the parent goes on', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('fragile'), items: [spawn('s1', 'CHILD fragile')] },
      { kind: 'http_error', match: (r) => mentions(r, 'CHILD fragile'), status: 401, body: { error: { message: 'key revoked' } } },
      waitForSpawned(lastCallIs('s1')),
      say('the child failed, moving on', lastCallIs('wait')),
    );
    const parent = await server.newSession({ cwd: workspace });
    const end = await server.turn(parent, 'fragile work');
    expect(end.msg).toMatchObject({ last_agent_message: 'the child failed, moving on' });
    const waited = JSON.parse(outputFor(model.requests.at(-1)!, 'wait')!) as { agents: { status: string; message: string }[] };
    expect(waited.agents[0]).toMatchObject({ status: 'errored', message: expect.stringContaining('key revoked') });
    expect(server.ofSession(parent).some((e) => e.msg.type === 'agent_status' && e.msg.status === 'errored')).toBe(true);
  });

  it('wait_agent with return_when any returns when the first child finishes', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('race'), items: [spawn('s1', 'CHILD fast'), spawn('s2', 'CHILD slow')] },
      say('fast result', (r) => mentions(r, 'CHILD fast')),
      say('slow result', (r) => mentions(r, 'CHILD slow'), 3000),
      waitForSpawned(lastCallIs('s2'), { return_when: 'any' }),
      say('got one', lastCallIs('wait')),
    );
    const parent = await server.newSession({ cwd: workspace });
    await server.turn(parent, 'race two children');
    const waited = JSON.parse(
      outputFor(
        model.requests.find((r) => outputFor(r, 'wait') !== undefined)!,
        'wait',
      )!,
    ) as {
      agents: { status: string; message: string | null }[];
    };
    expect(waited.agents.map((a) => a.status)).toEqual(['completed', 'running']);
    expect(waited.agents[0]!.message).toBe('fast result');
  });

  it('a child finishing while its parent is idle is noted in the parent history', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('background'), items: [spawn('s1', 'CHILD background')] },
      say('started it', lastCallIs('s1')),
      say('background result', (r) => mentions(r, 'CHILD background'), 300),
    );
    const parent = await server.newSession({ cwd: workspace });
    await server.turn(parent, 'start background work');
    await server.waitForMsg('agent_status', { session: parent, where: (m) => m.status === 'completed' });
    model.enqueue(say('I saw it', isParent('what happened')));
    await server.turn(parent, 'what happened?');
    const texts = inputTexts(model.requests.at(-1)!).join('\n');
    expect(texts).toContain('<subagent_notification>');
    expect(texts).toContain('background result');
  });

  it('shutdown of the parent closes its children first', async () => {
    model.enqueue(
      { kind: 'response', match: isParent('spawn and leave'), items: [spawn('s1', 'CHILD idle')] },
      say('idle done', (r) => mentions(r, 'CHILD idle')),
      say('left', lastCallIs('s1')),
    );
    const parent = await server.newSession({ cwd: workspace });
    await server.turn(parent, 'spawn and leave');
    const [child] = childIds(parent);
    const id = server.submit({ type: 'shutdown' }, parent);
    await server.waitForMsg('shutdown_complete', { session: parent, id });
    const order = server.events.filter((e: Event) => e.msg.type === 'shutdown_complete').map((e) => e.session_id);
    expect(order).toEqual([child, parent]);
  });
});
