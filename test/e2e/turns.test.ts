import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import { startFakeModelServer, type FakeModelServer } from '../../testing/index.js';
import { inputItems, inputTexts, outputFor, outputOrder } from '../../testing/requests.js';
import { RATE_LIMIT_HEADERS, RATE_LIMIT_SNAPSHOT } from '../support/rate-limits.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

describe('a simple turn', () => {
  it('streams the answer and tells the model what it needs', async () => {
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Hello there, human.' }], usage: { input_tokens: 120, output_tokens: 7 } });
    const session = await server.newSession({ cwd: workspace, developer_instructions: 'Answer briefly.' });
    const end = await server.turn(session, 'Say hello');
    expect(end.msg).toEqual({ type: 'task_complete', turn_id: end.id, last_agent_message: 'Hello there, human.' });

    const types = server.ofSession(session).map((e) => e.msg.type);
    expect(types[0]).toBe('session_configured');
    expect(types.slice(1, 3)).toEqual(['task_started', 'user_message']);
    expect(types).toContain('agent_message_delta');
    expect(types.indexOf('agent_message')).toBeLessThan(types.indexOf('task_complete'));
    const deltas = server.ofSession(session).flatMap((e) => (e.msg.type === 'agent_message_delta' ? [e.msg.delta] : []));
    expect(deltas.join('')).toBe('Hello there, human.');
    const tokens = server.ofSession(session).find((e) => e.msg.type === 'token_count');
    expect(tokens?.msg).toMatchObject({ info: { last_token_usage: { input_tokens: 120, output_tokens: 7 } } });

    expect(model.requests).toHaveLength(1);
    const request = model.requests[0]!;
    expect(request.body.model).toBe('test-model');
    expect(typeof request.body.instructions).toBe('string');
    const texts = inputTexts(request);
    expect(texts[0]).toBe('Answer briefly.');
    expect(texts[1]).toContain(`<cwd>${workspace}</cwd>`);
    expect(texts.at(-1), JSON.stringify(texts)).toBe('Say hello');
    const tools = (request.body.tools as { name: string }[]).map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(['shell', 'apply_patch', 'read_file', 'list_dir', 'update_plan']));
  });

  it('runs a tool, sends its output back, and answers', async () => {
    model.enqueue(
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['sh', '-c', 'echo out; echo err >&2; exit 3'] } }],
      },
      { kind: 'response', items: [{ type: 'message', text: 'It exited with 3.' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'run it');
    const end = server.ofSession(session).find((e) => e.msg.type === 'exec_command_end');
    expect(end?.msg).toMatchObject({ call_id: 'c1', exit_code: 3, stdout: 'out\n', stderr: 'err\n' });
    const output = outputFor(model.requests[1]!, 'c1');
    expect(output).toContain('Exit code: 3');
    expect(output).toContain('out');
    expect(output).toContain('err');
  });

  it('tells the model when its tool arguments are bad, and the turn goes on', async () => {
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'shell', call_id: 'bad-json', arguments: '{"command": [' },
          { type: 'function_call', name: 'shell', call_id: 'bad-field', arguments: { command: 'ls' } },
          { type: 'function_call', name: 'no_such_tool', call_id: 'unknown', arguments: {} },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'ok' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'go');
    const second = model.requests[1]!;
    expect(outputFor(second, 'bad-json')).toMatch(/not valid JSON/);
    expect(outputFor(second, 'bad-field')).toMatch(/command/);
    expect(outputFor(second, 'unknown')).toMatch(/unknown tool "no_such_tool"/);
  });
});

describe('token usage', () => {
  it('accumulates across requests and forwards the rate-limit headers', async () => {
    await server.dispose();
    await model.close();
    model = await startFakeModelServer({
      rateLimitHeaders: RATE_LIMIT_HEADERS,
    });
    server = await AppServerProcess.start({ modelUrl: model.url });
    model.enqueue(
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['true'] } }],
        usage: { input_tokens: 100, output_tokens: 10 },
      },
      { kind: 'response', items: [{ type: 'message', text: 'ok' }], usage: { input_tokens: 150, output_tokens: 5, cached_input_tokens: 100 } },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'count');
    const counts = server.ofSession(session).flatMap((e) => (e.msg.type === 'token_count' ? [e.msg] : []));
    expect(counts).toHaveLength(2);
    expect(counts[1]!.info?.total_token_usage).toMatchObject({ input_tokens: 250, output_tokens: 15, cached_input_tokens: 100 });
    expect(counts[1]!.info?.last_token_usage).toMatchObject({ input_tokens: 150, output_tokens: 5 });
    expect(counts[1]!.rate_limits).toEqual(RATE_LIMIT_SNAPSHOT);
  });
});

