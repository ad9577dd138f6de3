import { AckPolicy, DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import { BusMessage, type BusMessageOf } from '../../protocol/index.js';
import { log as processLog, type Logger } from '../log.js';
import { DurableError } from './errors.js';
import type { DurableStore } from './store.js';

export type QueuedSubmission = BusMessageOf<'op'>['submission'];

/** How long an op handed to a session may stay unacknowledged before JetStream offers it again. */
const ACK_WAIT_NS = 30 * 1_000_000_000;
const ENQUEUE_PATIENCE_MS = 30_000;
const RETRY_PAUSE_MS = 250;

/**
 * Ops on their way to a session, in JetStream. A submission is published once with its
 * submission id as the message id (a repeated publication within the duplicate window is
 * dropped), and stays in the queue until the worker running the session has applied it and
 * acknowledged it: a worker that dies in between leaves it for the one that adopts the
 * session. One durable consumer per session, one op in flight at a time, so order holds.
 */
export class OpQueue {
  readonly #store: DurableStore;
  readonly #logger: Logger;

  constructor(store: DurableStore, logger: Logger = processLog) {
    this.#store = store;
    this.#logger = logger.child({ component: 'op-queue' });
  }

  async enqueue(submission: QueuedSubmission): Promise<void> {
    const message: BusMessage = BusMessage.parse({ kind: 'op', submission });
    const subject = this.#store.subjects.opQueue(submission.session_id);
    const deadline = Date.now() + ENQUEUE_PATIENCE_MS;
    for (;;) {
      try {
        await this.#store.js.publish(subject, JSON.stringify(message), { msgID: `${submission.session_id}:${submission.id}` });
        return;
      } catch (error) {
        if (Date.now() >= deadline) throw new DurableError(`could not queue op ${submission.id} for session ${submission.session_id}`, { cause: error });
        this.#logger.warn({ err: error, session: submission.session_id }, 'queueing an op failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  /**
   * Feed a session its ops: `apply` is called for one op at a time, and the op is
   * acknowledged when it resolves (a rejection leaves it for redelivery).
   */
  async consume(sessionId: string, apply: (submission: QueuedSubmission) => Promise<void>): Promise<OpFeed> {
    const { jsm, js, names, subjects } = this.#store;
    const name = names.opConsumer(sessionId);
    const exists = await jsm.consumers.info(names.opStream, name).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await jsm.consumers.add(names.opStream, {
        durable_name: name,
        filter_subject: subjects.opQueue(sessionId),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: 1,
        ack_wait: ACK_WAIT_NS,
      });
    }
    const consumer = await js.consumers.get(names.opStream, name);
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 1 });
    const done = (async () => {
      for await (const msg of messages) {
        let parsed: BusMessage | undefined;
        try {
          const result = BusMessage.safeParse(JSON.parse(msg.string()));
          if (result.success) parsed = result.data;
        } catch {
          parsed = undefined;
        }
        if (parsed?.kind !== 'op') {
          this.#logger.warn({ session: sessionId }, 'dropped an invalid op from the queue');
          msg.term();
          continue;
        }
        try {
          await apply(parsed.submission);
          msg.ack();
        } catch (error) {
          this.#logger.error({ err: error, session: sessionId }, 'applying a queued op failed; it will be offered again');
          msg.nak(1_000);
        }
      }
    })();
    return {
      stop: async () => {
        await messages.close().catch(() => undefined);
        await done.catch(() => undefined);
      },
    };
  }

  /** The session ended: its consumer (and with it any op left unread) goes. */
  async remove(sessionId: string): Promise<void> {
    const { jsm, names } = this.#store;
    await jsm.consumers.delete(names.opStream, names.opConsumer(sessionId)).catch(() => undefined);
    // A work queue drops only what was acknowledged: ops sent after the shutdown would stay.
    await jsm.streams.purge(names.opStream, { filter: this.#store.subjects.opQueue(sessionId) }).catch(() => undefined);
  }
}

export interface OpFeed {
  stop(): Promise<void>;
}
