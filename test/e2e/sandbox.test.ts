/**
 * The sandbox, escalation, exec-policy rules and exec sessions end to end, through
 * `troupe app-server` over stdio against the fake model server. Needs a working bubblewrap;
 * skipped (with the reason printed) where there is none.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectSandbox } from '../../lib/sandbox/detect.js';
import { AppServerProcess, seqProblems } from '../support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../../testing/index.js';
import { outputFor } from '../../testing/requests.js';
import { processesMatching } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[e2e sandbox] skipping: ${availability.reason}`);

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
let outside: string;

beforeEach(async () => {
  model = await startFakeModelServer();
  server = await AppServerProcess.start({ modelUrl: model.url });
  workspace = realpathSync(await mkdtemp(join(tmpdir(), 'troupe-ws-')));
  outside = realpathSync(await mkdtemp('/var/tmp/troupe-e2e-out-'));
});

afterEach(async () => {
  expect(server.junk).toEqual([]);
  expect(seqProblems(server.events)).toEqual([]);
  expect(model.violations).toEqual([]);
  await server.dispose();
  await model.close();
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const shell = (call_id: string, command: string[], extra: Record<string, unknown> = {}) => ({
  kind: 'response' as const,
  items: [{ type: 'function_call' as const, name: 'shell', call_id, arguments: { command, ...extra } }],
});
const done = { kind: 'response' as const, items: [{ type: 'message' as const, text: 'done' }] };

describe.skipIf(!availability.ok)('escalation', () => {
  it('on-failure: a sandbox denial asks to run outside; approved, it runs outside', async () => {
    const target = join(outside, 'made.txt');
    model.enqueue(shell('c1', ['sh', '-c', `echo hi > ${target}`]), done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'on-failure' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'write it' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg).toMatchObject({ call_id: 'c1', command: ['sh', '-c', `echo hi > ${target}`], reason: expect.stringMatching(/sandbox/) });
    // The sandboxed attempt ran and failed before the question.
    const firstEnd = server.ofSession(session).find((e) => e.msg.type === 'exec_command_end');
    expect(firstEnd?.msg).toMatchObject({ exit_code: expect.any(Number) });
    expect(existsSync(target)).toBe(false);
    server.submit({ type: 'exec_approval', id: 'c1', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(readFileSync(target, 'utf8')).toBe('hi\n');
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/^Exit code: 0/);
  });

  it('on-failure: denied, nothing is written and the model is told', async () => {
    const target = join(outside, 'made.txt');
    model.enqueue(shell('c1', ['sh', '-c', `echo hi > ${target}`]), done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'on-failure' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'write it' }] }, session);
    await server.waitForMsg('exec_approval_request', { session });
    server.submit({ type: 'exec_approval', id: 'c1', decision: 'denied' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(existsSync(target)).toBe(false);
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/denied/);
  });

  it('on-request: the justification is the reason; approved, the command runs outside the sandbox', async () => {
    const target = join(outside, 'escalated.txt');
    model.enqueue(shell('c1', ['sh', '-c', `echo up > ${target}`], { with_escalated_permissions: true, justification: 'must write the shared cache' }), done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'on-request' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg.reason).toBe('must write the shared cache');
    server.submit({ type: 'exec_approval', id: 'c1', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(readFileSync(target, 'utf8')).toBe('up\n');
  });

  it('on-request without escalation: a denial goes back to the model with a hint, no question', async () => {
    model.enqueue(shell('c1', ['sh', '-c', `echo x > ${outside}/f`]), done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'on-request' });
    await server.turn(session, 'go');
    expect(server.ofSession(session).some((e) => e.msg.type === 'exec_approval_request')).toBe(false);
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/Read-only file system[\s\S]*with_escalated_permissions/);
  });

  it('never: an escalation request is refused, saying escalation is not available', async () => {
    model.enqueue(shell('c1', ['touch', join(outside, 'x')], { with_escalated_permissions: true, justification: 'please' }), done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'never' });
    await server.turn(session, 'go');
    expect(server.ofSession(session).some((e) => e.msg.type === 'exec_approval_request' || e.msg.type === 'exec_command_begin')).toBe(false);
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/not available.*"never"/);
    expect(existsSync(join(outside, 'x'))).toBe(false);
  });

  it('untrusted: asks first for a command not known to be read-only, runs ls without asking', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'ls', arguments: { command: ['ls'] } }] },
      shell('mk', ['mkdir', 'made']),
      done,
    );
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg.call_id).toBe('mk');
    server.submit({ type: 'exec_approval', id: 'mk', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(existsSync(join(workspace, 'made'))).toBe(true);
  });
});

describe.skipIf(!availability.ok)('exec-policy rules', () => {
  it('allow runs without asking, prompt asks, forbidden never runs and names the rule', async () => {
    await writeFile(
      join(server.home, 'rules.json'),
      JSON.stringify(
        {
          rules: [
            { prefix: ['mkdir'], decision: 'allow' },
            { prefix: ['touch'], decision: 'prompt' },
            { prefix: ['rm'], decision: 'forbidden', reason: 'use git clean' },
          ],
        },
        null,
        2,
      ),
    );
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'shell', call_id: 'allowed', arguments: { command: ['mkdir', 'a'] } },
          { type: 'function_call', name: 'shell', call_id: 'forbidden', arguments: { command: ['rm', '-rf', 'a'] } },
        ],
      },
      shell('prompted', ['touch', 'b']),
      done,
    );
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg).toMatchObject({ call_id: 'prompted', reason: expect.stringContaining('prompt ["touch"]') });
    server.submit({ type: 'exec_approval', id: 'prompted', decision: 'approved' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(server.ofSession(session).filter((e) => e.msg.type === 'exec_approval_request')).toHaveLength(1);
    expect(existsSync(join(workspace, 'a'))).toBe(true);
    expect(existsSync(join(workspace, 'b'))).toBe(true);
    expect(outputFor(model.requests[1]!, 'forbidden')).toMatch(/forbidden by the exec-policy rule forbidden \["rm"\] \(.*rules\.json:\d+\): use git clean/);
  });

  it('an invalid rules file stops commands with an error naming file and line', async () => {
    await writeFile(join(server.home, 'rules.json'), '{\n  "rules": [\n    { "prefix": ["ls"], "decision": "sometimes" }\n  ]\n}\n');
    model.enqueue(shell('c1', ['ls']), done);
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'go');
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/rules\.json:3: rules\.0\.decision/);
  });
});

describe.skipIf(!availability.ok)('exec sessions', () => {
  it('a PTY round trip across turns, and no process left after shutdown', async () => {
    // A duration no other process will have (other test files run beside this one).
    const marker = `sleep 1007.${process.pid}${Date.now() % 10_000}`;
    model.enqueue(
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'exec_command', call_id: 'start', arguments: { cmd: 'cat', tty: true, yield_time_ms: 500 } }],
      },
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'exec_command', call_id: 'bg', arguments: { cmd: `${marker} & ${marker}`, yield_time_ms: 250 } }],
      },
      done,
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'start cat');
    const started = JSON.parse(outputFor(model.requests[1]!, 'start')!) as { session_id: number };
    expect(started.session_id).toBeTypeOf('number');
    expect(server.ofSession(session).find((e) => e.msg.type === 'exec_command_begin')?.msg).toMatchObject({ call_id: 'start' });

    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'write_stdin', call_id: 'w', arguments: { session_id: started.session_id, chars: 'marco\n', yield_time_ms: 800 } },
        ],
      },
      done,
    );
    await server.turn(session, 'talk to it');
    const reply = JSON.parse(outputFor(model.requests[4]!, 'w')!) as { output: string; session_id: number };
    expect(reply.output).toBe('marco\r\nmarco\r\n');
    expect(reply.session_id).toBe(started.session_id);
    expect(processesMatching(marker).length).toBeGreaterThan(0);
    expect(processesMatching('cat').length).toBeGreaterThan(0);

    expect(await server.end()).toBe(0);
    await waitFor(() => processesMatching(marker).length === 0, 'the exec sessions to be killed');
  });
});

describe('no sandbox backend', () => {
  it('a sandboxed policy refuses to run, saying how to install one', async () => {
    await server.dispose();
    server = await AppServerProcess.start({ modelUrl: model.url, env: { TROUPE_SANDBOX_BACKEND: 'none' } });
    model.enqueue(shell('c1', ['touch', 'x']), done);
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'go');
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/no sandbox is available[\s\S]*apt-get install bubblewrap[\s\S]*danger-full-access/);
    expect(existsSync(join(workspace, 'x'))).toBe(false);
  });
});
