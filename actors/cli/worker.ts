import { rm, writeFile } from 'node:fs/promises';
import { NatsBus } from '../bus/nats.js';
import { assertToken, InvalidSubjectTokenError } from '../bus/subjects.js';
import { log } from '../log.js';
import { HostDurability } from '../durable/index.js';
import { connectNats, defaultWorkerId, NATS_FLAGS, natsSettingsFrom } from '../nats/connect.js';
import { createHost, runtimeOptionsFromEnv } from '../runtime.js';
import { MODEL_FLAGS, parseArgs, UsageError, wireApiFlag } from './flags.js';

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
 * their leases; without JetStream it shuts them down instead) and exits 0.
 *
 * `--ready-file PATH` exists while the worker is connected and taking sessions, for a
 * Kubernetes readiness probe or a launcher script; it is removed on disconnect and on drain.
 */
export async function runWorker(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { ...MODEL_FLAGS, ...NATS_FLAGS, ...WORKER_FLAGS }, strict: true });
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
  const logger = log.child({ worker: workerId });

  // Until connected there is nothing to drain: a signal then just ends the process.
  const connection = await connectNats(settings, { name: `troupe-worker ${workerId}`, waitOnFirstConnect: true, logger });
  const stopping = stopSignal();
  const bus = new NatsBus(connection, { logger });
  const host = createHost(bus, runtimeOptionsFromEnv(env, { model: values.model, wireApi: wireApiFlag(values['wire-api']) }), {
    namespace: settings.namespace,
    workerId,
    capacity,
  });
  // Sessions outlive this worker when JetStream is there: leases, op queues, logs, adoption.
  const leaseMs = positiveInteger(env.TROUPE_LEASE_MS, 'TROUPE_LEASE_MS');
  try {
    host.useDurability(
      await HostDurability.open(connection, { namespace: settings.namespace, workerId, leaseMs, onLost: (id) => host.abandon(id), logger }),
    );
  } catch (error) {
    logger.warn({ err: error }, 'JetStream is not available: sessions will not survive this worker');
  }
  host.start();
  // Placement subscriptions are live once the server has seen them.
  await bus.flush();
  const ready = readiness(readyFile);
  await ready.set(true);
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect') await ready.set(false);
      else if (status.type === 'reconnect') await ready.set(true);
    }
  })();
  logger.info({ capacity, namespace: settings.namespace }, 'worker ready');

  const outcome = await Promise.race([
    stopping.signal.then((signal) => ({ signal })),
    connection.closed().then((error) => ({ lost: error ?? new Error('the NATS connection closed') })),
  ]);
  await ready.set(false);
  if ('lost' in outcome) {
    logger.error({ err: outcome.lost }, 'lost NATS for good; stopping');
    await host.close().catch(() => undefined);
    return 1;
  }
  logger.info({ signal: outcome.signal, sessions: host.load }, 'draining: taking no new sessions, handing sessions over');
  // With JetStream the sessions move to other workers; without, they are shut down.
  await host.handOver();
  await bus.close();
  stopping.dispose();
  logger.info('worker stopped');
  return 0;
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
