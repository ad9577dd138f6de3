import type { Consumer, ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Event } from '../../protocol/index.js';
import { decode } from '../bus/codec.js';
import { log as processLog, type Logger } from '../log.js';
import { NatsLink } from '../nats/link.js';
import { OpQueue, type QueuedSubmission } from './op-queue.js';
import { untilDone } from './patience.js';
import { DurableStore } from './store.js';

/** How many events one pull asks for, and how long it waits for them. */
const FETCH_BATCH = 100;
const FETCH_EXPIRES_MS = 10_000;

/**
 * The gateway's side of durability: ops go into the session's JetStream queue (so they wait
 * for a worker that restarts or adopts the session, and for NATS while it is away), and events
 * are read from the log stream by an EventFollower, which resumes after the last event it
 * passed on when NATS is back. Events can arrive twice around a failover; `SeqFilter` drops the
 * repeats.
 */
export class GatewayDurability {
  readonly #store: DurableStore;
  readonly #ops: OpQueue;
  readonly #link: NatsLink;
  readonly #logger: Logger;

  private constructor(store: DurableStore, logger: Logger) {
    this.#store = store;
    this.#ops = new OpQueue(store, logger);
    this.#link = NatsLink.of(store.connection);
    this.#logger = logger.child({ component: 'gateway-durability' });
  }

  static async open(connection: NatsConnection, namespace: string, logger: Logger = processLog): Promise<GatewayDurability> {
    return new GatewayDurability(await DurableStore.open(connection, namespace), logger);
  }

  /**
   * Queue an op for its session; `unknown` when no worker has (or had) the session. While NATS
   * is away this waits for it, however long, unless `signal` aborts.
   */
  async submit(submission: QueuedSubmission, signal?: AbortSignal): Promise<'queued' | 'unknown'> {
    const entry = await untilDone(() => this.#store.leases.get(submission.session_id), {
      link: this.#link,
      signal,
      onHold: () => this.#ops.hold(),
    });
    if (entry === null || entry.operation !== 'PUT') return 'unknown';
    await this.#ops.enqueue(submission, signal);
    return 'queued';
  }

  /**
   * Every event published from now on, in stream order, until `stop`. The next events are
   * pulled once `onEvent` has returned, or once the promise it returned has settled.
   */
  async followEvents(onEvent: (event: Event) => void | Promise<void>): Promise<{ stop(): Promise<void> }> {
    const info = await this.#store.jsm.streams.info(this.#store.names.logStream);
    const follower = new EventFollower(this.#store, this.#link, this.#logger, onEvent, info.state.last_seq);
    follower.start();
    return follower;
  }
}

/**
 * Reads the events of a namespace from the log stream with an ordered consumer, from the
 * sequence after the last one it passed on, and never passes one on twice.
 *
 * The client's ordered consumer resumes by itself after a reconnect, but after a broker
 * restart (where the consumer is gone) it asks for only one message and then waits for two
 * missed heartbeats, about 45 s, before it asks for more. So the follower does not leave it to
 * the client: on every reconnect, and whenever a pull fails, it makes a new consumer starting
 * after the last event it passed on.
 */
class EventFollower {
  readonly #store: DurableStore;
  readonly #link: NatsLink;
  readonly #logger: Logger;
  readonly #onEvent: (event: Event) => void | Promise<void>;
  /** Stream sequence of the last message read. */
  #last: number;
  #consumer: Consumer | null = null;
  #batch: ConsumerMessages | null = null;
  #stale = false;
  readonly #stopping = new AbortController();
  #done: Promise<void> = Promise.resolve();
  #unwatch: () => void = () => undefined;

  constructor(store: DurableStore, link: NatsLink, logger: Logger, onEvent: (event: Event) => void | Promise<void>, last: number) {
    this.#store = store;
    this.#link = link;
    this.#logger = logger;
    this.#onEvent = onEvent;
    this.#last = last;
  }

  start(): void {
    this.#unwatch = this.#link.onReconnect(() => this.#renew());
    this.#done = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#unwatch();
    await this.#batch?.close().catch(() => undefined);
    await this.#done.catch(() => undefined);
    // Without a broker there is nothing to delete (an ordered consumer also expires by itself).
    if (this.#link.up) await this.#consumer?.delete().catch(() => undefined);
  }

  /** Start again after the last event read, with a new consumer. */
  #renew(): void {
    this.#stale = true;
    this.#batch?.close().catch(() => undefined);
  }

  async #run(): Promise<void> {
    const { signal } = this.#stopping;
    let pause = 0;
    while (!signal.aborted) {
      try {
        if (this.#stale) this.#drop();
        if (!this.#link.up) await this.#link.whenUp(signal);
        if (signal.aborted || this.#link.closed) return;
        this.#consumer ??= await this.#store.js.consumers.get(this.#store.names.logStream, {
          filter_subjects: this.#store.subjects.allEvents(),
          opt_start_seq: this.#last + 1,
        });
        this.#batch = await this.#consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
        // Reconnected while the pull was being set up (it may be on a consumer that is gone), or
        // stopped then: `stop` found no pull to close, and this one would hold it until it expires.
        if (this.#stale || signal.aborted) void this.#batch.close().catch(() => undefined);
        for await (const msg of this.#batch) {
          if (msg.seq <= this.#last) continue;
          this.#last = msg.seq;
          // Read as any bus message is: what is not a valid one is logged and dropped.
          const message = decode(msg.subject, msg.string(), this.#logger);
          if (message?.kind === 'event') await this.#pass(message.event);
        }
        pause = 0;
      } catch (error) {
        if (signal.aborted) return;
        this.#logger.debug({ err: error, after: this.#last }, 'reading events failed; starting again after the last one read');
        this.#stale = true;
        pause = Math.min(1_000, Math.max(100, pause * 2));
        await new Promise((resolve) => setTimeout(resolve, pause));
      } finally {
        this.#batch = null;
      }
    }
  }

  /** A failing receiver is a bug of its own: logged, and the next event still comes. */
  async #pass(event: Event): Promise<void> {
    try {
      await this.#onEvent(event);
    } catch (error) {
      this.#logger.error({ err: error, session: event.session_id }, 'handling an event failed');
    }
  }

  #drop(): void {
    this.#stale = false;
    this.#consumer?.delete().catch(() => undefined);
    this.#consumer = null;
  }
}
