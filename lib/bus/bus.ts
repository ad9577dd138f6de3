import type { BusMessage, EventType } from '../../protocol/index.js';
import { TroupeError } from '../../protocol/index.js';

/** What a subscriber is handed with each message. */
export interface Delivery {
  /** The concrete subject the message was published on (never a wildcard). */
  readonly subject: string;
  /** Present when the publisher is waiting for an answer (`request`). */
  respond?(reply: BusMessage): Promise<void>;
}

export type BusHandler = (message: BusMessage, delivery: Delivery) => void | Promise<void>;

export interface SubscribeOptions {
  /** Members of one queue group share the messages: each message goes to exactly one of them. */
  readonly queue?: string;
  /**
   * Only `event` messages whose event is of one of these types reach the handler; every other
   * message on the subject is dropped, most of them before they are parsed and validated. For
   * a subscriber that follows a few kinds of a busy subject's messages: a parent following its
   * children's turns does not pay for their streaming deltas and items.
   */
  readonly eventTypes?: ReadonlySet<EventType>;
}

export interface Subscription {
  readonly subject: string;
  unsubscribe(): Promise<void>;
}

export interface RequestOptions {
  readonly timeoutMs: number;
}

/**
 * The only way between actors that may live in different processes (DESIGN.md). Subjects are
 * dot-separated tokens; subscriptions may use `*` (one token) and `>` (one or more trailing
 * tokens), as in NATS. Every message is validated as a BusMessage when published and again
 * when received (the in-process transport skips the second check for what its own publishers
 * encoded), and no object is shared between publisher and subscriber.
 */
export interface Bus {
  publish(subject: string, message: BusMessage): Promise<void>;
  subscribe(subject: string, handler: BusHandler, options?: SubscribeOptions): Subscription;
  /** Publish and wait for the first reply; rejects with NoRespondersError or RequestTimeoutError. */
  request(subject: string, message: BusMessage, options: RequestOptions): Promise<BusMessage>;
  /** Stop all subscriptions; pending requests reject with BusClosedError. */
  close(): Promise<void>;
}

export class BusError extends TroupeError {
  override name = 'BusError';
}
export class NoRespondersError extends BusError {
  override name = 'NoRespondersError';
  constructor(readonly subject: string) {
    super(`no responders on ${subject}`);
  }
}
export class RequestTimeoutError extends BusError {
  override name = 'RequestTimeoutError';
  constructor(
    readonly subject: string,
    readonly timeoutMs: number,
  ) {
    super(`request on ${subject} timed out after ${timeoutMs} ms`);
  }
}
export class BusClosedError extends BusError {
  override name = 'BusClosedError';
  constructor() {
    super('the bus is closed');
  }
}
/** A message failed validation; `message` names the fields. */
export class InvalidBusMessageError extends BusError {
  override name = 'InvalidBusMessageError';
  constructor(
    readonly subject: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`invalid message on ${subject}: ${detail}`, options);
  }
}
