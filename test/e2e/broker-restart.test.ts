import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { seqProblems, type AppServerProcess } from '../support/app-server-process.js';
import { mentions, outputFor } from '../../testing/requests.js';
import { waitFor } from '../support/wait.js';
import { NatsCluster } from '../support/nats-cluster.js';

/**
 * The broker dies (kill -9) while sessions run and comes back on the same port with the same
 * store. Some sessions finish shell commands while it is away, so their events
 * (exec_command_output_delta, exec_command_end) and call records are produced with nobody to
 * take them; others get their approval from the client while it is away, so the op has to wait
 * in the gateway. Every event must reach the client once and in order, every op must arrive,
 * every tool must run once, and every turn must end soon after the broker is back.
 */

const cluster = new NatsCluster({ name: 'broker-restart', settleMs: 200 });

/**
 * Short leases, and an outage longer than one: every lease has run out when the broker comes
 * back, and still no worker may take a session of another that is alive.
 */
const LEASE_MS = 3_000;

/** Sessions whose command ends during the outage, and sessions approved during it. */
const GATED = 4;
const APPROVED = 2;

function shell(script: string, callId: string) {
  return { type: 'function_call' as const, name: 'shell', call_id: callId, arguments: { command: ['sh', '-c', script] } };
}

async function lines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '');
}

async function openSession(gateway: AppServerProcess, approval: 'never' | 'untrusted'): Promise<string> {
  const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir, approval_policy: approval, sandbox_policy: 'danger-full-access' } });
  const event = await gateway.waitFor((e) => e.id === id && (e.msg.type === 'session_configured' || e.msg.type === 'error'), 'the session', 30_000);
  if (event.msg.type !== 'session_configured') throw new Error(`no session: ${JSON.stringify(event.msg)}`);
  return event.msg.session_id;
}

/** Lines of a process's stderr logged by pino with this message. */
function logged(stderr: string, message: string): number {
  return stderr.split('\n').filter((line) => line.includes(`"msg":"${message}"`)).length;
}