describe('parallel tool calls', () => {
  it('run concurrently and their outputs reach the model in call order', async () => {
    const slow = (name: string, ms: number) => ['sh', '-c', `sleep ${ms / 1000}; echo ${name}`];
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'shell', call_id: 'first', arguments: { command: slow('first', 800) } },
          { type: 'function_call', name: 'shell', call_id: 'second', arguments: { command: slow('second', 50) } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'both done' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'go');
    const events = server.ofSession(session);
    const index = (type: string, callId: string) => events.findIndex((e) => e.msg.type === type && 'call_id' in e.msg && e.msg.call_id === callId);
    // Both started before either ended: they overlapped. The short one ended first.
    expect(index('exec_command_begin', 'second')).toBeLessThan(index('exec_command_end', 'first'));
    expect(index('exec_command_end', 'second')).toBeLessThan(index('exec_command_end', 'first'));
    expect(outputOrder(model.requests[1]!)).toEqual(['first', 'second']);
  });
});

describe('approvals', () => {
  const touch = (file: string) => ({
    kind: 'response' as const,
    items: [{ type: 'function_call' as const, name: 'shell', call_id: 'touch', arguments: { command: ['touch', file] } }],
  });

  it('approved: the command runs', async () => {
    const file = join(workspace, 'approved.txt');
    model.enqueue(touch(file), { kind: 'response', items: [{ type: 'message', text: 'done' }] });
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch it' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg).toMatchObject({ call_id: 'touch', turn_id: turnId, command: ['touch', file], cwd: workspace });
    expect(existsSync(file)).toBe(false);
    server.submit({ type: 'exec_approval', id: 'touch', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { session, id: turnId });
    expect(existsSync(file)).toBe(true);
  });

  it('denied: the model is told and the turn goes on', async () => {
    const file = join(workspace, 'denied.txt');
    model.enqueue(touch(file), { kind: 'response', items: [{ type: 'message', text: 'understood' }] });
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch it' }] }, session);
    await server.waitForMsg('exec_approval_request', { session });
    server.submit({ type: 'exec_approval', id: 'touch', decision: 'denied' }, session);
    const done = await server.waitForMsg('task_complete', { session, id: turnId });
    expect(done.msg.last_agent_message).toBe('understood');
    expect(existsSync(file)).toBe(false);
    expect(outputFor(model.requests[1]!, 'touch')).toMatch(/denied/);
  });

  it('abort: the turn is interrupted and the next turn sees the denial', async () => {
    const file = join(workspace, 'aborted.txt');
    model.enqueue(touch(file));
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch it' }] }, session);
    await server.waitForMsg('exec_approval_request', { session });
    server.submit({ type: 'exec_approval', id: 'touch', decision: 'abort' }, session);
    const aborted = await server.waitForMsg('turn_aborted', { session, id: turnId });
    expect(aborted.msg.reason).toBe('interrupted');
    expect(existsSync(file)).toBe(false);
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'next' }] });
    await server.turn(session, 'again');
    expect(model.requests).toHaveLength(2);
    expect(outputFor(model.requests[1]!, 'touch')).toMatch(/denied/);
  });

  it('approved_for_session: the same command is not asked again', async () => {
    const file = join(workspace, 'twice.txt');
    model.enqueue(touch(file), { kind: 'response', items: [{ type: 'message', text: 'one' }] });
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const first = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch it' }] }, session);
    await server.waitForMsg('exec_approval_request', { session });
    server.submit({ type: 'exec_approval', id: 'touch', decision: 'approved_for_session' }, session);
    await server.waitForMsg('task_complete', { session, id: first });
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'touch2', arguments: { command: ['touch', file] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'two' }] },
    );
    await server.turn(session, 'again');
    expect(server.ofSession(session).filter((e) => e.msg.type === 'exec_approval_request')).toHaveLength(1);
    expect(server.ofSession(session).filter((e) => e.msg.type === 'exec_command_end')).toHaveLength(2);
  });

  it('a patch that needs approval is applied once approved', async () => {
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'apply_patch', call_id: 'p1', arguments: { input: '*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch' } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'added' }] },
    );
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'add a file' }] }, session);
    const request = await server.waitForMsg('apply_patch_approval_request', { session });
    expect(request.msg.changes).toEqual({ [join(workspace, 'hello.txt')]: { type: 'add', content: 'hi\n' } });
    server.submit({ type: 'patch_approval', id: 'p1', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { session, id: turnId });
    expect(await readFile(join(workspace, 'hello.txt'), 'utf8')).toBe('hi\n');
    const types = server.ofSession(session).map((e) => e.msg.type);
    expect(types).toEqual(expect.arrayContaining(['patch_apply_begin', 'patch_apply_end', 'turn_diff']));
    const diff = server.ofSession(session).find((e) => e.msg.type === 'turn_diff');
    expect(diff?.msg).toMatchObject({ unified_diff: expect.stringContaining('+hi') });
  });

  it('parallel calls each have their own waiter: denying one leaves the other', async () => {
    const a = join(workspace, 'a.txt');
    const b = join(workspace, 'b.txt');
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'shell', call_id: 'ca', arguments: { command: ['touch', a] } },
          { type: 'function_call', name: 'shell', call_id: 'cb', arguments: { command: ['touch', b] } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'done' }] },
    );
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch both' }] }, session);
    await server.waitForMsg('exec_approval_request', { session, where: (m) => m.call_id === 'ca' });
    await server.waitForMsg('exec_approval_request', { session, where: (m) => m.call_id === 'cb' });
    server.submit({ type: 'exec_approval', id: 'ca', decision: 'denied' }, session);
    server.submit({ type: 'exec_approval', id: 'cb', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { session, id: turnId });
    expect(existsSync(a)).toBe(false);
    expect(existsSync(b)).toBe(true);
    expect(outputFor(model.requests[1]!, 'ca')).toMatch(/denied/);
    expect(outputFor(model.requests[1]!, 'cb')).toContain('Exit code: 0');
  });
});

