import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { NatsBus } from '../../lib/bus/nats.js';
import { subjects } from '../../lib/bus/subjects.js';
import { seqProblems, type AppServerProcess } from '../support/app-server-process.js';
import { waitFor } from '../support/wait.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';

/**
 * troupe on NATS, end to end: real nats-server, real `troupe worker` processes, and
 * `troupe app-server --nats` as the gateway a client drives over stdio. Each test works in a
 * namespace of its own, so the workers of one test never see another's placements.
 */

const cluster = new NatsCluster({ name: 'nats-e2e' });

/** Ask for a session; resolves to the worker that took it, or the error the client got. */
async function place(gateway: AppServerProcess): Promise<{ sessionId: string; workerId: string } | { error: string }> {
  const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir } });
  const event = await gateway.waitFor((e) => e.id === id && (e.msg.type === 'session_configured' || e.msg.type === 'error'), `the answer to ${id}`);
  if (event.msg.type === 'session_configured') return { sessionId: event.msg.session_id, workerId: event.msg.worker_id };
  if (event.msg.type === 'error') return { error: event.msg.message };
  throw new Error('unreachable');
}

async function placeOk(gateway: AppServerProcess): Promise<{ sessionId: string; workerId: string }> {
  const placed = await place(gateway);
  if ('error' in placed) throw new Error(`placement failed: ${placed.error}`);
  return placed;
}

