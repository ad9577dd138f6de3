/**
 * bench/bus: what troupe's NatsBus costs over the raw @nats-io client on the same nats-server.
 * Both sides of each run are separate connections in this process; the server is a fresh
 * nats-server on a free loopback port.
 *
 * 1. Request/reply: ROUNDS sequential requests of a small bus message, answered at once;
 *    median and p99 round trip.
 * 2. Publish throughput: MESSAGES event messages (a typical `exec_command_end`) published
 *    back to back and received by a subscriber; messages per second.
 *
 * Each is run RUNS times, raw and NatsBus alternating, and the median run is reported, with the
 * ratio NatsBus / raw (target, issue 15: at most 1.15).
 *
 * 3. Durable publication (a second nats-server, with JetStream): DURABLE streaming deltas
 *    pushed at once into one session's Outbox, as a fast model makes them; entries per second
 *    until JetStream has stored the last. Beside it, the raw client's `js.publish` of the same
 *    payloads, all in flight at once (the ceiling: no order kept, no retry), median run each.
 *
 * 4. The in-process bus: the same MESSAGES events published back to back to one subscriber of
 *    an InProcessBus; messages per second, and the process's CPU per message.
 *
 *   npm run bench:bus                   (writes bench/results/bus.json)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { createInProcessBus } from '../lib/bus/in-process.js';
import { NatsBus } from '../lib/bus/nats.js';
import { Outbox } from '../lib/durable/outbox.js';
import { DurableStore } from '../lib/durable/store.js';
import { NatsLink } from '../lib/nats/link.js';
import type { BusMessage } from '../protocol/index.js';
import { startNatsServer } from '../test/support/nats-server.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 50_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const DURABLE = Number(process.env.BENCH_DURABLE ?? 20_000);

const ACK: BusMessage = { kind: 'ack' };
const EVENT: BusMessage = {
  kind: 'event',
  event: {
    id: 'sub-7',
    session_id: '4b1e2c5e-6d1f-4a51-9d0e-2f6a1b3c4d5e',
    seq: 42,
    msg: {
      type: 'exec_command_end',
      call_id: 'call_8f2a',
      turn_id: 'sub-7',
      stdout: 'src/index.ts\nsrc/parser.ts\n',
      stderr: '',
      aggregated_output: 'src/index.ts\nsrc/parser.ts\n',
      exit_code: 0,
      duration_ms: 12,
    },
  },
};

interface RequestResult {
  readonly medianUs: number;
  readonly p99Us: number;
}

function summarize(samples: number[]): RequestResult {
  samples.sort((a, b) => a - b);
  const at = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!;
  return { medianUs: Math.round(at(0.5) * 1000), p99Us: Math.round(at(0.99) * 1000) };
}

async function rawRequests(responder: NatsConnection, requester: NatsConnection): Promise<RequestResult> {
  const reply = JSON.stringify(ACK);
  const sub = responder.subscribe('bench.raw.req', { callback: (_error, msg) => void msg.respond(reply) });
  await responder.flush();
  const payload = JSON.stringify(ACK);
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const t0 = performance.now();
    const msg = await requester.request('bench.raw.req', payload, { timeout: 5000 });
    JSON.parse(msg.string());
    samples.push(performance.now() - t0);
  }
  sub.unsubscribe();
  return summarize(samples);
}

async function busRequests(responder: NatsBus, requester: NatsBus): Promise<RequestResult> {
  const sub = responder.subscribe('bench.bus.req', async (_message, delivery) => {
    await delivery.respond?.(ACK);
  });
  await responder.flush();
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const t0 = performance.now();
    await requester.request('bench.bus.req', ACK, { timeoutMs: 5000 });
    samples.push(performance.now() - t0);
  }
  await sub.unsubscribe();
  return summarize(samples);
}

async function rawThroughput(publisher: NatsConnection, receiver: NatsConnection): Promise<number> {
  let received = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const sub = receiver.subscribe('bench.raw.pub', {
    callback: (_error, msg) => {
      JSON.parse(msg.string());
      if (++received === MESSAGES) done();
    },
  });
  await receiver.flush();
  const t0 = performance.now();
  for (let i = 0; i < MESSAGES; i += 1) publisher.publish('bench.raw.pub', JSON.stringify(EVENT));
  await all;
  const seconds = (performance.now() - t0) / 1000;
  sub.unsubscribe();
  return Math.round(MESSAGES / seconds);
}

async function busThroughput(publisher: NatsBus, receiver: NatsBus): Promise<number> {
  let received = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const sub = receiver.subscribe('bench.bus.pub', () => {
    if (++received === MESSAGES) done();
  });
  await receiver.flush();
  const t0 = performance.now();
  const published = Array.from({ length: MESSAGES }, () => publisher.publish('bench.bus.pub', EVENT));
  await Promise.all([all, ...published]);
  const seconds = (performance.now() - t0) / 1000;
  await sub.unsubscribe();
  return Math.round(MESSAGES / seconds);
}

/** Publish MESSAGES events on an in-process bus to one subscriber: messages per second, and CPU µs per message. */
async function inProcessThroughput(): Promise<{ perSecond: number; cpuUs: number }> {
  const bus = createInProcessBus();
  let received = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  bus.subscribe('bench.bus.local', () => {
    if (++received === MESSAGES) done();
  });
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const published = Array.from({ length: MESSAGES }, () => bus.publish('bench.bus.local', EVENT));
  await Promise.all([all, ...published]);
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  await bus.close();
  return { perSecond: Math.round(MESSAGES / seconds), cpuUs: Number(((used.user + used.system) / MESSAGES).toFixed(2)) };
}

