import { BusMessage, describeZodError, type EventType } from '../../protocol/index.js';
import type { Logger } from '../log.js';
import { InvalidBusMessageError } from './bus.js';
import { assertPublishSubject } from './subjects.js';

/**
 * The wire form every transport uses. A publisher cannot send what is not a BusMessage, and a
 * receiver drops (and logs) whatever arrives that is not one, unless it knows the payload was
 * made by `encode` in its own process (the in-process transport; never NATS).
 */

/** Validates and serializes: what leaves a publisher is a JSON string of a valid BusMessage. */
export function encode(subject: string, message: BusMessage): string {
  const parsed = BusMessage.safeParse(message);
  if (!parsed.success) {
    throw new InvalidBusMessageError(subject, describeZodError(parsed.error), { cause: parsed.error });
  }
  return JSON.stringify(parsed.data);
}

/**
 * Parses and validates on arrival; anything invalid is logged and dropped, never thrown.
 * `checked`: the payload is `encode`'s output from this process, already validated against
 * BusMessage, so it is only parsed.
 */
export function decode(subject: string, payload: string, logger: Logger, checked = false): BusMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch (err) {
    logger.warn({ err, subject }, 'dropped a bus message that is not JSON');
    return undefined;
  }
  let message: BusMessage;
  if (checked) message = value as BusMessage;
  else {
    const parsed = BusMessage.safeParse(value);
    if (!parsed.success) {
      logger.warn({ subject, problems: describeZodError(parsed.error) }, 'dropped an invalid bus message');
      return undefined;
    }
    message = parsed.data;
  }
  if (logger.isLevelEnabled('debug')) traffic.add(logger, message.kind, payload.length);
  return message;
}

/**
 * What a subscription with `eventTypes` (SubscribeOptions) lets through, as a filter over the
 * wire form: `prefilter` is a test on the payload before it is parsed, `accepts` the exact test
 * after. The prefilter looks for `"type":"<t>"` for each wanted type: every publisher encodes
 * with JSON.stringify (`encode`), which writes an event's type so, and a payload without any
 * of them cannot carry one of those events. One that has one is parsed, validated and tested
 * exactly (the text may come from elsewhere in the message: a nested item's type).
 */
export interface EventFilter {
  prefilter(payload: string): boolean;
  accepts(message: BusMessage): boolean;
}

export function eventFilter(types: ReadonlySet<EventType> | undefined): EventFilter | undefined {
  if (types === undefined) return undefined;
  const needles = [...types].map((type) => `"type":${JSON.stringify(type)}`);
  return {
    prefilter: (payload) => needles.some((needle) => payload.includes(needle)),
    accepts: (message) => message.kind === 'event' && types.has(message.event.msg.type),
  };
}

/** How long the bus traffic of a process is summed before it is logged (at `debug`). */
const TRAFFIC_WINDOW_MS = 500;

/**
 * At `debug`, what the process received on the bus: messages by kind and their bytes, one log
 * line per window in which anything arrived rather than a line per message.
 */
class TrafficSummary {
  #counts: Record<string, number> = {};
  #bytes = 0;
  #pending = false;

  add(logger: Logger, kind: string, bytes: number): void {
    this.#counts[kind] = (this.#counts[kind] ?? 0) + 1;
    this.#bytes += bytes;
    if (this.#pending) return;
    this.#pending = true;
    setTimeout(() => {
      logger.debug({ received: this.#counts, bytes: this.#bytes, window_ms: TRAFFIC_WINDOW_MS }, 'bus traffic');
      this.#counts = {};
      this.#bytes = 0;
      this.#pending = false;
    }, TRAFFIC_WINDOW_MS).unref();
  }
}

const traffic = new TrafficSummary();

/** What every transport checks before a request goes out: the subject, the timeout, the message. */
export function encodeRequest(subject: string, message: BusMessage, timeoutMs: number): string {
  assertPublishSubject(subject);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`request timeout must be a positive number of ms, got ${timeoutMs}`);
  }
  return encode(subject, message);
}
