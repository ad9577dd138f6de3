import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppServerProcess, troupeBin } from '../support/app-server-process.js';
import { answerFromInspector, inspectorUrlIn, readInspectorStream } from '../support/inspector-client.js';
import { startNatsServer, type NatsServerProcess } from '../support/nats-server.js';
import { waitFor } from '../support/wait.js';
import { WorkerProcess } from '../support/worker-process.js';
import { startFakeModelServer, type FakeModelServer } from '../../testing/index.js';
import { outputFor } from '../../testing/requests.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Troupe {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

/** A troupe command as a user runs it (stdin not a terminal), its output collected, killed after the test. */
function startTroupe(args: readonly string[], env: Record<string, string> = {}): Troupe {
  const child = spawn(process.execPath, ['--conditions=development', troupeBin(), ...args], {
    env: { ...process.env, TROUPE_LOG: 'warn', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

describe('troupe exec --inspect', () => {
  it('leaves the approval to the page, and the turn goes on when the page answers', async () => {
    const model = await startFakeModelServer();
    cleanups.push(() => model.close());
    const home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
    const workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const file = join(workspace, 'approved.txt');
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'touch', arguments: { command: ['touch', file] } }] },
      { kind: 'response', match: (r) => outputFor(r, 'touch') !== undefined, items: [{ type: 'message', text: 'touched' }] },
    );
    const exec = startTroupe(['exec', '--inspect', '--approval-policy', 'untrusted', '-C', workspace, 'touch it'], {
      OPENAI_BASE_URL: model.url,
      OPENAI_API_KEY: 'test-key',
      TROUPE_HOME: home,
      TROUPE_MODEL: 'test-model',
    });
    await waitFor(() => inspectorUrlIn(exec.stderr()) !== undefined, 'the address troupe exec prints', 20_000);
    const url = inspectorUrlIn(exec.stderr())!;
    const seen = await readInspectorStream(url, (events) => events.some((e) => e.msg.type === 'exec_approval_request'));
    const sessionId = seen.find((e) => e.msg.type === 'exec_approval_request')!.session_id!;
    // Nobody at a terminal denied it: the request waits for the page.
    expect(exec.stderr()).not.toContain('denied');
    expect((await answerFromInspector(url, { session_id: sessionId, call_id: 'touch', kind: 'exec', decision: 'approved' })).status).toBe(202);
    expect(await exec.exited).toBe(0);
    expect(exec.stdout()).toBe('touched\n');
    expect(existsSync(file)).toBe(true);
  });
});

describe('the inspector of a NATS cluster', () => {
  it('troupe inspect and worker --inspect show the sessions of the namespace, and an answer from the page reaches the session', async () => {
    const nats: NatsServerProcess = await startNatsServer();
    cleanups.push(() => nats.stop());
    const model: FakeModelServer = await startFakeModelServer();
    cleanups.push(() => model.close());
    const dir = await mkdtemp(join(tmpdir(), 'troupe-inspect-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const namespace = 'inspect';
    const worker = await WorkerProcess.start({ id: 'w1', natsUrl: nats.url, namespace, capacity: 4, modelUrl: model.url, dir, home: dir, args: ['--inspect'] });
    cleanups.push(() => worker.kill());
    const inspect = startTroupe(['inspect', '--nats', nats.url, '--namespace', namespace]);
    const client = await AppServerProcess.start({ modelUrl: model.url, args: ['--nats', nats.url, '--namespace', namespace] });
    cleanups.push(() => client.dispose());
    await waitFor(() => inspectorUrlIn(inspect.stderr()) !== undefined, 'the address troupe inspect prints', 20_000);
    await waitFor(() => inspectorUrlIn(worker.stderr) !== undefined, 'the address the worker prints', 20_000);

    // Not under the worker's TROUPE_HOME, which a sandboxed command may not write.
    const workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
    cleanups.push(() => rm(workspace, { recursive: true, force: true }));
    const file = join(workspace, 'approved.txt');
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'touch', arguments: { command: ['touch', file] } }] },
      { kind: 'response', match: (r) => outputFor(r, 'touch') !== undefined, items: [{ type: 'message', text: 'touched' }] },
    );
    const sessionId = await client.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = client.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch it' }] }, sessionId);
    await client.waitForMsg('exec_approval_request', { session: sessionId });

    // troupe inspect sees the session, on the worker that runs it, and its pending approval.
    const url = inspectorUrlIn(inspect.stderr())!;
    const seen = await readInspectorStream(url, (events) => events.some((e) => e.msg.type === 'exec_approval_request'));
    expect(seen.find((e) => e.msg.type === 'session_configured')?.msg).toMatchObject({ session_id: sessionId, worker_id: 'w1' });

    // The answer goes from the inspector process to the session; the client that opened it sees the turn end.
    const answer = await answerFromInspector(url, { session_id: sessionId, call_id: 'touch', kind: 'exec', decision: 'approved' });
    expect(answer.status).toBe(202);
    const end = await client.waitForMsg('task_complete', { session: sessionId, id: turn });
    expect(end.msg.last_agent_message).toBe('touched');
    expect(existsSync(file)).toBe(true);

    // The worker's own page follows the namespace too.
    const fromWorker = await readInspectorStream(inspectorUrlIn(worker.stderr)!, (events) =>
      events.some((e) => e.session_id === sessionId && e.msg.type === 'task_complete'),
    );
    expect(fromWorker.some((e) => e.msg.type === 'exec_command_end' && e.session_id === sessionId)).toBe(true);

    // SIGINT stops the standalone inspector; it shuts down no session.
    inspect.child.kill('SIGINT');
    expect(await inspect.exited).toBe(0);
    client.submit({ type: 'user_turn', items: [{ type: 'text', text: 'still here?' }] }, sessionId);
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'yes' }] });
    await client.waitForMsg('agent_message', { session: sessionId, where: (m) => m.message === 'yes' });
  });

  it('troupe inspect without NATS, and a bad --inspect port, are usage errors', async () => {
    const bare = startTroupe(['inspect']);
    expect(await bare.exited).toBe(2);
    expect(bare.stderr()).toContain('inspect needs --nats URL');
    const client = await AppServerProcess.start({ modelUrl: 'http://127.0.0.1:9', args: ['--inspect=http'] });
    cleanups.push(() => client.dispose());
    expect(await client.end()).toBe(2);
    expect(client.stderr).toContain('--inspect=PORT needs a port from 0 to 65535, got "http"');
  });
});