/** A streaming delta as a session's log stores it: a short piece of a model's answer. */
function deltaPayload(seq: number): string {
  const event = { id: 'sub-7', session_id: 'bench', seq, msg: { type: 'agent_message_delta', delta: 'the quick brown fox jumps over the lazy dog ' } };
  return JSON.stringify({ kind: 'event', event });
}

async function outboxThroughput(store: DurableStore, run: number): Promise<number> {
  const outbox = new Outbox(store.js, NatsLink.of(store.connection), {
    name: `bench${run}`,
    limits: { maxEntries: DURABLE, maxBytes: 1024 * 1024 * 1024 },
    logger: pino({ level: 'silent' }),
  });
  const subject = store.subjects.event('bench', `outbox${run}`);
  const payloads = Array.from({ length: DURABLE }, (_, i) => deltaPayload(i + 1));
  const t0 = performance.now();
  const stored = payloads.map((payload) => outbox.push(subject, payload));
  await outbox.drained();
  await Promise.all(stored);
  return Math.round(DURABLE / ((performance.now() - t0) / 1000));
}

async function rawJetStreamThroughput(store: DurableStore, run: number): Promise<number> {
  const subject = store.subjects.event('bench', `raw${run}`);
  const payloads = Array.from({ length: DURABLE }, (_, i) => deltaPayload(i + 1));
  const t0 = performance.now();
  await Promise.all(payloads.map((payload) => store.js.publish(subject, payload, { timeout: 60_000 })));
  return Math.round(DURABLE / ((performance.now() - t0) / 1000));
}

async function durable(): Promise<{ outbox: number; raw: number }> {
  const server = await startNatsServer();
  const connection = await connect({ servers: server.url });
  const outbox: number[] = [];
  const raw: number[] = [];
  try {
    const store = await DurableStore.open(connection, 'benchbus');
    for (let run = 0; run < RUNS; run += 1) {
      raw.push(await rawJetStreamThroughput(store, run));
      outbox.push(await outboxThroughput(store, run));
    }
  } finally {
    await connection.close();
    await server.stop();
  }
  return { outbox: median(outbox), raw: median(raw) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const server = await startNatsServer({ jetstream: false });
  const [a, b] = await Promise.all([connect({ servers: server.url }), connect({ servers: server.url })]);
  const [busA, busB] = [new NatsBus(await connect({ servers: server.url })), new NatsBus(await connect({ servers: server.url }))];
  const raw = { requests: [] as RequestResult[], throughput: [] as number[] };
  const bus = { requests: [] as RequestResult[], throughput: [] as number[] };
  try {
    for (let run = 0; run < RUNS; run += 1) {
      raw.requests.push(await rawRequests(a, b));
      bus.requests.push(await busRequests(busA, busB));
      raw.throughput.push(await rawThroughput(a, b));
      bus.throughput.push(await busThroughput(busA, busB));
    }
  } finally {
    await Promise.all([a.close(), b.close(), busA.close(), busB.close()]);
    await server.stop();
  }
  const stored = await durable();
  const local: { perSecond: number; cpuUs: number }[] = [];
  for (let run = 0; run < RUNS; run += 1) local.push(await inProcessThroughput());
  const rawMedian = median(raw.requests.map((r) => r.medianUs));
  const busMedian = median(bus.requests.map((r) => r.medianUs));
  const rawRate = median(raw.throughput);
  const busRate = median(bus.throughput);
  const result = {
    rounds: ROUNDS,
    messages: MESSAGES,
    runs: RUNS,
    request_reply_us: {
      raw: { median: rawMedian, p99: median(raw.requests.map((r) => r.p99Us)) },
      nats_bus: { median: busMedian, p99: median(bus.requests.map((r) => r.p99Us)) },
      ratio: Number((busMedian / rawMedian).toFixed(2)),
    },
    publish_per_second: {
      raw: rawRate,
      nats_bus: busRate,
      ratio: Number((rawRate / busRate).toFixed(2)),
    },
    in_process: {
      publish_per_second: median(local.map((r) => r.perSecond)),
      cpu_us_per_message: median(local.map((r) => r.cpuUs)),
    },
    durable_entries_per_second: {
      entries: DURABLE,
      raw_all_in_flight: stored.raw,
      outbox: stored.outbox,
    },
  };
  console.log(JSON.stringify(result, null, 2));
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'bus.json'), `${JSON.stringify(result, null, 2)}\n`);
}

await main();
