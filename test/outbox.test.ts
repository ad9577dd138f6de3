import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Event } from '../protocol/index.js';
import { GatewayDurability } from '../lib/durable/gateway-durability.js';
import { Outbox, OutboxDiscardedError, OutboxFullError } from '../lib/durable/outbox.js';
import { DurableStore } from '../lib/durable/store.js';
import { connectNats } from '../lib/nats/connect.js';
import { NatsLink } from '../lib/nats/link.js';
import { startNatsServer, type NatsServerProcess } from './support/nats-server.js';
import { waitFor } from './support/wait.js';

/**
 * The outbox and the gateway's event follower against a real nats-server that is killed with
 * SIGKILL and started again on the same port and store, as a broker restart goes.
 */

const quiet = pino({ level: 'silent' });

describe('a broker restart, seen from one connection', { timeout: 60_000 }, () => {
  let nats: NatsServerProcess;
  let connection: NatsConnection;
  let store: DurableStore;
  let link: NatsLink;

  beforeAll(async () => {
    nats = await startNatsServer();
    // As troupe connects: reconnecting forever, 250 ms to 2 s apart.
    connection = await connectNats({ servers: [nats.url], namespace: 'unused' }, { name: 'outbox-test', logger: quiet });
    link = NatsLink.of(connection);
  });
  afterAll(async () => {
    await connection?.close();
    await nats?.stop();
  });
  beforeEach(async () => {
    if (!nats.running) await nats.revive();
    await link.whenUp();
    store = await DurableStore.open(connection, `o${randomUUID().slice(0, 8)}`);
  });
  afterEach(async () => {
    if (!nats.running) await nats.revive();
  });

  async function crash(): Promise<void> {
    await nats.crash();
    await waitFor(() => !link.up, 'the client to see the broker gone', 30_000);
  }

  /** The payloads stored on `subject`, in stream order. */
  async function storedOn(subject: string): Promise<string[]> {
    const consumer = await store.js.consumers.get(store.names.logStream, { filter_subjects: subject });
    const out: string[] = [];
    try {
      let pending = (await consumer.info(true)).num_pending;
      while (pending > 0) {
        const before = out.length;
        for await (const msg of await consumer.fetch({ max_messages: 500, expires: 5_000 })) {
          pending = msg.info.pending;
          out.push(msg.string());
          if (pending === 0) break;
        }
        if (out.length === before) break;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return out;
  }

  const subject = () => store.subjects.sessionLog('root', 'session');
  const numbered = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `entry ${from + i}`);

  it('keeps what is pushed while the broker is away and stores everything once, in order, when it is back', async () => {
    const outbox = new Outbox(store.js, link, { name: 'session', logger: quiet });
    await Promise.all(numbered(0, 10).map((p) => outbox.push(subject(), p)));
    await crash();
    const held = numbered(10, 40).map((p) => outbox.push(subject(), p));
    expect(outbox.entries).toBe(30);
    await nats.revive();
    await Promise.all(held);
    await outbox.drained();
    expect(outbox.entries).toBe(0);
    expect(await storedOn(subject())).toEqual(numbered(0, 40));
  });

  it('stores a burst once and in order, many entries in flight, through a broker killed in the middle of it', async () => {
    const outbox = new Outbox(store.js, link, { name: 'session', logger: quiet });
    const all = numbered(0, 5_000);
    const pushed = all.map((p) => outbox.push(subject(), p));
    // The first goes alone; once it is stored, the window opens and many go out at once.
    await pushed[0];
    await crash();
    expect(outbox.entries).toBeGreaterThan(0);
    await nats.revive();
    await Promise.all(pushed);
    expect(outbox.entries).toBe(0);
    expect(await storedOn(subject())).toEqual(all);
  });

  it('refuses past its limit, takes what is forced, and stores all it took', async () => {
    const outbox = new Outbox(store.js, link, { name: 'session', limits: { maxEntries: 5, maxBytes: 1_000_000 }, logger: quiet });
    await crash();
    const taken = numbered(0, 5).map((p) => outbox.push(subject(), p));
    expect(outbox.full).toBe(true);
    expect(() => outbox.push(subject(), 'one too many')).toThrow(OutboxFullError);
    taken.push(outbox.push(subject(), 'the notice', { force: true }));
    await nats.revive();
    await Promise.all(taken);
    expect(await storedOn(subject())).toEqual([...numbered(0, 5), 'the notice']);
  });

  it('drops what it holds when discarded, and says how much', async () => {
    const outbox = new Outbox(store.js, link, { name: 'session', logger: quiet });
    await crash();
    const held = numbered(0, 3).map((p) => outbox.push(subject(), p));
    expect(outbox.discard()).toBe(3);
    for (const p of held) await expect(p).rejects.toBeInstanceOf(OutboxDiscardedError);
    await nats.revive();
    await link.whenUp();
    expect(await storedOn(subject())).toEqual([]);
  });

  it('follows events across a broker restart: each once, in order, soon after it is back', async () => {
    const durability = await GatewayDurability.open(connection, store.subjects.namespace, quiet);
    const seen: number[] = [];
    const follower = await durability.followEvents((event: Event) => void seen.push(event.seq ?? -1));
    const outbox = new Outbox(store.js, link, { name: 'session', logger: quiet });
    const eventSubject = store.subjects.event('root', 'session');
    const event = (seq: number) =>
      JSON.stringify({ kind: 'event', event: { id: null, session_id: 'session', seq, msg: { type: 'background_event', message: `n${seq}` } } });
    try {
      for (let seq = 1; seq <= 3; seq++) await outbox.push(eventSubject, event(seq));
      await waitFor(() => seen.length === 3, 'the first events', 10_000);
      await crash();
      const held = [4, 5, 6].map((seq) => outbox.push(eventSubject, event(seq)));
      await nats.revive();
      await Promise.all(held);
      // The client's own ordered consumer took about 45 s here (two missed heartbeats).
      await waitFor(() => seen.length === 6, 'the events stored after the restart', 10_000);
      await outbox.push(eventSubject, event(7));
      await waitFor(() => seen.length === 7, 'an event published after the restart', 10_000);
      expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      await follower.stop();
    }
  });
});
