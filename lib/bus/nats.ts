import {
  ClosedConnectionError,
  RequestError,
  TimeoutError,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscriptionHandle,
} from '@nats-io/transport-node';
import type { BusMessage } from '../../protocol/index.js';
import { log as processLog, type Logger } from '../log.js';
import {
  BusClosedError,
  BusError,
  InvalidBusMessageError,
  NoRespondersError,
  RequestTimeoutError,
  type Bus,
  type BusHandler,
  type Delivery,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
} from './bus.js';
import { assertPublishSubject, assertSubscribeSubject } from './subjects.js';
import { decode, encode, eventFilter, type EventFilter } from './codec.js';
import { InFlightRequests } from './requests.js';

/**
 * The bus on NATS core: subjects, wildcards and queue groups are the server's own, request and
 * reply use the client's shared reply subscription, and "no responders" is the server's 503
 * status. What NATS does not do for us is the contract's part: every message is validated as
 * a BusMessage when it is published and again when it arrives (anything invalid is logged and
 * dropped), and a closed bus refuses work with BusClosedError.
 *
 * Subscribing is asynchronous on NATS: the server learns of a subscription when the client's
 * buffer reaches it. Messages this connection publishes afterwards are ordered behind it, but
 * another connection's are not: `flush()` resolves once the server has seen everything sent
 * so far, which is what "this subscription is live" means.
 */

export interface NatsBusOptions {
  /** Where dropped messages and failing handlers are reported; the process logger by default. */
  readonly logger?: Logger;
  /** Close the NATS connection when the bus closes (default true). */
  readonly ownsConnection?: boolean;
}

/** How long `close` waits for the server to take what is still buffered. */
const CLOSE_FLUSH_MS = 2_000;

class NatsSubscription implements Subscription {
  #active = true;

  constructor(
    readonly subject: string,
    private readonly handle: NatsSubscriptionHandle,
    private readonly owner: NatsBus,
    private readonly onStop: (subscription: NatsSubscription) => void,
  ) {}

  get active(): boolean {
    return this.#active;
  }

