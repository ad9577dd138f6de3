import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { waitFor } from '../support/wait.js';
import { NatsCluster } from '../support/nats-cluster.js';

/**
 * Shutting down with the broker gone: a gateway at the end of its stdin and a worker told to
 * drain both exit within TROUPE_SHUTDOWN_TIMEOUT_MS, say on stderr what they could not deliver,
 * and exit non-zero. The tests' own timeouts, well above the bound, are the only clocks.
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
