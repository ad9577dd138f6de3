import { randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { BusMessage, type BusMessageOf } from '../../protocol/index.js';
import { log as processLog, type Logger } from '../log.js';
import { NatsLink } from '../nats/link.js';
import { DurableError } from './errors.js';
import { untilDone } from './patience.js';
import type { DurableStore } from './store.js';

export type QueuedSubmission = BusMessageOf<'op'>['submission'];

/** How long an op handed to a session may stay unacknowledged before JetStream offers it again. */
const ACK_WAIT_NS = 30 * 1_000_000_000;
/**
 * How long one pull for the next op lasts. The client watches its heartbeats (half of it) and
 * pulls again after missing two, and it waits this long before it checks again on a consumer
 * it could not look up after a reconnect: short, so a session is fed again soon after an outage.
 */
const PULL_EXPIRES_MS = 5_000;
/** Acknowledging an op is retried this many times while connected (then its redelivery is skipped). */
const ACK_ATTEMPTS = 5;

/**
 * Ops on their way to a session, in JetStream. Each enqueue publishes with a message id of its
 * own, the same for all its retries (a retry of a publication the server had stored, its
 * acknowledgement lost with the connection, is dropped by the duplicate window), and new for
 * every enqueue: the same submission id sent again (a gateway closing a session it resumed, a
 * client numbering its ops from 1 again) is a new op, not a duplicate. The op stays in the queue until the worker running the session has applied it and acknowledged it:
 * a worker that dies in between leaves it for the one that adopts the session. One durable
 * consumer per session, one op in flight at a time, so order holds.
 *
 * While NATS is away an enqueue waits for it (in order: the gateway sends one op at a time)
 * rather than failing; an acknowledgement lost with the connection is sent again when it is back,
 * so the next op does not wait for the redelivery of this one.
 */
export class OpQueue {
  readonly #store: DurableStore;
  readonly #logger: Logger;
  readonly #link: NatsLink;
  #holding = false;

  constructor(store: DurableStore, logger: Logger = processLog) {
    this.#store = store;
    this.#logger = logger.child({ component: 'op-queue' });
    this.#link = NatsLink.of(store.connection);
    this.#link.onReconnect(() => {
      if (this.#holding) this.#logger.info('NATS is back: queueing held ops');
      this.#holding = false;
    });
  }

  /** Queue an op; waits through an outage until JetStream has stored it, or `signal` aborts. */
  async enqueue(submission: QueuedSubmission, signal?: AbortSignal): Promise<void> {
    const message: BusMessage = BusMessage.parse({ kind: 'op', submission });
    const subject = this.#store.subjects.opQueue(submission.session_id);
    const payload = JSON.stringify(message);
    const msgID = `${submission.session_id}:${submission.id}:${randomUUID()}`;
    try {
      await untilDone((timeout) => this.#store.js.publish(subject, payload, { msgID, timeout }), {
        link: this.#link,
        signal,
        onHold: () => this.hold(),
        onError: (error) => this.#logger.warn({ err: error, session: submission.session_id }, 'queueing an op failed; retrying'),
      });
    } catch (error) {
      throw new DurableError(`could not queue op ${submission.id} for session ${submission.session_id}`, { cause: error });
    }
  }

  /** Say once per outage that ops wait for NATS. */
  hold(): void {
    if (this.#holding) return;
    this.#holding = true;
    this.#logger.warn('holding ops until NATS is back');
  }

  /**
   * Feed a session its ops: `apply` is called for one op at a time, and the op is
   * acknowledged when it resolves (a rejection leaves it for redelivery).
   */
  async consume(sessionId: string, apply: (submission: QueuedSubmission) => Promise<void>): Promise<OpFeed> {
    const { jsm, js, names, subjects } = this.#store;
    const name = names.opConsumer(sessionId);
    // One JetStream API call for a new session (most are: every sub-agent and job item is one).
    // Creating a durable consumer that exists with the same config returns it as it is; one
    // that exists otherwise (made by an older version) is refused, and then taken as it is.
    const info = await jsm.consumers
      .add(names.opStream, {
        durable_name: name,
        filter_subject: subjects.opQueue(sessionId),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: 1,
        ack_wait: ACK_WAIT_NS,
      })
      .catch((error: unknown) =>
        jsm.consumers.info(names.opStream, name).catch(() => {
          throw error;
        }),
      );
    const consumer = js.consumers.getConsumerFromInfo(info);
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 1, expires: PULL_EXPIRES_MS });
    const stopping = new AbortController();
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
        } catch (error) {
          this.#logger.error({ err: error, session: sessionId }, 'applying a queued op failed; it will be offered again');
          msg.nak(1_000);
          continue;
        }
        await this.#acknowledge(msg, sessionId, stopping.signal);
      }
    })();
    return {
      stop: async () => {
        stopping.abort();
        await messages.close().catch(() => undefined);
        await done.catch(() => undefined);
      },
    };
  }

  /**
   * Acknowledge and wait for the server to confirm it. An acknowledgement sent as the broker
   * went away is lost; the op would then block the session's queue until its redelivery
   * (ACK_WAIT_NS). So it is sent again once NATS is back, a few times at most: the session
   * skips a redelivered op it has applied (HostDurability.feed).
   */
  async #acknowledge(msg: JsMsg, sessionId: string, signal: AbortSignal): Promise<void> {
    const reply = ackSubject(msg);
    if (reply === undefined) {
      msg.ack();
      return;
    }
    await untilDone((timeout) => this.#store.connection.request(reply, '+ACK', { timeout }), {
      link: this.#link,
      signal,
      maxFailures: ACK_ATTEMPTS,
    }).catch((error: unknown) => this.#logger.warn({ err: error, session: sessionId }, 'an op was applied but its acknowledgement was not confirmed'));
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

/**
 * The subject an op's acknowledgement goes to. The client keeps it on the message it wraps and
 * lets it be used once (`ackAck`); a retry needs it again, so it is read from there.
 */
function ackSubject(msg: JsMsg): string | undefined {
  const inner = (msg as unknown as { msg?: { reply?: unknown } }).msg;
  return typeof inner?.reply === 'string' && inner.reply !== '' ? inner.reply : undefined;
}
