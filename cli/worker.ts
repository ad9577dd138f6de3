import { rm, writeFile } from 'node:fs/promises';
import { NatsBus } from '../lib/bus/nats.js';
import { assertToken, InvalidSubjectTokenError } from '../lib/bus/subjects.js';
import { inBackground, log } from '../lib/log.js';
import { NatsJobStore } from '../actors/jobs/nats-store.js';
import { DEFAULT_OUTBOX_LIMITS, HostDurability, type OutboxLimits } from '../lib/durable/index.js';
import { HANDOVER_GRACE_MS } from '../actors/host/host.js';
import { connectNats, defaultWorkerId } from '../lib/nats/connect.js';
import { NATS_FLAGS, natsSettingsFrom } from '../lib/nats/settings.js';
import { createHost, runtimeOptionsFromEnv } from '../actors/runtime.js';
import { flushTelemetry } from '../lib/telemetry/index.js';
import { checkedProfile, MODEL_FLAGS, parseArgs, PROFILE_FLAG, UsageError, wireApiFlag } from './flags.js';
import { inspectNamespace, takeInspectFlag } from './inspect.js';
import { exitSoon, ShutdownBound, shutdownTimeoutMs } from './shutdown.js';
import { loadToolSets, toolSetSpecs, TOOLS_FLAG } from './tool-flags.js';

/** Sessions a worker runs at once unless told otherwise. */
export const DEFAULT_WORKER_CAPACITY = 8;

const WORKER_FLAGS = {
  'worker-id': { type: 'string' },
  capacity: { type: 'string' },
  'ready-file': { type: 'string' },
} as const;

/**
 * `troupe worker --nats URL`: a host of session actors on NATS. It joins placement, runs the
 * sessions placed on it, and on SIGTERM or SIGINT drains: it leaves placement at once, lets
 * running tasks finish (10 s at most), hands its sessions over to the other workers (through
 * their leases; without JetStream it shuts them down instead) and exits 0. Handing over
 * includes storing what each session's log still holds; with the broker away that is given up
 * after TROUPE_SHUTDOWN_TIMEOUT_MS (default 10 s) more: the worker then names on stderr what it
 * could not store and exits 1 (its leases run out, and other workers adopt the sessions from
 * what their logs hold).
 *
 * `--ready-file PATH` exists while the worker is connected and taking sessions, for a
 * Kubernetes readiness probe or a launcher script; it is removed on disconnect and on drain.
 */
