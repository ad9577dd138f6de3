import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Event } from '../../protocol/index.js';
import { decode } from '../bus/codec.js';
import { log as processLog, type Logger } from '../log.js';
import { OpQueue, type QueuedSubmission } from './op-queue.js';
import { DurableStore } from './store.js';

/**
 * The gateway's side of durability: ops go into the session's JetStream queue (so they wait
 * for a worker that restarts or adopts the session), and events are read from the log stream
 * with an ordered consumer, which resumes where it was after a reconnect or a server restart.
 * Events can arrive twice around a failover; `SeqFilter` drops the repeats.
 */
export class GatewayDurability {
  readonly #store: DurableStore;
  readonly #ops: OpQueue;
  readonly #logger: Logger;

  private constructor(store: DurableStore, logger: Logger) {
    this.#store = store;
    this.#ops = new OpQueue(store, logger);
    this.#logger = logger.child({ component: 'gateway-durability' });
  }

  static async open(connection: NatsConnection, namespace: string, logger: Logger = processLog): Promise<GatewayDurability> {
    return new GatewayDurability(await DurableStore.open(connection, namespace), logger);
  }

  /** Queue an op for its session; `unknown` when no worker has (or had) the session. */
  async submit(submission: QueuedSubmission): Promise<'queued' | 'unknown'> {
    const entry = await this.#lease(submission.session_id);
    if (entry === null || entry.operation !== 'PUT') return 'unknown';
    await this.#ops.enqueue(submission);
    return 'queued';
  }

  /** The session's lease entry; retried through a reconnect (a broker restart takes seconds). */
  async #lease(sessionId: string) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await this.#store.leases.get(sessionId);
      } catch (error) {
        if (Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  /** Every event published from now on, in stream order, until `stop`. */
  async followEvents(onEvent: (event: Event) => void): Promise<{ stop(): Promise<void> }> {
    const consumer = await this.#store.js.consumers.get(this.#store.names.logStream, {
      filter_subjects: this.#store.subjects.allEvents(),
      deliver_policy: DeliverPolicy.New,
    });
    const messages: ConsumerMessages = await consumer.consume();
    const done = (async () => {
      for await (const msg of messages) {
        // Read as any bus message is: what is not a valid one is logged and dropped.
        const message = decode(msg.subject, msg.string(), this.#logger);
        if (message?.kind === 'event') onEvent(message.event);
      }
    })();
    return {
      stop: async () => {
        await messages.close().catch(() => undefined);
        await done.catch(() => undefined);
      },
    };
  }
}

/**
 * Passes each session's events once, in seq order as they come: an event whose seq is not
 * above the last one passed for its session is a repeat (published again around a failover).
 * A `session_configured` starts a session's numbering afresh (a resumed session outside NATS).
 */
export class SeqFilter {
  readonly #last = new Map<string, number>();

  accept(event: Event): boolean {
    if (event.seq === null || event.session_id === null) return true;
    if (event.msg.type === 'session_configured') {
      this.#last.set(event.session_id, event.seq);
      return true;
    }
    const last = this.#last.get(event.session_id);
    if (last !== undefined && event.seq <= last) return false;
    this.#last.set(event.session_id, event.seq);
    return true;
  }
}
