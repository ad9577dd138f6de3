import type { BusMessage } from '../../protocol/index.js';
import { log as processLog, type Logger } from '../log.js';
import {
  BusClosedError,
  BusError,
  NoRespondersError,
  RequestTimeoutError,
  type Bus,
  type BusHandler,
  type Delivery,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
} from './bus.js';
import { assertPublishSubject, assertSubscribeSubject, inbox } from './subjects.js';
import { SubjectTree } from './subject-tree.js';
import { decode, encode, eventFilter, type EventFilter } from './codec.js';
import { InFlightRequests } from './requests.js';

/**
 * The in-process transport. It behaves like a NATS server with its clients so that a test
 * written against it also means something for NATS: messages travel as JSON strings (no
 * object is shared), nothing invalid gets through, delivery is asynchronous and ordered per
 * subscription, queue groups deliver each message to one member, and a request with no
 * matching subscription fails at once.
 *
 * Publishers validate, as on NATS. A receiver validates only what did not come through a
 * publisher's `encode` (`publishRaw`): a payload `encode` made in this process was checked
 * against the very schema the receiver would check it against, so checking it again would
 * only cost time on the busiest path (a fan-out's placements, every event of every session).
 *
 * Handlers are started in publish order but an async handler is not awaited before the next
 * message is handed over, as with nats.js callbacks: a slow handler must not hold back its
 * subscription, and a handler that waits on its own subject cannot deadlock.
 */

export interface InProcessBrokerOptions {
  /** Where dropped messages and failing handlers are reported; the process logger by default. */
  readonly logger?: Logger;
}

/** A subscription as the router sees it: a filter, an optional queue group, a mailbox. */
interface Route {
  readonly subject: string;
  readonly queue: string | undefined;
  /** `checked`: the payload was made by `encode` in this process (see InProcessBus). */
  deliver(subject: string, payload: string, replyTo: string | undefined, checked: boolean): void;
}

/** Plays the NATS server: matches subjects against subscriptions, picks queue members. */
class Router {
  readonly connections = new Set<InProcessBus>();
  readonly #routes = new SubjectTree<Route>();
  /** Reply inboxes by their (literal, unique) subject: one per pending request. */
  readonly #inboxes = new Map<string, Route>();
  readonly #queueTurns = new Map<string, number>();

  constructor(readonly logger: Logger) {}

  add(route: Route, isInbox = false): void {
    if (isInbox) this.#inboxes.set(route.subject, route);
    else this.#routes.add(route.subject, route);
  }

  delete(route: Route): void {
    if (this.#inboxes.get(route.subject) === route) this.#inboxes.delete(route.subject);
    else this.#routes.delete(route.subject, route);
  }

  /** Returns how many subscriptions were handed the payload; 0 means nobody listens. */
  route(subject: string, payload: string, replyTo: string | undefined, checked: boolean): number {
    let receivers = 0;
    const inbox = this.#inboxes.get(subject);
    if (inbox) {
      inbox.deliver(subject, payload, replyTo, checked);
      receivers++;
    }
    const groups = new Map<string, Route[]>();
    for (const route of this.#routes.match(subject)) {
      if (route.queue === undefined) {
        route.deliver(subject, payload, replyTo, checked);
        receivers++;
      } else {
        const members = groups.get(route.queue);
        if (members) members.push(route);
        else groups.set(route.queue, [route]);
      }
    }
    // Members are grouped by queue name alone, whatever filter matched, as NATS does.
    for (const [queue, members] of groups) {
      const turn = this.#queueTurns.get(queue) ?? 0;
      this.#queueTurns.set(queue, turn + 1);
      members[turn % members.length]?.deliver(subject, payload, replyTo, checked);
      receivers++;
    }
    return receivers;
  }
}

let routerOf: (broker: InProcessBroker) => Router;

/**
 * One shared message space, like one NATS server: every connection made from it sees the
 * others' messages, and closing one connection leaves the rest working.
 */
export class InProcessBroker {
  readonly #router: Router;

  static {
    routerOf = (broker) => broker.#router;
  }

  constructor(options: InProcessBrokerOptions = {}) {
    const logger = (options.logger ?? processLog).child({ component: 'bus', transport: 'in-process' });
    this.#router = new Router(logger);
  }

  connect(): InProcessBus {
    return new InProcessBus(this);
  }