describe('steering', () => {
  it('input sent during a turn joins its next request without a new task', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 's1', arguments: { command: ['sleep', '0.5'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'noted' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'start' }] }, session);
    await server.waitForMsg('exec_command_begin', { session });
    server.submit({ type: 'user_input', items: [{ type: 'text', text: 'also mention the weather' }] }, session);
    await server.waitForMsg('task_complete', { session, id: turnId });
    expect(server.ofSession(session).filter((e) => e.msg.type === 'task_started')).toHaveLength(1);
    expect(model.requests).toHaveLength(2);
    expect(inputTexts(model.requests[1]!)).toContain('also mention the weather');
    expect(inputTexts(model.requests[0]!)).not.toContain('also mention the weather');
    const items = inputItems(model.requests[1]!);
    const outputAt = items.findIndex((i) => i.type === 'function_call_output');
    const steerAt = items.findIndex((i) => i.type === 'message' && JSON.stringify(i).includes('weather'));
    expect(outputAt).toBeLessThan(steerAt);
  });
});

describe('approvals remembered for the session', () => {
  it('cover the file they were given for, not the new target of a link retargeted since', async () => {
    // The server's temporary directory (writable under workspace-write) is a private one, so a
    // directory elsewhere in /tmp is outside every writable root.
    const privateTmp = await mkdtemp(join(tmpdir(), 'troupe-private-tmp-'));
    const outside = await mkdtemp(join(tmpdir(), 'troupe-outside-'));
    const e2e = await startE2E({ env: { TMPDIR: privateTmp } });
    try {
      const { model, server, workspace } = e2e;
      const [approved, other] = [join(outside, 'approved.txt'), join(outside, 'other.txt')];
      await writeFile(approved, 'one\n');
      await writeFile(other, 'untouched\n');
      // A link in the workspace to a file outside it: writing through it needs the user.
      await symlink(approved, join(workspace, 'link.txt'));
      const patch = (from: string, to: string) => ({ input: `*** Begin Patch\n*** Update File: link.txt\n@@\n-${from}\n+${to}\n*** End Patch` });
      model.enqueue(
        { kind: 'response', items: [{ type: 'function_call', name: 'apply_patch', call_id: 'p1', arguments: patch('one', 'two') }] },
        { kind: 'response', items: [{ type: 'message', text: 'changed' }] },
        { kind: 'response', items: [{ type: 'function_call', name: 'apply_patch', call_id: 'p2', arguments: patch('untouched', 'owned') }] },
        { kind: 'response', items: [{ type: 'message', text: 'not changed' }] },
      );
      const session = await server.newSession({ cwd: workspace, approval_policy: 'on-request', sandbox_policy: 'workspace-write' });
      const first = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'edit it' }] }, session);
      await server.waitForMsg('apply_patch_approval_request', { session, where: (m) => m.call_id === 'p1' });
      server.submit({ type: 'patch_approval', id: 'p1', decision: 'approved_for_session' }, session);
      await server.waitForMsg('task_complete', { session, id: first });
      expect(await readFile(approved, 'utf8')).toBe('two\n');

      // The link now points elsewhere (the model can do that: the link is in the workspace).
      await rm(join(workspace, 'link.txt'));
      await symlink(other, join(workspace, 'link.txt'));
      const second = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'edit it again' }] }, session);
      await server.waitForMsg('apply_patch_approval_request', { session, where: (m) => m.call_id === 'p2' });
      server.submit({ type: 'patch_approval', id: 'p2', decision: 'denied' }, session);
      await server.waitForMsg('task_complete', { session, id: second });
      expect(await readFile(other, 'utf8')).toBe('untouched\n');
    } finally {
      await finishE2E(e2e);
      await rm(outside, { recursive: true, force: true });
      await rm(privateTmp, { recursive: true, force: true });
    }
  });
});
