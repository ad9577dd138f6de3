import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BusClosedError, InvalidBusMessageError, NoRespondersError, RequestTimeoutError, type Bus, type BusHandler, type Delivery } from '../../lib/bus/bus.js';
import { InvalidSubjectError } from '../../lib/bus/subjects.js';
import type { BusMessage, BusMessageOf } from '../../protocol/index.js';
import { waitFor } from './wait.js';

/**
 * The behaviour every bus transport must share, written once and run against each of them
 * (in-process now, NATS later), so that code tested on one transport holds on the other.
 * Publisher and subscriber sit on different connections wherever that matters, as they would
 * in different processes.
 */

export interface BusContractHarness {
  /** A new connection to the same message space as every other connection of this harness. */
  connect(): Promise<Bus>;
  /** Publish a payload as is, skipping the publish-side validation of `bus`. */
  publishRaw(bus: Bus, subject: string, payload: string): Promise<void>;
  /** Stop whatever `setup` started (servers, temp dirs). */
  teardown(): Promise<void>;
}

/**
 * Resolves once the subscriptions made so far on each of `subscribers` reach messages that
 * `publisher` sends. NATS registers a subscription asynchronously, so a message published on
 * another connection right after `subscribe` returns can miss it. A probe subscription made
 * afterwards on the same connection is registered after the earlier ones, so once a probe from
 * `publisher` arrives, they are all in place. (In-process this returns at the first probe.)
 */
