// The image's smoke test (`npm run docker:smoke`, which builds it first): in the container,
// `troupe exec` runs a turn against a scripted model and writes to the workspace volume as the
// non-root user, and `troupe worker` takes a session from a NATS server, then drains on
// `docker stop`. Needs a Docker daemon and nats-server; uses host networking, loopback only.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, URL } from 'node:url';
import { promisify } from 'node:util';
import { startFakeModelServer } from '../dist/testing/index.js';

const run = promisify(execFile);
const IMAGE = process.env.TROUPE_IMAGE ?? 'troupe:latest';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tag = `troupe-smoke-${process.pid}`;
// What bubblewrap needs inside a container: namespaces (seccomp, AppArmor) and a /proc it can mount.
const SANDBOX = ['--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined'];

function check(condition, what) {
  if (!condition) throw new Error(`docker smoke: ${what}`);
  console.log(`ok: ${what}`);
}

async function docker(...args) {
  return (await run('docker', args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(condition, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`docker smoke: timed out waiting for ${what}`);
    await sleep(100);
  }
}

const events = (stdout) =>
  stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));

const model = await startFakeModelServer();
const store = await mkdtemp(join(tmpdir(), 'troupe-smoke-'));
let nats = null;
try {
  // 1. exec in the container, on a fresh named volume: the non-root user writes to /workspace,
  //    from a command run in the bubblewrap sandbox (workspace-write, the default).
  model.enqueue(
    { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'w', arguments: { command: ['touch', '/workspace/written'] } }] },
    { kind: 'response', items: [{ type: 'message', text: 'Wrote it.' }] },
  );
  const exec = await docker(
    'run', '--rm', '--network', 'host', ...SANDBOX, '-v', `${tag}:/workspace`,
    '-e', `OPENAI_BASE_URL=${model.url}`, '-e', 'OPENAI_API_KEY=k',
    IMAGE, 'exec', '--json', '--approval-policy', 'never', 'write a file',
  );
  const done = events(exec).find((e) => e.msg.type === 'task_complete');
  check(done?.msg.last_agent_message === 'Wrote it.', 'troupe exec runs a turn in the container');
  const output = JSON.stringify(model.requests[1]?.body.input ?? []);
  check(output.includes('Exit code: 0'), `the session's sandboxed command wrote to the workspace volume (${output.match(/Exit code: \d+|"output":"[^"]{0,300}/)?.[0]})`);
  const owner = await docker('run', '--rm', '--entrypoint', 'stat', '-v', `${tag}:/workspace`, IMAGE, '-c', '%U', '/workspace/written');
  check(owner.trim() === 'node', 'the file belongs to the non-root user');
  const bwrap = await docker('run', '--rm', '--entrypoint', 'bwrap', IMAGE, '--version');
  check(bwrap.startsWith('bubblewrap'), `bubblewrap is installed (${bwrap.trim()})`);

  // 2. A worker in the container takes a session from NATS, and drains on docker stop.
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  nats = spawn(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], { stdio: 'ignore' });
  await docker(
    'run', '-d', '--name', tag, '--network', 'host', ...SANDBOX, '-v', `${tag}:/workspace`,
    '-e', `OPENAI_BASE_URL=${model.url}`, '-e', 'OPENAI_API_KEY=k', '-e', 'TROUPE_LOG=info',
    IMAGE, 'worker', '--nats', url, '--worker-id', 'smoke', '--ready-file', '/tmp/troupe-ready',
  );
  await until(() => docker('exec', tag, 'test', '-f', '/tmp/troupe-ready').then(() => true, () => false), 'the worker to be ready');
  model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Done on the container.' }] });
  const remote = events(
    (await run(process.execPath, [join(ROOT, 'bin', 'troupe.js'), 'exec', '--json', '--nats', url, '-C', '/workspace', 'hi'], { env: { ...process.env, OPENAI_API_KEY: 'k' } })).stdout,
  );
  check(remote.find((e) => e.msg.type === 'session_configured')?.msg.worker_id === 'smoke', 'the session ran on the containerized worker');
  check(remote.find((e) => e.msg.type === 'task_complete')?.msg.last_agent_message === 'Done on the container.', 'its turn completed');
  await docker('stop', '--time', '60', tag);
  const exitCode = (await docker('inspect', '-f', '{{.State.ExitCode}}', tag)).trim();
  const logs = await run('docker', ['logs', tag]).then((r) => r.stdout + r.stderr);
  check(exitCode === '0' && logs.includes('worker stopped'), `docker stop drains the worker (exit ${exitCode})`);
  console.log('docker smoke: passed');
} finally {
  nats?.kill('SIGTERM');
  await run('docker', ['rm', '-f', tag]).catch(() => undefined);
  await run('docker', ['volume', 'rm', '-f', tag]).catch(() => undefined);
  await model.close();
  await rm(store, { recursive: true, force: true });
}
