/**
 * The fan-out of `fanout`, spread over machines: this example starts a NATS server and two
 * `troupe worker` processes that load the tools with `--tools`, and drives them from a gateway
 * runtime. The session names the tool set; its sub-agents land on either worker.
 *
 *   npm run example -- distributed      (needs nats-server on the PATH)
 *
 * In your own project, import from 'troupe' instead of '../index.js'.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectRuntime } from '../index.js';
import { FILES, PROMPT, ROLES, script } from './fanout-task.js';
import { exampleModel, workspace } from './support.js';

const TROUPE = fileURLToPath(new URL('../../bin/troupe.js', import.meta.url));
const TOOLS = fileURLToPath(new URL('./fanout-tools.js', import.meta.url));

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once `check` holds, polling; rejects after `ms` with `what`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });

const model = await exampleModel(script);
const project = await workspace(FILES);
const scratch = await mkdtemp(join(tmpdir(), 'troupe-example-nats-'));
const children: ChildProcess[] = [];
let runtime: Awaited<ReturnType<typeof connectRuntime>> | null = null;
try {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  children.push(spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(scratch, 'store')], { stdio: 'ignore' }));
  await until(() => accepts(port), 'nats-server');
  for (const id of ['worker-a', 'worker-b']) {
    const ready = join(scratch, `${id}.ready`);
    const args = ['worker', '--nats', url, '--worker-id', id, '--capacity', '4', '--tools', `audit=${TOOLS}`, '--ready-file', ready];
    const worker = spawn(process.execPath, [TROUPE, ...args], {
      env: { ...process.env, ...model.env, TROUPE_HOME: join(scratch, id), TROUPE_LOG: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(worker);
    await until(() => existsSync(ready), `${id} to take sessions`);
  }
  runtime = await connectRuntime({ nats: url });
  const placedOn = new Map<string, string>();
  runtime.onEvent(({ msg }) => {
    if (msg.type === 'session_configured') placedOn.set(msg.session_id, msg.worker_id);
    if (msg.type === 'agent_spawned') console.log(`spawned ${msg.nickname ?? msg.agent_id} (${msg.role ?? 'no role'})`);
  });
  const result = await runtime.run({ prompt: PROMPT, cwd: project.dir, tool_sets: ['audit'], agent_roles: ROLES, approval_policy: 'never' });
  console.log(`\n${result.finalMessage ?? '(no final message)'}`);
  // Each session's events come on its own subject: a child's first one may still be on its way.
  const agents = result.items.flatMap((item) => (item.type === 'agent_spawned' ? [item.agent_id] : []));
  await until(() => agents.every((id) => placedOn.has(id)), "every agent's placement");
  console.log(
    `\nsessions per worker: ${JSON.stringify(Object.fromEntries([...new Set(placedOn.values())].map((w) => [w, [...placedOn.values()].filter((v) => v === w).length])))}`,
  );
} finally {
  await runtime?.close();
  for (const child of children.reverse()) {
    child.kill('SIGTERM');
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
  await rm(scratch, { recursive: true, force: true });
  await project.dispose();
  await model.close();
}
