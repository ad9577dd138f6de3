import { jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { subjects, type Subjects } from '../bus/subjects.js';
import { durableNames, type DurableNames } from './names.js';
import { DurableError } from './errors.js';

/** How long JetStream remembers a message id to drop a repeated publication. */
const DUPLICATE_WINDOW_NS = 2 * 60 * 1_000_000_000;

/**
 * The JetStream side of one namespace: the log stream, the op queue and the lease bucket,
 * created on first use (idempotently: every worker and gateway may try at the same time).
 */
export class DurableStore {
  private constructor(
    readonly connection: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly leases: KV,
    readonly names: DurableNames,
    readonly subjects: Subjects,
  ) {}

  static async open(connection: NatsConnection, namespace: string): Promise<DurableStore> {
    const names = durableNames(namespace);
    const subs = subjects(namespace);
    try {
      const jsm = await jetstreamManager(connection);
      await ensureStream(jsm, {
        name: names.logStream,
        subjects: [subs.allEvents(), subs.allSessionLogs()],
        retention: RetentionPolicy.Limits,
      });
      await ensureStream(jsm, { name: names.opStream, subjects: [subs.allOpQueues()], retention: RetentionPolicy.Workqueue });
      const js = jetstream(connection);
      // History 1: only the current holder matters; revisions do the compare-and-set.
      const leases = await new Kvm(js).create(names.leaseBucket, { history: 1, storage: StorageType.File });
      return new DurableStore(connection, js, jsm, leases, names, subs);
    } catch (error) {
      throw new DurableError(`cannot prepare JetStream for namespace ${namespace} (is JetStream enabled on the server?)`, { cause: error });
    }
  }
}

/**
 * The keys of the lease bucket, read from its stream's subjects in one request (paged by the
 * client when there are many). Not the KV client's `keys()`: that lists through a consumer
 * that waits for the last key's delivery, and with leases renewed while it reads, it was seen
 * to wait forever on nats-server 2.9, leaving a worker that never adopts anything again.
 * A deleted lease keeps its subject (its delete marker); readers skip it.
 */
export async function leaseKeys(store: Pick<DurableStore, 'jsm' | 'names'>): Promise<string[]> {
  const bucket = store.names.leaseBucket;
  const prefix = `$KV.${bucket}.`;
  const info = await store.jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}

async function ensureStream(jsm: JetStreamManager, config: { name: string; subjects: string[]; retention: RetentionPolicy }): Promise<void> {
  const exists = await jsm.streams.info(config.name).then(
    () => true,
    () => false,
  );
  if (exists) return;
  try {
    await jsm.streams.add({ ...config, storage: StorageType.File, duplicate_window: DUPLICATE_WINDOW_NS });
  } catch (error) {
    // Another process created it between the look-up and the add.
    if (
      await jsm.streams.info(config.name).then(
        () => true,
        () => false,
      )
    )
      return;
    throw error;
  }
}
