/**
 * Exec-policy rules through wrappers and shell tricks, end to end: `troupe app-server` over
 * stdio against the fake model server, with the rules in its TROUPE_HOME. The sessions run
 * without a sandbox (danger-full-access), so a rule that did not hold would really delete the
 * directory the test checks.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppServerProcess, seqProblems } from './support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { outputFor } from '../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
let target: string;

beforeEach(async () => {
  model = await startFakeModelServer();
  server = await AppServerProcess.start({ modelUrl: model.url });
  workspace = realpathSync(await mkdtemp(join(tmpdir(), 'troupe-ws-')));
  target = join(workspace, 'keep');
  await mkdir(target);
  await writeFile(join(target, 'file'), 'precious\n');
  await writeFile(join(server.home, 'rules.json'), JSON.stringify({ rules: [{ prefix: ['rm'], decision: 'forbidden', reason: 'use the trash' }] }));
});

afterEach(async () => {
  expect(server.junk).toEqual([]);
  expect(seqProblems(server.events)).toEqual([]);
  expect(model.violations).toEqual([]);
  await server.dispose();
  await model.close();
  await rm(workspace, { recursive: true, force: true });
});

const call = (call_id: string, name: 'shell' | 'exec_command', args: Record<string, unknown>) => ({
  type: 'function_call' as const,
  name,
  call_id,
  arguments: args,
});
const done = { kind: 'response' as const, items: [{ type: 'message' as const, text: 'done' }] };

describe('a forbidden rule', () => {
  it('holds through env, shells with flags, quoting, find -delete and xargs', async () => {
    const calls = [
      call('env', 'shell', { command: ['env', '-i', 'rm', '-rf', 'keep'] }),
      call('bash-e-c', 'shell', { command: ['bash', '-e', '-c', 'rm -rf keep'] }),
      call('env-bash', 'shell', { command: ['/usr/bin/env', 'bash', '-c', "r''m -rf keep"] }),
      call('ansi-c', 'shell', { command: ['sh', '-c', "$'\\x72m' -rf keep"] }),
      call('find', 'shell', { command: ['find', 'keep', '-delete'] }),
      call('xargs', 'exec_command', { cmd: 'echo keep | xargs rm -rf' }),
      call('timeout', 'exec_command', { cmd: 'timeout 5 nice -n 1 sudo rm -rf keep' }),
    ];
    model.enqueue({ kind: 'response', items: calls }, done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'on-request', sandbox_policy: 'danger-full-access' });
    await server.turn(session, 'clean up');

    expect(existsSync(join(target, 'file'))).toBe(true);
    const events = server.ofSession(session);
    expect(events.filter((e) => e.msg.type === 'exec_approval_request' || e.msg.type === 'exec_command_begin')).toEqual([]);
    for (const { call_id } of calls) {
      expect(outputFor(model.requests[1]!, call_id), call_id).toMatch(
        /forbidden by the exec-policy rule forbidden \["rm"\] \(.*rules\.json:\d+\): (.* )?use the trash/,
      );
    }
  });
});

describe('a script troupe cannot resolve', () => {
  it('asks under on-request; denied, nothing runs', async () => {
    model.enqueue({ kind: 'response', items: [call('c1', 'shell', { command: ['bash', '-c', 'x=rm; $x -rf keep'] })] }, done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'on-request', sandbox_policy: 'danger-full-access' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg).toMatchObject({
      call_id: 'c1',
      reason: expect.stringContaining('cannot rule out that this command runs what the exec-policy rule forbidden ["rm"]'),
    });
    server.submit({ type: 'exec_approval', id: 'c1', decision: 'denied' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(existsSync(join(target, 'file'))).toBe(true);
  });

  it('is refused under never, and the model is told why', async () => {
    model.enqueue({ kind: 'response', items: [call('c1', 'exec_command', { cmd: '/bin/r? -rf keep' })] }, done);
    const session = await server.newSession({ cwd: workspace, approval_policy: 'never', sandbox_policy: 'danger-full-access' });
    await server.turn(session, 'go');
    expect(existsSync(join(target, 'file'))).toBe(true);
    expect(server.ofSession(session).some((e) => e.msg.type === 'exec_approval_request' || e.msg.type === 'exec_command_begin')).toBe(false);
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/Not run: troupe cannot rule out .*forbidden \["rm"\].*"never" forbids asking/);
  });
});
