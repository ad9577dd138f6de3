import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { troupeBin, type AppServerProcess } from '../support/app-server-process.js';
import { waitFor } from '../support/wait.js';
import { NatsCluster } from '../support/nats-cluster.js';

/**
 * Shutting down with the broker gone: a gateway at the end of its stdin and a worker told to
 * drain both exit within TROUPE_SHUTDOWN_TIMEOUT_MS, say on stderr what they could not deliver,
 * and exit non-zero. The tests' own timeouts, well above the bound, are the only clocks.
 * `troupe mcp-server` and `troupe exec` keep the same bound when their close is held up in the
 * process itself: by a telemetry collector that takes requests and never answers them.
 */

const cluster = new NatsCluster({ name: 'shutdown', settleMs: 200 });

const BOUND = { TROUPE_SHUTDOWN_TIMEOUT_MS: '2000' };

async function openSession(gateway: AppServerProcess): Promise<string> {
  const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir, approval_policy: 'never', sandbox_policy: 'danger-full-access' } });
  const event = await gateway.waitFor((e) => e.id === id && (e.msg.type === 'session_configured' || e.msg.type === 'error'), 'the session', 30_000);
  if (event.msg.type !== 'session_configured') throw new Error(`no session: ${JSON.stringify(event.msg)}`);
  return event.msg.session_id;
}

function logged(stderr: string, message: string): number {
  return stderr.split('\n').filter((line) => line.includes(`"msg":"${message}"`)).length;
}

describe('shutdown with the broker gone', { timeout: 60_000 }, () => {
  it('ends a gateway at the end of stdin, naming the op and the session it could not deliver', async () => {
    await cluster.startWorker('w', 2);
    const gateway = await cluster.startGateway(BOUND);
    const sessionId = await openSession(gateway);

    await cluster.nats.crash();
    await waitFor(() => logged(gateway.stderr, 'disconnected from NATS; reconnecting') > 0, 'the gateway to see the broker gone', 30_000);
    const turn = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'never delivered' }] }, sessionId);

    const code = await gateway.end();
    expect(code).toBe(1);
    expect(gateway.stderr).toMatch(/gave up shutting down after 2000 ms/);
    expect(gateway.stderr).toContain(`op user_turn (id ${turn}) for session ${sessionId} was not delivered`);
    expect(gateway.stderr).toContain(`session ${sessionId} did not confirm its shutdown`);
  });

  it('ends a draining worker, naming the session whose events it could not store', async () => {
    const worker = await cluster.startWorker('w', 2, { env: BOUND });
    const gateway = await cluster.startGateway();
    const sessionId = await openSession(gateway);
    // The answer comes while the broker is away: the turn ends, its last events wait.
    cluster.model.enqueue({
      kind: 'reply',
      handler: async () => {
        await waitFor(() => !cluster.nats.running, 'the broker to be gone', 30_000);
        return { kind: 'response', items: [{ type: 'message', text: 'said to nobody' }] };
      },
    });
    gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'hello' }] }, sessionId);
    await waitFor(() => cluster.model.requests.length === 1, 'the model request', 30_000);

    await cluster.nats.crash();
    await waitFor(() => logged(worker.stderr, 'holding events until NATS is back') > 0, 'the worker to hold the events', 30_000);
    worker.signal('SIGTERM');

    expect(await worker.exited).toBe(1);
    expect(existsSync(worker.readyFile)).toBe(false);
    expect(worker.stderr).toMatch(/gave up handing its sessions over after 2000 ms/);
    expect(worker.stderr).toMatch(new RegExp(`session ${sessionId}: \\d+ events and records`));
  });
});

/** A collector that reads every request and answers none: an export waits for its own timeout (10 s). */
async function silentCollector(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((request) => void request.resume());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Run troupe with telemetry going to `collectorUrl`: `input` on stdin, which ends once stdout
 * has a line `until` accepts (at once without it); its exit code and stderr.
 */
async function runWithCollector(
  args: readonly string[],
  collectorUrl: string,
  input: string,
  until?: (line: string) => boolean,
): Promise<{ code: number | null; stderr: string }> {
  const home = join(cluster.dir, 'home');
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'config.json'), JSON.stringify({ otel: { exporter: 'otlp-http-json', endpoint: collectorUrl } }));
  const child = spawn(process.execPath, [troupeBin(), ...args], {
    cwd: cluster.dir,
    env: {
      ...process.env,
      OPENAI_BASE_URL: cluster.model.url,
      OPENAI_API_KEY: 'test-key',
      TROUPE_HOME: home,
      TROUPE_MODEL: 'test-model',
      TROUPE_SHUTDOWN_TIMEOUT_MS: '1000',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = new Promise<number | null>((resolve) => child.on('exit', (exit) => resolve(exit)));
  const seen = new Promise<void>((resolve) => {
    if (!until) return resolve();
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (until(line)) resolve();
    });
  });
  if (!until) child.stdout.resume();
  try {
    child.stdin.write(input);
    await Promise.race([seen, code]);
    child.stdin.end();
    return { code: await code, stderr };
  } finally {
    child.kill('SIGKILL');
  }
}

describe('shutdown held up in the process', { timeout: 60_000 }, () => {
  it('ends troupe mcp-server at the end of stdin within the bound', async () => {
    const collector = await silentCollector();
    try {
      cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Hi.' }] });
      const rpc = (message: Record<string, unknown>) => `${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`;
      const input =
        rpc({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }) +
        rpc({ method: 'notifications/initialized' }) +
        rpc({ id: 2, method: 'tools/call', params: { name: 'troupe', arguments: { prompt: 'hi', cwd: cluster.dir } } });
      // Stdin ends once the call is answered.
      const { code, stderr } = await runWithCollector(['mcp-server'], collector.url, input, (line) => line.includes('"id":2'));
      expect(stderr).toMatch(/gave up shutting down after 1000 ms/);
      expect(code).not.toBeNull();
    } finally {
      await collector.close();
    }
  });

  it('ends troupe exec after its turn within the bound', async () => {
    const collector = await silentCollector();
    try {
      cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Done.' }] });
      const { code, stderr } = await runWithCollector(['exec', 'say done'], collector.url, '');
      expect(stderr).toMatch(/gave up shutting down after 1000 ms/);
      expect(code).toBe(0);
    } finally {
      await collector.close();
    }
  });
});
