/**
 * A client that stops reading a gateway's stdout (`troupe app-server --nats`): the sessions run
 * on a worker and go on, their events wait in the JetStream log, and the gateway takes no more
 * from the log than it can write, so its memory stays bounded. Once the client reads again,
 * every event the worker logged arrives in order. (backpressure.test.ts has the in-process cases.)
 */
import { describe, expect, it } from 'vitest';
import { seqProblems } from '../support/app-server-process.js';
import { DELTA_CHARS, DELTAS_PER_MESSAGE, flood, HOLDING, MESSAGES, mib, MemoryWatch, STREAMS, until } from '../support/memory-watch.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { residentBytes } from '../support/processes.js';
import { inputTexts } from '../../testing/requests.js';

/** What a worker logs when its session's log is backed up and deltas are left out. */
const LEFT_OUT = 'streaming deltas are left out';

const cluster = new NatsCluster({ name: 'nats-backpressure' });

// Tens of MiB through a worker, JetStream and a gateway: minutes on a loaded two-core machine.
describe('a gateway whose client reads', { timeout: 180_000 }, () => {
  it('delivers every streaming delta of a model that streams as fast as it can', async () => {
    // The session log leaves deltas out once it holds half its limits unstored. On a starved
    // machine JetStream can fall that far behind this flood however fast troupe stores (seen at
    // 8 MiB with two CPU burners beside the suite): limits far above the flood keep the test about
    // delivery, complete and in order, not about this machine's speed (bench:bus measures that).
    const limits = { TROUPE_OUTBOX_MAX_BYTES: String(1024 * 1024 * 1024), TROUPE_OUTBOX_MAX_EVENTS: '1000000' };
    const [worker, gateway] = await Promise.all([cluster.startWorker('w1', 2, { env: { TROUPE_LOG: 'debug', ...limits } }), cluster.startGateway()]);
    // 96 messages of 16 deltas: 1,536 deltas and 3 MiB of them, then the messages themselves,
    // streamed without a pause.
    const { texts, step } = flood(MESSAGES / STREAMS, 'fast.');
    cluster.model.enqueue(step);
    const session = await gateway.newSession({ cwd: cluster.dir });
    const turn = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'stream' }] }, session);
    const end = await gateway.waitFor(
      (e) => e.id === turn && (e.msg.type === 'task_complete' || e.msg.type === 'turn_aborted'),
      'the end of the turn',
      150_000,
    );
    expect(end.msg.type).toBe('task_complete');
    expect(worker.stderr).not.toContain('storing in JetStream failed');
    const ofTurn = gateway.ofSession(session).filter((e) => e.id === end.id);
    const expected = texts.flatMap((text) => Array.from({ length: DELTAS_PER_MESSAGE }, (_, d) => text.slice(d * DELTA_CHARS, (d + 1) * DELTA_CHARS)));
    const deltas = ofTurn.flatMap((e) => (e.msg.type === 'agent_message_delta' ? [e.msg.delta] : []));
    expect(worker.stderr).not.toContain(LEFT_OUT);
    expect(deltas.length).toBe(expected.length);
    expect(deltas.every((delta, d) => delta === expected[d])).toBe(true);
    expect(seqProblems(gateway.events)).toEqual([]);
  });
});

describe('a gateway whose client stops reading stdout', { timeout: 300_000 }, () => {
  it('leaves the events in the log, stays within the memory bound, and delivers everything after', async () => {
    const [worker, gateway] = await Promise.all([
      cluster.startWorker('w1', STREAMS + 1, { env: { TROUPE_LOG: 'debug' } }),
      cluster.startGateway({ TROUPE_LOG: 'debug' }),
    ]);
    const { model } = cluster;

    // Baseline: the gateway after a first, smaller flood read as it came.
    model.enqueue(flood(MESSAGES / STREAMS, 'warm').step);
    const first = await gateway.newSession({ cwd: cluster.dir });
    const warm = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'warm up' }] }, first);
    const warmed = await gateway.waitFor((e) => e.id === warm && (e.msg.type === 'task_complete' || e.msg.type === 'turn_aborted'), 'the warm-up', 120_000);
    expect(warmed.msg.type).toBe('task_complete');
    const baseline = residentBytes(gateway.pid)!;

    const sessions: string[] = [];
    const floods: string[][] = [];
    for (let s = 0; s < STREAMS; s++) {
      sessions.push(await gateway.newSession({ cwd: cluster.dir }));
      const { texts, step } = flood(MESSAGES / STREAMS, `s${s}.`);
      floods.push(texts);
      model.enqueue({ ...step, match: (request) => inputTexts(request).at(-1) === `flood ${s}` });
    }

    gateway.pauseReading();
    const mark = gateway.stderr.length;
    const watch = new MemoryWatch(gateway.pid, baseline);
    try {
      const turns = sessions.map((session, s) => gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: `flood ${s}` }] }, session));
      const streams = () => model.requests.slice(1);
      // The worker is not held back: every answer is read to its end while the gateway holds.
      await until(
        () => gateway.stderr.includes(HOLDING, mark) && streams().length === STREAMS && streams().every((r) => r.endedAt !== null),
        'the answers to be read',
        watch,
        () => `growth ${mib(watch.growth)} MiB, ${streams().filter((r) => r.endedAt !== null).length} answers read`,
        60_000,
      );
      watch.check();
      watch.stop();

      gateway.resumeReading();
      for (const turn of turns) await gateway.waitFor((e) => e.id === turn && e.msg.type === 'task_complete', `the end of ${turn}`, 60_000);
      expect(seqProblems(gateway.events)).toEqual([]);
      expect(gateway.junk).toEqual([]);
      sessions.forEach((session, s) => {
        const ofTurn = gateway.ofSession(session).filter((e) => e.id === turns[s]);
        // Every message arrives whole and in order.
        const messages = ofTurn.flatMap((e) => (e.msg.type === 'agent_message' ? [e.msg.message] : []));
        expect(messages.length).toBe(floods[s]!.length);
        expect(
          messages.every((message, m) => message === floods[s]![m]),
          `the messages of session ${s}`,
        ).toBe(true);
        // Deltas are a live view: a worker whose log is backed up leaves some out (and says so),
        // but those that come are the flood's own, in order.
        const expected = floods[s]!.flatMap((text) => Array.from({ length: DELTAS_PER_MESSAGE }, (_, d) => text.slice(d * DELTA_CHARS, (d + 1) * DELTA_CHARS)));
        const deltas = ofTurn.flatMap((e) => (e.msg.type === 'agent_message_delta' ? [e.msg.delta] : []));
        let next = 0;
        for (const delta of deltas) {
          next = expected.indexOf(delta, next) + 1;
          expect(next, `a delta of session ${s} out of order or not the flood's: ${delta.slice(0, 20)}`).toBeGreaterThan(0);
        }
        if (deltas.length < expected.length) expect(worker.stderr).toContain(LEFT_OUT);
      });
    } finally {
      watch.stop();
    }
  });
});