describe('troupe on NATS', () => {
  it('spreads sessions over workers, skips a full one, and says when all are full', async () => {
    await Promise.all([cluster.startWorker('w1', 2), cluster.startWorker('w2', 2)]);
    const gateway = await cluster.startGateway();
    const placed: { sessionId: string; workerId: string }[] = [];
    for (let i = 0; i < 4; i++) placed.push(await placeOk(gateway));
    const perWorker = (id: string) => placed.filter((p) => p.workerId === id).length;
    expect([perWorker('w1'), perWorker('w2')]).toEqual([2, 2]);

    const full = await place(gateway);
    expect(full).toEqual({ error: expect.stringMatching(/no host is available/) });

    // A session on w1 ends: w1 has room again and is the only worker that can take the next one.
    const onW1 = placed.find((p) => p.workerId === 'w1');
    gateway.submit({ type: 'shutdown' }, onW1?.sessionId);
    await gateway.waitForMsg('shutdown_complete', { session: onW1?.sessionId });
    let next = await place(gateway);
    // The worker rejoins placement just after its session's last event: allow that moment.
    for (let tries = 0; 'error' in next && tries < 20; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      next = await place(gateway);
    }
    expect(next).toMatchObject({ workerId: 'w1' });
    expect(gateway.junk).toEqual([]);
  });

  it('answers a placement with a clear error when no worker is there', async () => {
    const gateway = await cluster.startGateway();
    const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir } });
    const error = await gateway.waitForMsg('error', { id });
    expect(error.session_id).toBeNull();
    expect(error.msg.message).toMatch(/no host is available to run sessions/);
  });

  it('runs turns on a worker and reports its id', async () => {
    await cluster.startWorker('solo', 4);
    const gateway = await cluster.startGateway();
    const { sessionId, workerId } = await placeOk(gateway);
    expect(workerId).toBe('solo');
    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Hello from a worker.' }] });
    const end = await gateway.turn(sessionId, 'hi');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'Hello from a worker.' });
  });

  it('runs the tools a worker loaded with --tools for sessions that name their set, in the worker, and refuses a set it lacks', async () => {
    const tools = join(import.meta.dirname, '..', 'fixtures', 'ticket-tools.mjs');
    const worker = await cluster.startWorker('tooled', 4, { args: ['--tools', `tickets=${tools}`] });
    const gateway = await cluster.startGateway();
    const sessionId = await gateway.newSession({ cwd: cluster.dir, tool_sets: ['tickets'], approval_policy: 'on-request' });
    cluster.model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'lookup_ticket', call_id: 'look', arguments: { number: 3 } },
          { type: 'function_call', name: 'close_ticket', call_id: 'close', arguments: { number: 3 } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'closed it' }] },
    );
    const turn = gateway.turn(sessionId, 'close ticket 3');
    const ask = await gateway.waitForMsg('tool_approval_request', { session: sessionId });
    expect(ask.msg).toMatchObject({ call_id: 'close', tool: 'close_ticket', arguments: { number: 3 } });
    gateway.submit({ type: 'tool_approval', id: 'close', decision: 'approved' }, sessionId);
    expect((await turn).msg).toMatchObject({ type: 'task_complete', last_agent_message: 'closed it' });
    const request = cluster.model.requests.at(-1)!;
    expect(JSON.parse(outputFor(request, 'look')!)).toMatchObject({ number: 3, pid: worker.pid, session: sessionId });
    expect(outputFor(request, 'close')).toBe('closed 3');

    const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir, tool_sets: ['billing'] } });
    const refused = await gateway.waitForMsg('error', { id });
    expect(refused.msg.message).toMatch(/the session needs tool set "billing", which this host does not have \(it has: tickets;/);
  });

  it('drains on SIGTERM: no new sessions, sessions handed over to another worker, exit 0', async () => {
    const worker = await cluster.startWorker('drainer', 4);
    const gateway = await cluster.startGateway();
    const sessions = [await placeOk(gateway), await placeOk(gateway)];
    expect(sessions.map((s) => s.workerId)).toEqual(['drainer', 'drainer']);
    await cluster.startWorker('heir', 4);
    worker.signal('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(existsSync(worker.readyFile)).toBe(false);
    expect(gateway.events.some((e) => e.msg.type === 'shutdown_complete')).toBe(false);
    // The sessions live on: the heir adopted them from their logs.
    for (const [i, { sessionId }] of sessions.entries()) {
      cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: `still here ${i}` }] });
      const end = await gateway.turn(sessionId, `are you there ${i}?`);
      expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: `still here ${i}` });
    }
    expect(seqProblems(gateway.events)).toEqual([]);
    expect((await placeOk(gateway)).workerId).toBe('heir');
  });

  it('drops an invalid op on the bus, logs it, and keeps serving the session', async () => {
    const worker = await cluster.startWorker('sturdy', 2);
    const gateway = await cluster.startGateway();
    const { sessionId } = await placeOk(gateway);
    const bus = new NatsBus(await connect({ servers: cluster.nats.url }));
    try {
      const subject = subjects(cluster.namespace).op(sessionId);
      await bus.publishRaw(subject, JSON.stringify({ kind: 'op', submission: { id: 'bad', session_id: sessionId, op: { type: 'user_turn' } } }));
      await bus.publishRaw(subject, 'not json at all');
      await bus.flush();
    } finally {
      await bus.close();
    }
    await waitFor(() => worker.stderr.includes('dropped a bus message that is not JSON'), 'the worker to log the dropped messages');
    expect(worker.stderr).toContain('dropped an invalid bus message');
    expect(worker.stderr).toContain('op.items');

    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Still here.' }] });
    const end = await gateway.turn(sessionId, 'are you there?');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'Still here.' });
    expect(worker.running).toBe(true);
    expect(gateway.events.some((e) => e.id === 'bad')).toBe(false);
  });

  it('places a sub-agent on another worker than its parent, and its events reach the client', async () => {
    await cluster.startWorker('w1', 1);
    await cluster.startWorker('w2', 1);
    const gateway = await cluster.startGateway();
    const { sessionId: parent, workerId: parentWorker } = await placeOk(gateway);
    cluster.model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'PARENT') && outputFor(r, 's1') === undefined,
        items: [{ type: 'function_call', name: 'spawn_agent', call_id: 's1', arguments: { message: 'CHILD: answer from afar' } }],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD'), items: [{ type: 'message', text: 'hello from the other worker' }] },
      {
        kind: 'reply',
        match: (r) => outputFor(r, 's1') !== undefined && outputFor(r, 'w') === undefined,
        handler: (r) => ({
          kind: 'response',
          items: [{ type: 'function_call', name: 'wait_agent', call_id: 'w', arguments: { agent_ids: spawnedAgentIds(r) } }],
        }),
      },
      { kind: 'response', match: (r) => outputFor(r, 'w') !== undefined, items: [{ type: 'message', text: 'collected' }] },
    );
    const end = await gateway.turn(parent, 'PARENT: delegate');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'collected' });
    const child = gateway.events.find((e) => e.msg.type === 'session_configured' && e.msg.parent_session_id === parent);
    expect(child?.msg).toMatchObject({ depth: 1 });
    const childWorker = child?.msg.type === 'session_configured' ? child.msg.worker_id : null;
    expect(childWorker).not.toBe(parentWorker);
    expect(outputFor(cluster.model.requests.at(-1)!, 'w')).toContain('hello from the other worker');
    expect(seqProblems(gateway.events)).toEqual([]);
  });
  it('takes the ops of a gateway that resumed a session it closed, within the duplicate window: same submission ids, and a second shutdown', async () => {
    await cluster.startWorker('w1', 2);
    // Long enough not to run out under load: a shutdown JetStream dropped would wait for all of it.
    const env = { TROUPE_SHUTDOWN_TIMEOUT_MS: '30000' };
    const first = await cluster.startGateway(env);
    const { sessionId } = await placeOk(first);
    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'one' }] });
    await first.turn(sessionId, 'first');
    // The end of stdin: the gateway shuts down the sessions it opened, and waits for them.
    expect(await first.end()).toBe(0);
    expect(first.events.some((e) => e.session_id === sessionId && e.msg.type === 'shutdown_complete')).toBe(true);

    const second = await cluster.startGateway(env);
    const id = second.submit({ type: 'resume_session', session_id: sessionId });
    expect((await second.waitForMsg('session_configured', { id })).msg.session_id).toBe(sessionId);
    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'two' }] });
    await second.turn(sessionId, 'second');
    expect(await second.end()).toBe(0);
    expect(second.stderr).not.toContain('gave up shutting down');
    const closes = second.events.filter((e) => e.session_id === sessionId && e.msg.type === 'shutdown_complete');
    expect(closes).toHaveLength(1);
  }, 90_000);
});