export async function untilLive(publisher: Bus, ...subscribers: Bus[]): Promise<void> {
  for (const subscriber of subscribers) {
    const subject = `probe.${randomUUID()}`;
    let arrived = false;
    const probe = subscriber.subscribe(subject, () => {
      arrived = true;
    });
    const deadline = Date.now() + 10_000;
    try {
      while (!arrived) {
        if (Date.now() > deadline) throw new Error('subscriptions never became live');
        await publisher.publish(subject, { kind: 'list_sessions' });
        const retryAt = Date.now() + 50;
        while (!arrived && Date.now() < retryAt) await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } finally {
      await probe.unsubscribe();
    }
  }
}

type Placed = BusMessageOf<'placed'>;

function placed(sessionId: string, workerId = 'w'): Placed {
  return { kind: 'placed', session_id: sessionId, worker_id: workerId, rollout_path: '/tmp/rollout.jsonl' };
}

/** A handler that keeps what it receives, and the subjects it arrived on. */
function recorder(): { handler: BusHandler; messages: BusMessage[]; subjects: string[]; ids: () => string[] } {
  const messages: BusMessage[] = [];
  const subjects: string[] = [];
  return {
    messages,
    subjects,
    handler: (message, delivery) => {
      messages.push(message);
      subjects.push(delivery.subject);
    },
    ids: () => messages.map((m) => (m.kind === 'placed' ? m.session_id : `<${m.kind}>`)),
  };
}

export function describeBusContract(name: string, setup: () => Promise<BusContractHarness>): void {
  describe(`bus contract: ${name}`, () => {
    let harness: BusContractHarness;
    let open: Bus[] = [];

    beforeAll(async () => {
      harness = await setup();
    });
    afterAll(async () => {
      await harness?.teardown();
    });
    afterEach(async () => {
      await Promise.all(open.map((bus) => bus.close()));
      open = [];
    });

    async function connect(): Promise<Bus> {
      const bus = await harness.connect();
      open.push(bus);
      return bus;
    }
    /** Each test gets its own subject prefix, so tests sharing a server cannot see each other. */
    function prefix(): string {
      return `c${randomUUID().slice(0, 8)}`;
    }

    it('delivers a message to a subscriber of its exact subject, on another connection', async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const got = recorder();
      sub.subscribe(`${pre}.a.b`, got.handler);
      const other = recorder();
      sub.subscribe(`${pre}.a.c`, other.handler);
      await untilLive(pub, sub);
      await pub.publish(`${pre}.a.b`, placed('s1'));
      await waitFor(() => got.messages.length === 1, 'delivery');
      expect(got.messages[0]).toEqual(placed('s1'));
      expect(got.subjects).toEqual([`${pre}.a.b`]);
      // The later message on the same publisher proves nothing for `a.c` was on its way.
      await pub.publish(`${pre}.a.c`, placed('s2'));
      await waitFor(() => other.messages.length === 1, 'delivery on a.c');
      expect(other.ids()).toEqual(['s2']);
      expect(got.ids()).toEqual(['s1']);
    });

    it("matches '*' to exactly one token", async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const got = recorder();
      sub.subscribe(`${pre}.a.*.c`, got.handler);
      await untilLive(pub, sub);
      for (const subject of [`${pre}.a.c`, `${pre}.a.b.d`, `${pre}.a.b.c.d`, `${pre}.x.b.c`, `${pre}.a.b.c`]) {
        await pub.publish(subject, placed(subject));
      }
      await waitFor(() => got.messages.length >= 1, "the '*' match");
      await pub.publish(`${pre}.a.zz.c`, placed('last'));
      await waitFor(() => got.ids().includes('last'), 'the last match');
      expect(got.subjects).toEqual([`${pre}.a.b.c`, `${pre}.a.zz.c`]);
    });

    it("matches '>' to one or more trailing tokens", async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const got = recorder();
      sub.subscribe(`${pre}.a.>`, got.handler);
      await untilLive(pub, sub);
      for (const subject of [`${pre}.a`, `${pre}.b.c`, `${pre}.a.b`, `${pre}.a.b.c.d`, `${pre}.ab.c`]) {
        await pub.publish(subject, placed(subject));
      }
      await pub.publish(`${pre}.a.end`, placed('last'));
      await waitFor(() => got.ids().includes('last'), 'the last match');
      expect(got.subjects).toEqual([`${pre}.a.b`, `${pre}.a.b.c.d`, `${pre}.a.end`]);
    });

    it('hands a subscriber with eventTypes only the events of those types, in order', async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const got = recorder();
      sub.subscribe(`${pre}.events`, got.handler, { eventTypes: new Set(['task_started', 'task_complete']) });
      const all = recorder();
      sub.subscribe(`${pre}.events`, all.handler);
      await untilLive(pub, sub);
      const event = (seq: number, msg: BusMessageOf<'event'>['event']['msg']): BusMessage => ({
        kind: 'event',
        event: { id: 't1', session_id: 's1', seq, msg },
      });
      const sent: BusMessage[] = [
        event(1, { type: 'task_started', turn_id: 't1', model_context_window: null }),
        // Its text spells a wanted type; the event itself is not one.
        event(2, { type: 'agent_message', message: '{"type":"task_complete"}' }),
        placed('not-an-event'),
        event(3, { type: 'agent_message_delta', delta: 'x' }),
        event(4, { type: 'task_complete', turn_id: 't1', last_agent_message: 'done' }),
      ];
      for (const message of sent) await pub.publish(`${pre}.events`, message);
      await waitFor(() => all.messages.length === sent.length, 'every message on the plain subscription');
      await waitFor(() => got.messages.length === 2, 'the two wanted events');
      expect(got.messages).toEqual([sent[0], sent[4]]);
    });

    it('rejects wildcards in a published subject and malformed filters', async () => {
      const pre = prefix();
      const bus = await connect();
      await expect(bus.publish(`${pre}.*`, placed('s'))).rejects.toBeInstanceOf(InvalidSubjectError);
      await expect(bus.publish(`${pre}.a.>`, placed('s'))).rejects.toBeInstanceOf(InvalidSubjectError);
      await expect(bus.publish(`${pre}..a`, placed('s'))).rejects.toBeInstanceOf(InvalidSubjectError);
      await expect(bus.publish('', placed('s'))).rejects.toBeInstanceOf(InvalidSubjectError);
      await expect(bus.request(`${pre}.*`, placed('s'), { timeoutMs: 1000 })).rejects.toBeInstanceOf(InvalidSubjectError);
      expect(() => bus.subscribe(`${pre}.>.a`, () => {})).toThrow(InvalidSubjectError);
      expect(() => bus.subscribe(`${pre}.a b`, () => {})).toThrow(InvalidSubjectError);
      expect(() => bus.subscribe(`${pre}.a.`, () => {})).toThrow(InvalidSubjectError);
    });

    it('stops delivering after unsubscribe', async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const first = recorder();
      const second = recorder();
      const subscription = sub.subscribe(`${pre}.x`, first.handler);
      sub.subscribe(`${pre}.x`, second.handler);
      await untilLive(pub, sub);
      await pub.publish(`${pre}.x`, placed('before'));
      await waitFor(() => first.messages.length === 1 && second.messages.length === 1, 'first delivery');
      await subscription.unsubscribe();
      await pub.publish(`${pre}.x`, placed('after'));
      await pub.publish(`${pre}.x`, placed('after2'));
      await waitFor(() => second.messages.length === 3, 'delivery to the remaining subscriber');
      expect(first.ids()).toEqual(['before']);
      expect(second.ids()).toEqual(['before', 'after', 'after2']);
      // Unsubscribing twice is harmless.
      await subscription.unsubscribe();
    });

    it('gives each message to exactly one member of a queue group, and to every plain subscriber', async () => {
      const pre = prefix();
      const pub = await connect();
      const subscribers: Bus[] = [];
      const members = [recorder(), recorder(), recorder()];
      for (const member of members) {
        const bus = await connect();
        bus.subscribe(`${pre}.work`, member.handler, { queue: 'hosts' });
        subscribers.push(bus);
      }
      const plain = [recorder(), recorder()];
      for (const watcher of plain) {
        const bus = await connect();
        bus.subscribe(`${pre}.work`, watcher.handler);
        subscribers.push(bus);
      }
      await untilLive(pub, ...subscribers);

      const count = 300;
      for (let i = 0; i < count; i++) await pub.publish(`${pre}.work`, placed(`m${i}`));
      const total = () => members.reduce((n, m) => n + m.messages.length, 0);
      await waitFor(() => total() >= count && plain.every((w) => w.messages.length >= count), 'all deliveries');
      // A round trip through the same publisher lets any duplicate still in flight show up.
      const tail = recorder();
      const tailBus = await connect();
      tailBus.subscribe(`${pre}.tail`, tail.handler);
      await untilLive(pub, tailBus);
      await pub.publish(`${pre}.tail`, placed('tail'));
      await waitFor(() => tail.messages.length === 1, 'the tail message');

      const all = members.flatMap((m) => m.ids());
      expect(all).toHaveLength(count);
      expect(new Set(all).size).toBe(count);
      expect(members.filter((m) => m.messages.length > 0).length).toBeGreaterThan(1);
      for (const watcher of plain) expect(watcher.ids()).toEqual(Array.from({ length: count }, (_, i) => `m${i}`));
    });

    it('answers a request through delivery.respond', async () => {
      const pre = prefix();
      const [client, server] = [await connect(), await connect()];
      const seen: Delivery[] = [];
      server.subscribe(`${pre}.svc`, async (message, delivery) => {
        seen.push(delivery);
        if (message.kind !== 'placed' || !delivery.respond) return;
        await delivery.respond(placed(`re-${message.session_id}`, 'responder'));
      });
      await untilLive(client, server);
      const reply = await client.request(`${pre}.svc`, placed('q1'), { timeoutMs: 5000 });
      expect(reply).toEqual(placed('re-q1', 'responder'));
      expect(seen[0]?.subject).toBe(`${pre}.svc`);

      // A plain publish offers no way to answer.
      await client.publish(`${pre}.svc`, placed('plain'));
      await waitFor(() => seen.length === 2, 'the plain delivery');
      expect(seen[1]?.respond).toBeUndefined();
    });

    it('takes the first reply when several responders answer', async () => {
      const pre = prefix();
      const client = await connect();
      for (const worker of ['w1', 'w2', 'w3']) {
        const server = await connect();
        server.subscribe(`${pre}.svc`, async (_message, delivery) => {
          await delivery.respond?.(placed('answer', worker));
        });
        await untilLive(client, server);
      }
      const reply = await client.request(`${pre}.svc`, placed('q'), { timeoutMs: 5000 });
      expect(reply.kind === 'placed' && ['w1', 'w2', 'w3'].includes(reply.worker_id)).toBe(true);
      // The late replies land nowhere; the connection keeps working.
      const again = await client.request(`${pre}.svc`, placed('q'), { timeoutMs: 5000 });
      expect(again.kind).toBe('placed');
    });

    it('routes each request to one member of a queue group', async () => {
      const pre = prefix();
      const client = await connect();
      const handled: string[] = [];
      for (const worker of ['w1', 'w2', 'w3']) {
        const server = await connect();
        server.subscribe(
          `${pre}.place`,
          async (message, delivery) => {
            handled.push(worker);
            if (message.kind === 'placed') await delivery.respond?.(placed(message.session_id, worker));
          },
          { queue: 'hosts' },
        );
        await untilLive(client, server);
      }
      const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => client.request(`${pre}.place`, placed(`s${i}`), { timeoutMs: 5000 })));
      expect(replies.map((r) => (r.kind === 'placed' ? r.session_id : ''))).toEqual(Array.from({ length: 30 }, (_, i) => `s${i}`));
      expect(handled).toHaveLength(30);
    });

    it('rejects a request at once with NoRespondersError when nobody subscribes', async () => {
      const pre = prefix();
      const client = await connect();
      // The timeout is far longer than any test, so only the no-responders path can end this.
      const error = await client.request(`${pre}.nobody`, placed('q'), { timeoutMs: 60_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NoRespondersError);
      expect((error as NoRespondersError).subject).toBe(`${pre}.nobody`);
    });

    it('rejects a request with RequestTimeoutError when no reply comes', async () => {
      const pre = prefix();
      const [client, server] = [await connect(), await connect()];
      const got = recorder();
      server.subscribe(`${pre}.silent`, got.handler);
      await untilLive(client, server);
      const error = await client.request(`${pre}.silent`, placed('q'), { timeoutMs: 200 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RequestTimeoutError);
      expect((error as RequestTimeoutError).timeoutMs).toBe(200);
      expect(got.ids()).toEqual(['q']);
    });

    it('rejects an invalid message at publish, naming the bad field', async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const got = recorder();
      sub.subscribe(`${pre}.v`, got.handler);
      await untilLive(pub, sub);
      const bad = { ...placed('s'), worker_id: 42 } as unknown as BusMessage;
      const error = await pub.publish(`${pre}.v`, bad).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidBusMessageError);
      expect((error as Error).message).toContain('worker_id');
      await expect(pub.publish(`${pre}.v`, { kind: 'nonsense' } as unknown as BusMessage)).rejects.toBeInstanceOf(InvalidBusMessageError);
      await expect(pub.request(`${pre}.v`, bad, { timeoutMs: 1000 })).rejects.toBeInstanceOf(InvalidBusMessageError);

      // A responder cannot answer with an invalid message either.
      const responder = await connect();
      const respondErrors: unknown[] = [];
      responder.subscribe(`${pre}.r`, async (_message, delivery) => {
        await delivery.respond?.(bad).catch((e: unknown) => respondErrors.push(e));
        await delivery.respond?.(placed('fine'));
      });
      await untilLive(pub, responder);
      const reply = await pub.request(`${pre}.r`, placed('q'), { timeoutMs: 5000 });
      expect(reply).toEqual(placed('fine'));
      expect(respondErrors[0]).toBeInstanceOf(InvalidBusMessageError);

      await pub.publish(`${pre}.v`, placed('ok'));
      await waitFor(() => got.messages.length === 1, 'the valid message');
      expect(got.ids()).toEqual(['ok']);
    });

    it('drops an invalid raw payload at the receiver and keeps delivering', async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      const got = recorder();
      sub.subscribe(`${pre}.raw`, got.handler);
      await untilLive(pub, sub);
      await harness.publishRaw(pub, `${pre}.raw`, JSON.stringify({ kind: 'placed', session_id: 's' }));
      await harness.publishRaw(pub, `${pre}.raw`, 'this is not json');
      await harness.publishRaw(pub, `${pre}.raw`, JSON.stringify({ kind: 'unknown_kind' }));
      await harness.publishRaw(pub, `${pre}.raw`, JSON.stringify(placed('raw-but-valid')));
      await pub.publish(`${pre}.raw`, placed('valid'));
      await waitFor(() => got.ids().includes('valid'), 'the valid message');
      expect(got.ids()).toEqual(['raw-but-valid', 'valid']);
    });

    it('hands every subscriber its own copy of a message', async () => {
      const pre = prefix();
      const [pub, subA, subB] = [await connect(), await connect(), await connect()];
      const a: Placed[] = [];
      const b: Placed[] = [];
      subA.subscribe(`${pre}.copy`, (message) => {
        if (message.kind !== 'placed') return;
        a.push(message);
        message.worker_id = 'mutated by a';
      });
      subB.subscribe(`${pre}.copy`, (message) => {
        if (message.kind === 'placed') b.push(message);
      });
      const same = recorder();
      subB.subscribe(`${pre}.copy`, same.handler);
      await untilLive(pub, subA, subB);

      const original = placed('s');
      const publishing = pub.publish(`${pre}.copy`, original);
      original.worker_id = 'mutated by the publisher';
      await publishing;
      await waitFor(() => a.length === 1 && b.length === 1 && same.messages.length === 1, 'both deliveries');
      expect(a[0]).not.toBe(b[0]);
      expect(b[0]).not.toBe(same.messages[0]);
      expect(b[0]).not.toBe(original);
      expect(b[0]).toEqual(placed('s'));
      expect(same.messages[0]).toEqual(placed('s'));
      expect(a[0]?.worker_id).toBe('mutated by a');
    });

    it('keeps publish order for each subscriber over 1000 messages', async () => {
      const pre = prefix();
      const [pub, subA, subB] = [await connect(), await connect(), await connect()];
      const a = recorder();
      const b = recorder();
      subA.subscribe(`${pre}.seq`, a.handler);
      subB.subscribe(`${pre}.>`, b.handler);
      await untilLive(pub, subA, subB);
      const expected = Array.from({ length: 1000 }, (_, i) => `n${i}`);
      for (const id of expected) await pub.publish(`${pre}.seq`, placed(id));
      await waitFor(() => a.messages.length >= 1000 && b.messages.length >= 1000, '1000 deliveries');
      expect(a.ids()).toEqual(expected);
      expect(b.ids()).toEqual(expected);
    });

    it('isolates failing handlers from other subscribers and later messages', async () => {
      const pre = prefix();
      const [pub, sub] = [await connect(), await connect()];
      let throwing = 0;
      let rejecting = 0;
      sub.subscribe(`${pre}.h`, () => {
        throwing++;
        throw new Error('handler throws');
      });
      sub.subscribe(`${pre}.h`, async () => {
        rejecting++;
        throw new Error('handler rejects');
      });
      const got = recorder();
      sub.subscribe(`${pre}.h`, got.handler);
      await untilLive(pub, sub);
      for (let i = 0; i < 5; i++) await pub.publish(`${pre}.h`, placed(`h${i}`));
      await waitFor(() => got.messages.length === 5 && throwing === 5 && rejecting === 5, 'every delivery');
      expect(got.ids()).toEqual(['h0', 'h1', 'h2', 'h3', 'h4']);
    });

    it('on close, rejects pending requests and later publishes, leaving other connections alone', async () => {
      const pre = prefix();
      const [client, server, other] = [await connect(), await connect(), await connect()];
      const got = recorder();
      server.subscribe(`${pre}.slow`, got.handler);
      await untilLive(client, server);
      await untilLive(other, server);
      const pending = client.request(`${pre}.slow`, placed('q'), { timeoutMs: 60_000 }).catch((e: unknown) => e);
      await waitFor(() => got.messages.length === 1, 'the request to arrive');
      await client.close();
      expect(await pending).toBeInstanceOf(BusClosedError);
      await expect(client.publish(`${pre}.slow`, placed('late'))).rejects.toBeInstanceOf(BusClosedError);
      await expect(client.request(`${pre}.slow`, placed('late'), { timeoutMs: 1000 })).rejects.toBeInstanceOf(BusClosedError);
      expect(() => client.subscribe(`${pre}.slow`, () => {})).toThrow(BusClosedError);
      await client.close();

      // The other connections of the same server are unaffected.
      await other.publish(`${pre}.slow`, placed('still works'));
      await waitFor(() => got.messages.length === 2, 'delivery between the remaining connections');
      expect(got.ids()).toEqual(['q', 'still works']);
    });

    it('stops a closed connection’s subscriptions', async () => {
      const pre = prefix();
      const [pub, closing, staying] = [await connect(), await connect(), await connect()];
      const gone = recorder();
      const kept = recorder();
      closing.subscribe(`${pre}.z`, gone.handler);
      staying.subscribe(`${pre}.z`, kept.handler);
      await untilLive(pub, staying);
      await closing.close();
      await pub.publish(`${pre}.z`, placed('after close'));
      await waitFor(() => kept.messages.length === 1, 'delivery to the open connection');
      expect(gone.messages).toEqual([]);
    });
  });
}