  /** Closes every connection made from this broker. */
  async close(): Promise<void> {
    await Promise.all([...this.#router.connections].map((bus) => bus.close()));
  }
}

/** One connection's side of a subscription: a mailbox drained outside the publisher's stack. */
class LocalSubscription implements Route, Subscription {
  #mailbox: Array<{ subject: string; payload: string; replyTo: string | undefined; checked: boolean }> = [];
  #scheduled = false;
  #active = true;

  constructor(
    readonly subject: string,
    readonly queue: string | undefined,
    private readonly handler: BusHandler,
    private readonly owner: SubscriptionOwner,
    private readonly filter?: EventFilter,
  ) {}

  deliver(subject: string, payload: string, replyTo: string | undefined, checked: boolean): void {
    if (!this.#active) return;
    this.#mailbox.push({ subject, payload, replyTo, checked });
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate rather than a microtask: like a socket, a flood of messages must leave room
    // for timers and I/O (request timeouts among them).
    setImmediate(() => this.#drain());
  }

  #drain(): void {
    this.#scheduled = false;
    const batch = this.#mailbox;
    this.#mailbox = [];
    for (const item of batch) {
      if (!this.#active) return;
      this.#dispatch(item.subject, item.payload, item.replyTo, item.checked);
    }
  }

  #dispatch(subject: string, payload: string, replyTo: string | undefined, checked: boolean): void {
    if (this.filter && !this.filter.prefilter(payload)) return;
    const message = decode(subject, payload, this.owner.logger, checked);
    if (message === undefined) return;
    if (this.filter && !this.filter.accepts(message)) return;
    const delivery: Delivery = replyTo === undefined ? { subject } : { subject, respond: (reply) => this.owner.reply(replyTo, reply) };
    const fail = (err: unknown) => this.owner.logger.error({ err, subject, filter: this.subject }, 'bus handler failed');
    try {
      const result = this.handler(message, delivery);
      if (result instanceof Promise) result.catch(fail);
    } catch (err) {
      fail(err);
    }
  }

  /** Stops delivery at once, dropping whatever is still in the mailbox. */
  stop(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#mailbox = [];
    this.owner.forget(this);
  }

  async unsubscribe(): Promise<void> {
    this.stop();
  }
}

interface SubscriptionOwner {
  readonly logger: Logger;
  reply(replyTo: string, reply: BusMessage): Promise<void>;
  forget(subscription: LocalSubscription): void;
}

/** One connection to a broker; `new InProcessBus()` makes a private broker for itself. */
export class InProcessBus implements Bus {
  readonly #router: Router;
  readonly #subscriptions = new Set<LocalSubscription>();
  readonly #requests = new InFlightRequests(() => this.#ensureOpen());
  readonly #owner: SubscriptionOwner;
  #closed = false;

  constructor(broker: InProcessBroker = new InProcessBroker()) {
    this.#router = routerOf(broker);
    this.#router.connections.add(this);
    const router = this.#router;
    this.#owner = {
      logger: router.logger,
      reply: (replyTo, reply) => this.#reply(replyTo, reply),
      forget: (subscription) => {
        router.delete(subscription);
        this.#subscriptions.delete(subscription);
      },
    };
  }

  get closed(): boolean {
    return this.#closed;
  }

  async publish(subject: string, message: BusMessage): Promise<void> {
    // Everything before the first await runs in the caller's stack, so the message is captured
    // as it is now: a caller mutating it afterwards changes nothing in flight.
    this.#ensureOpen();
    assertPublishSubject(subject);
    this.#router.route(subject, encode(subject, message), undefined, true);
  }

  /**
   * Test-only: put a payload on the bus without validating it, as a foreign or broken client
   * could, so the receiving side's validation can be exercised.
   */
  async publishRaw(subject: string, payload: string): Promise<void> {
    this.#ensureOpen();
    assertPublishSubject(subject);
    this.#router.route(subject, payload, undefined, false);
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    this.#ensureOpen();
    assertSubscribeSubject(subject);
    const { queue } = options;
    if (queue !== undefined && (queue.length === 0 || /\s/.test(queue))) {
      throw new BusError(`invalid queue group ${JSON.stringify(queue)}: must be non-empty without whitespace`);
    }
    const subscription = new LocalSubscription(subject, queue, handler, this.#owner, eventFilter(options.eventTypes));
    this.#subscriptions.add(subscription);
    this.#router.add(subscription);
    return subscription;
  }

  request(subject: string, message: BusMessage, options: RequestOptions): Promise<BusMessage> {
    const { timeoutMs } = options;
    return this.#requests.send(subject, message, timeoutMs, (payload, request) => {
      // Later replies find the inbox gone and vanish, so only the first one counts.
      const replies = this.#subscribeInbox((reply) => request.answer(reply));
      const timer = setTimeout(() => request.fail(new RequestTimeoutError(subject, timeoutMs)), timeoutMs);
      if (this.#router.route(subject, payload, replies.subject, true) === 0) request.fail(new NoRespondersError(subject));
      return () => {
        clearTimeout(timer);
        replies.stop();
      };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#requests.failAll(new BusClosedError());
    for (const subscription of [...this.#subscriptions]) subscription.stop();
    this.#router.connections.delete(this);
  }

  #subscribeInbox(onReply: (reply: BusMessage) => void): LocalSubscription {
    const subscription = new LocalSubscription(inbox(), undefined, onReply, this.#owner);
    this.#subscriptions.add(subscription);
    this.#router.add(subscription, true);
    return subscription;
  }

  async #reply(replyTo: string, reply: BusMessage): Promise<void> {
    this.#ensureOpen();
    this.#router.route(replyTo, encode(replyTo, reply), undefined, true);
  }

  #ensureOpen(): void {
    if (this.#closed) throw new BusClosedError();
  }
}

/** A connection on a broker of its own, for the common single-process case. */
export function createInProcessBus(options: InProcessBrokerOptions = {}): InProcessBus {
  return new InProcessBroker(options).connect();
}