describe('a broker restart', { timeout: 120_000 }, () => {
  it('loses no event and no op, runs no tool twice, and lets every turn end soon after the broker is back', async () => {
    const env = { TROUPE_LEASE_MS: String(LEASE_MS) };
    // The gateway starts beside the workers; the first op waits until both are ready.
    const [gateway] = await Promise.all([cluster.startGateway(), cluster.startWorker('a', 4, { env }), cluster.startWorker('b', 4, { env })]);
    const gate = join(cluster.dir, 'gate');
    const ran = (i: number) => join(cluster.dir, `ran-${i}`);
    const done = (i: number) => join(cluster.dir, `done-${i}`);

    const sessions: { sessionId: string; turnId: string; gated: boolean; index: number }[] = [];
    for (let i = 0; i < GATED + APPROVED; i++) {
      const gated = i < GATED;
      const tag = `S${i}:`;
      const command = gated
        ? `echo run >> ${ran(i)}; while [ ! -e ${gate} ]; do sleep 0.1; done; for n in 1 2 3; do echo "out ${i} $n"; done; touch ${done(i)}`
        : `echo run >> ${ran(i)}`;
      cluster.model.enqueue(
        { kind: 'response', match: (r) => mentions(r, tag) && outputFor(r, `call-${i}`) === undefined, items: [shell(command, `call-${i}`)] },
        { kind: 'response', match: (r) => mentions(r, tag) && outputFor(r, `call-${i}`) !== undefined, items: [{ type: 'message', text: `done ${i}` }] },
      );
      const sessionId = await openSession(gateway, gated ? 'never' : 'untrusted');
      const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: `${tag} run it` }] }, sessionId);
      sessions.push({ sessionId, turnId, gated, index: i });
    }
    // Every gated command is running, every other session waits for its approval.
    for (const s of sessions) {
      if (s.gated) await waitFor(() => existsSync(ran(s.index)), `command ${s.index} to start`, 30_000);
      else await gateway.waitForMsg('exec_approval_request', { session: s.sessionId });
    }

    await cluster.nats.crash();
    const crashedAt = performance.now();
    // Everyone has noticed: the workers took their ready files down, the gateway logged it.
    await waitFor(() => cluster.workers.every((w) => !existsSync(w.readyFile)), 'the workers to see the broker gone', 30_000);
    await waitFor(() => logged(gateway.stderr, 'disconnected from NATS; reconnecting') > 0, 'the gateway to see the broker gone', 30_000);

    // While the broker is away: the commands end (their events have nowhere to go yet) and the
    // client approves the waiting calls (the ops have nowhere to go yet).
    await writeFile(gate, '');
    for (const s of sessions) {
      if (s.gated) await waitFor(() => existsSync(done(s.index)), `command ${s.index} to end`, 30_000);
      else gateway.submit({ type: 'exec_approval', id: `call-${s.index}`, decision: 'approved' }, s.sessionId);
    }
    await waitFor(
      () => cluster.workers.reduce((n, w) => n + logged(w.stderr, 'holding events until NATS is back'), 0) >= GATED,
      'the workers to hold the events of every gated session',
      30_000,
    );
    await waitFor(() => logged(gateway.stderr, 'holding ops until NATS is back') >= 1, 'the gateway to hold the approvals', 30_000);
    await waitFor(() => performance.now() - crashedAt > 2 * LEASE_MS, 'every lease to have run out', 30_000);

    await cluster.nats.revive();
    for (const s of sessions) {
      const end = await gateway.waitFor(
        (e) => e.id === s.turnId && (e.msg.type === 'task_complete' || e.msg.type === 'turn_aborted'),
        `the end of turn ${s.index}`,
        60_000,
      );
      expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: `done ${s.index}` });
    }

    expect(seqProblems(gateway.events)).toEqual([]);
    for (const s of sessions) expect(await lines(ran(s.index))).toEqual(['run']);
    for (const s of sessions.filter((x) => x.gated)) {
      const ends = gateway.events.filter((e) => e.session_id === s.sessionId && e.msg.type === 'exec_command_end');
      expect(ends).toHaveLength(1);
    }
    expect(gateway.events.filter((e) => e.msg.type === 'error')).toEqual([]);
    // Nobody took a session of a worker that was alive all along.
    expect(gateway.events.filter((e) => e.msg.type === 'background_event')).toEqual([]);
    for (const w of cluster.workers) expect(logged(w.stderr, 'lost the lease of a session to another worker')).toBe(0);
    expect(cluster.model.violations).toEqual([]);
    expect(gateway.junk).toEqual([]);
  });

  it('stops a session loudly when its log fills while the broker is away, and takes it up from its log once it is back', async () => {
    // Above what a session writes in one burst while NATS is there, below what it writes here.
    const env = { TROUPE_LEASE_MS: String(LEASE_MS), TROUPE_OUTBOX_MAX_EVENTS: '40' };
    // The gateway starts beside the workers; the first op waits until both are ready.
    const [gateway] = await Promise.all([cluster.startGateway(), cluster.startWorker('a', 2, { env }), cluster.startWorker('b', 2, { env })]);
    // The first answer comes while the broker is away, and says a lot.
    const many = Array.from({ length: 60 }, (_, i) => ({ type: 'message' as const, text: `part ${i}` }));
    cluster.model.enqueue(
      {
        kind: 'reply',
        handler: async () => {
          await waitFor(() => !cluster.nats.running, 'the broker to be gone', 30_000);
          return { kind: 'response', items: many };
        },
      },
      { kind: 'response', items: [{ type: 'message', text: 'continued' }] },
    );
    const sessionId = await openSession(gateway, 'never');
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'talk a lot' }] }, sessionId);
    await waitFor(() => cluster.model.requests.length === 1, 'the model request', 30_000);

    await cluster.nats.crash();
    const full = 'the session log is full: the session stops on this worker';
    await waitFor(() => cluster.workers.some((w) => logged(w.stderr, full) > 0), 'the session to stop on a full log', 30_000);
    await cluster.nats.revive();

    const end = await gateway.waitFor(
      (e) => e.id === turnId && (e.msg.type === 'task_complete' || e.msg.type === 'turn_aborted'),
      'the end of the turn',
      60_000,
    );
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'continued' });
    const said = gateway.events
      .filter((e) => e.session_id === sessionId && (e.msg.type === 'error' || e.msg.type === 'background_event'))
      .map((e) => (e.msg.type === 'error' || e.msg.type === 'background_event' ? `${e.msg.type}: ${e.msg.message}` : ''));
    expect(said).toEqual([
      expect.stringMatching(
        /^error: session stopped on worker [ab]: its events are not being stored \(NATS is away or too slow\), and it holds the most it may \(40 events/,
      ),
      expect.stringMatching(/^background_event: session stopped on worker [ab]: .* it continues from its log once NATS is back$/),
      expect.stringMatching(/^background_event: session moved to worker [ab] after worker [ab] stopped$/),
    ]);
    // What the first worker had taken reached the client; then the model was asked again.
    const parts = gateway.events
      .filter((e) => e.session_id === sessionId && e.msg.type === 'agent_message')
      .map((e) => (e.msg.type === 'agent_message' ? e.msg.message : ''));
    expect(parts.length).toBeGreaterThan(0);
    expect(parts.slice(0, -1)).toEqual(many.slice(0, parts.length - 1).map((m) => m.text));
    expect(parts.at(-1)).toBe('continued');
    expect(cluster.model.requests).toHaveLength(2);
    expect(seqProblems(gateway.events)).toEqual([]);
    expect(cluster.model.violations).toEqual([]);
  });
});