  /** Stops delivery at once; returns false when it was already stopped. */
  stop(): boolean {
    if (!this.#active) return false;
    this.#active = false;
    this.onStop(this);
    try {
      this.handle.unsubscribe();
    } catch {
      // The connection is already closed: the server dropped the subscription with it.
    }
    return true;
  }

  /**
   * Resolves once the server has dropped the subscription, so a queue group no longer counts
   * this member (a full worker leaving the placement group relies on it). The subscription is
   * drained, not cut: what the server routed here before it saw the unsubscribe is still
   * handled. A queue member that dropped those instead lost the requests (a sub-agent's
   * placement timed out when a worker shrank its placement group while others were placing).
   */
  async unsubscribe(): Promise<void> {
    if (!this.#active) return;
    try {
      await this.handle.drain();
    } catch {
      // The connection is closed or closing: the server dropped the subscription with it.
    }
    if (this.stop()) await this.owner.settle();
  }
}

export class NatsBus implements Bus {
  readonly connection: NatsConnection;
  readonly #logger: Logger;
  readonly #ownsConnection: boolean;
  readonly #subscriptions = new Set<NatsSubscription>();
  readonly #requests = new InFlightRequests(() => this.#ensureOpen());
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(connection: NatsConnection, options: NatsBusOptions = {}) {
    this.connection = connection;
    this.#logger = (options.logger ?? processLog).child({ component: 'bus', transport: 'nats' });
    this.#ownsConnection = options.ownsConnection ?? true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async publish(subject: string, message: BusMessage): Promise<void> {
    // Checked and serialized in the caller's stack: a message mutated after the call is sent
    // as it was at the call.
    this.#ensureOpen();
    assertPublishSubject(subject);
    this.#send(subject, encode(subject, message));
  }

  /**
   * Test-only: put a payload on the bus without validating it, as a foreign or broken client
   * could, so the receiving side's validation can be exercised.
   */
  async publishRaw(subject: string, payload: string): Promise<void> {
    this.#ensureOpen();
    assertPublishSubject(subject);
    this.#send(subject, payload);
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    this.#ensureOpen();
    assertSubscribeSubject(subject);
    const { queue } = options;
    if (queue !== undefined && (queue.length === 0 || /\s/.test(queue))) {
      throw new BusError(`invalid queue group ${JSON.stringify(queue)}: must be non-empty without whitespace`);
    }
    const filter = eventFilter(options.eventTypes);
    // The callback is assigned before NATS can call it: messages only arrive on a later tick.
    let subscription: NatsSubscription | undefined;
    const handle = this.connection.subscribe(subject, {
      ...(queue !== undefined ? { queue } : {}),
      callback: (error, msg) => {
        if (!subscription?.active) return;
        if (error) {
          this.#logger.error({ err: error, filter: subject }, 'a NATS subscription failed');
          subscription.stop();
          return;
        }
        this.#dispatch(subject, handler, msg, filter);
      },
    });
    subscription = new NatsSubscription(subject, handle, this, (s) => this.#subscriptions.delete(s));
    this.#subscriptions.add(subscription);
    return subscription;
  }

  request(subject: string, message: BusMessage, options: RequestOptions): Promise<BusMessage> {
    const { timeoutMs } = options;
    return this.#requests.send(subject, message, timeoutMs, (payload, request) => {
      this.connection.request(subject, payload, { timeout: timeoutMs }).then(
        (msg) => {
          const reply = decode(subject, msg.string(), this.#logger);
          if (reply === undefined) request.fail(new InvalidBusMessageError(subject, 'the reply is not a valid bus message'));
          else request.answer(reply);
        },
        (error: unknown) => request.fail(this.#requestError(subject, timeoutMs, error)),
      );
    });
  }

  /** Resolves once the server has processed everything this connection sent so far. */
  async flush(): Promise<void> {
    this.#ensureOpen();
    await this.connection.flush();
  }

  /**
   * A flush that never throws and never waits long: used where the answer only improves
   * ordering (after an unsubscribe) and a lost connection makes the point moot.
   */
  async settle(): Promise<void> {
    if (this.#closed || this.connection.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.connection.flush().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_FLUSH_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Buffered publications (a session's last events) are pushed to the server first.
    await this.settle();
    this.#closed = true;
    this.#requests.failAll(new BusClosedError());
    for (const subscription of [...this.#subscriptions]) subscription.stop();
    if (this.#ownsConnection && !this.connection.isClosed()) await this.connection.close();
  }

  #send(subject: string, payload: string): void {
    try {
      this.connection.publish(subject, payload);
    } catch (error) {
      if (error instanceof ClosedConnectionError) throw new BusClosedError();
      throw new BusError(`could not publish on ${subject}: ${(error as Error).message}`, { cause: error });
    }
  }

  #dispatch(filter: string, handler: BusHandler, msg: Msg, events?: EventFilter): void {
    const subject = msg.subject;
    const payload = msg.string();
    if (events && !events.prefilter(payload)) return;
    const message = decode(subject, payload, this.#logger);
    if (message === undefined) return;
    if (events && !events.accepts(message)) return;
    const replyTo = msg.reply;
    const delivery: Delivery =
      replyTo === undefined || replyTo === ''
        ? { subject }
        : {
            subject,
            respond: async (reply) => {
              this.#ensureOpen();
              this.#send(replyTo, encode(replyTo, reply));
            },
          };
    const fail = (err: unknown) => this.#logger.error({ err, subject, filter }, 'bus handler failed');
    try {
      const result = handler(message, delivery);
      if (result instanceof Promise) result.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  #requestError(subject: string, timeoutMs: number, error: unknown): Error {
    if (this.#closed || error instanceof ClosedConnectionError) return new BusClosedError();
    if (error instanceof TimeoutError) return new RequestTimeoutError(subject, timeoutMs);
    if (error instanceof RequestError) {
      if (error.isNoResponders()) return new NoRespondersError(subject);
      if (error.cause instanceof TimeoutError) return new RequestTimeoutError(subject, timeoutMs);
    }
    return new BusError(`request on ${subject} failed: ${(error as Error).message}`, { cause: error });
  }

  #ensureOpen(): void {
    if (this.#closed) throw new BusClosedError();
  }
}