export async function runWorker(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const inspect = takeInspectFlag(argv);
  const { values } = parseArgs({
    args: inspect.argv,
    options: { ...MODEL_FLAGS, ...PROFILE_FLAG, ...NATS_FLAGS, ...WORKER_FLAGS, ...TOOLS_FLAG },
    strict: true,
  });
  const settings = natsSettingsFrom(values, env);
  if (settings === null) throw new UsageError('worker needs --nats URL (or TROUPE_NATS_URL)');
  const workerId = values['worker-id'] ?? env.TROUPE_WORKER_ID ?? defaultWorkerId();
  try {
    assertToken(workerId, 'worker id');
  } catch (error) {
    if (error instanceof InvalidSubjectTokenError) throw new UsageError(error.message);
    throw error;
  }
  const capacity = positiveInteger(values.capacity ?? env.TROUPE_WORKER_CAPACITY, '--capacity') ?? DEFAULT_WORKER_CAPACITY;
  const readyFile = values['ready-file'] ?? env.TROUPE_WORKER_READY_FILE;
  const shutdownMs = shutdownTimeoutMs(env);
  const outboxLimits = outboxLimitsFrom(env);
  const toolSets = toolSetSpecs(values);
  const runtimeOptions = runtimeOptionsFromEnv(env, { model: values.model, wireApi: wireApiFlag(values['wire-api']) });
  // Its sessions take their defaults from this machine's config file and profile (checked now: a bad one exits 2).
  const profile = checkedProfile({ profile: values.profile }, env, runtimeOptions.home);
  const logger = log.child({ worker: workerId });

  // Until connected there is nothing to drain: a signal then just ends the process.
  const connection = await connectNats(settings, { name: `troupe-worker ${workerId}`, waitOnFirstConnect: true, logger });
  const stopping = stopSignal();
  const bus = new NatsBus(connection, { logger });
  const host = createHost(
    bus,
    { ...runtimeOptions, profile },
    {
      namespace: settings.namespace,
      workerId,
      capacity,
    },
  );
  // Before the first placement: a session naming one of these sets must find it here.
  await loadToolSets(host, toolSets);
  // Sessions outlive this worker when JetStream is there: leases, op queues, logs, adoption.
  const leaseMs = positiveInteger(env.TROUPE_LEASE_MS, 'TROUPE_LEASE_MS');
  let durability: HostDurability | null = null;
  try {
    durability = await HostDurability.open(connection, {
      namespace: settings.namespace,
      workerId,
      leaseMs,
      onLost: (id) => host.abandon(id),
      logger,
      outboxLimits,
    });
    host.useDurability(durability);
    // Agent jobs in JetStream too: their items' agents report from any worker, and a job
    // whose session is adopted goes on there.
    host.useJobStore(await NatsJobStore.open(connection, settings.namespace));
  } catch (error) {
    logger.warn({ err: error }, 'JetStream is not available: sessions will not survive this worker');
  }
  host.start();
  // Placement subscriptions are live once the server has seen them.
  await bus.flush();
  const ready = readiness(readyFile);
  await ready.set(true);
  // A readiness file that cannot be written is logged; the worker runs on (and tries again at the next change).
  const setReady = (value: boolean) => ready.set(value).catch((error: unknown) => logger.error({ err: error }, 'could not update the readiness file'));
  inBackground(
    (async () => {
      for await (const status of connection.status()) {
        if (status.type === 'disconnect') await setReady(false);
        else if (status.type === 'reconnect') await setReady(true);
      }
    })(),
    'watching the NATS connection for readiness',
    logger,
  );
  logger.info({ capacity, namespace: settings.namespace, tool_sets: toolSets.map((s) => s.name) }, 'worker ready');
  // --inspect: a page of every session of the namespace, through a gateway connection of its own.
  const inspector = inspect.port === null ? null : await inspectNamespace(values, inspect.port, `troupe worker ${workerId}`, env);

  const outcome = await Promise.race([
    stopping.signal.then((signal) => ({ signal })),
    connection.closed().then((error) => ({ lost: error ?? new Error('the NATS connection closed') })),
  ]);
  await ready.set(false);
  await inspector?.close();
  if ('lost' in outcome) {
    logger.error({ err: outcome.lost }, 'lost NATS for good; stopping');
    await host.close().catch(() => undefined);
    return 1;
  }
  logger.info({ signal: outcome.signal, sessions: host.load }, 'draining: taking no new sessions, handing sessions over');
  // Running tasks get their grace; then, within the shutdown bound, the sessions move to
  // other workers with JetStream, or are shut down without.
  await host.drain();
  await host.waitIdle(HANDOVER_GRACE_MS);
  const bound = new ShutdownBound(shutdownMs);
  const drained = await bound.within(
    (async () => {
      await host.handOver(0);
      await durability?.drained();
      await flushTelemetry();
      await bus.close();
    })(),
  );
  stopping.dispose();
  if (drained) {
    logger.info('worker stopped');
    return 0;
  }
  const undelivered = durability?.undelivered() ?? [];
  process.stderr.write(
    `troupe: worker ${workerId} gave up handing its sessions over after ${bound.timeoutMs} ms (TROUPE_SHUTDOWN_TIMEOUT_MS)` +
      `${undelivered.length > 0 ? '; not stored in JetStream:' : ''}\n`,
  );
  for (const { sessionId, entries, bytes } of undelivered) {
    process.stderr.write(
      `troupe:   session ${sessionId}: ${entries} events and records (${bytes} bytes); its lease runs out and another worker adopts it without them\n`,
    );
  }
  const code = undelivered.length > 0 ? 1 : 0;
  // The NATS client keeps reconnecting to a broker that is gone, which holds the process.
  void bus.close().catch(() => undefined);
  exitSoon(code);
  return code;
}

/** TROUPE_OUTBOX_MAX_EVENTS and TROUPE_OUTBOX_MAX_BYTES: what a session may hold while NATS is away. */
function outboxLimitsFrom(env: NodeJS.ProcessEnv): OutboxLimits {
  return {
    maxEntries: positiveInteger(env.TROUPE_OUTBOX_MAX_EVENTS, 'TROUPE_OUTBOX_MAX_EVENTS') ?? DEFAULT_OUTBOX_LIMITS.maxEntries,
    maxBytes: positiveInteger(env.TROUPE_OUTBOX_MAX_BYTES, 'TROUPE_OUTBOX_MAX_BYTES') ?? DEFAULT_OUTBOX_LIMITS.maxBytes,
  };
}

function positiveInteger(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${what} must be a positive integer, got "${raw}"`);
  return value;
}

/** The first SIGTERM or SIGINT starts the drain; a second one gives up on it. */
function stopSignal(): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let received = false;
  let resolveSignal: (signal: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    resolveSignal = resolve;
  });
  const onSignal = (name: NodeJS.Signals) => {
    if (received) {
      log.warn({ signal: name }, 'second signal while draining; exiting now');
      process.exit(1);
    }
    received = true;
    resolveSignal(name);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    signal,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

function readiness(path: string | undefined): { set(ready: boolean): Promise<void> } {
  return {
    async set(ready) {
      if (path === undefined) return;
      if (ready) await writeFile(path, `${process.pid}\n`);
      else await rm(path, { force: true });
    },
  };
}
