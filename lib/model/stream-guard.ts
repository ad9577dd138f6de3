import { classifyModelError } from './classify.js';
import { ModelError } from './errors.js';

/**
 * Watches one model request: links the caller's AbortSignal and an idle timer into the one
 * signal given to the SDK, and decides what a failure or an early end of the stream means.
 *
 * The SDK ends a stream silently when its signal aborts, so "the stream stopped" alone does
 * not say whether the user interrupted, the server went quiet, or the connection dropped; the
 * guard remembers which of its triggers fired.
 */
export class StreamGuard {
  readonly #controller = new AbortController();
  readonly #outer: AbortSignal;
  readonly #idleTimeoutMs: number;
  /** One timer for the whole stream, re-armed by each wait: a new timer per chunk costs. */
  #timer: NodeJS.Timeout | null = null;
  #waiting = false;
  #idleExpired = false;
  #ended = false;
  readonly #onOuterAbort = (): void => this.#controller.abort(this.#outer.reason);

  constructor(outer: AbortSignal, idleTimeoutMs: number) {
    this.#outer = outer;
    this.#idleTimeoutMs = idleTimeoutMs;
    if (outer.aborted) this.#controller.abort(outer.reason);
    else outer.addEventListener('abort', this.#onOuterAbort, { once: true });
  }

  /** The signal to hand to the SDK request. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Throw the caller's abort reason if it has already aborted. */
  throwIfAborted(): void {
    this.#outer.throwIfAborted();
  }

  /**
   * Wait for the network with the idle timer armed. Only time spent waiting counts: a slow
   * consumer of the events never makes the stream look idle. A failure is thrown as what it
   * means: the caller's abort reason, an idle timeout, or a classified ModelError.
   */
  async wait<T>(next: () => Promise<T>): Promise<T> {
    this.#waiting = true;
    if (this.#timer === null) this.#timer = setTimeout(() => this.#onTimer(), this.#idleTimeoutMs);
    else this.#timer.refresh();
    try {
      return await next();
    } catch (error) {
      throw this.#failure(error);
    } finally {
      this.#waiting = false;
    }
  }

  /** The timer may fire while the consumer holds an event; only a wait can be idle. */
  #onTimer(): void {
    if (!this.#waiting) return;
    this.#idleExpired = true;
    this.#controller.abort(new Error('model stream idle timeout'));
  }

  /** The stream ran to its end: there is nothing left to cancel. */
  ended(): void {
    this.#ended = true;
  }

  #failure(error: unknown): unknown {
    if (this.#outer.aborted) return this.#outer.reason;
    if (this.#idleExpired) return this.#idleError(error);
    return classifyModelError(error);
  }

  /** What to throw when the stream ended before its completion event. */
  endedEarly(what: string): unknown {
    if (this.#outer.aborted) return this.#outer.reason;
    if (this.#idleExpired) return this.#idleError(undefined);
    return new ModelError(`Model stream ended before ${what}; the connection was probably dropped`, 'stream_failed', true);
  }

  /** Stop the timer and cancel whatever is still in flight (a consumer may stop reading early). */
  dispose(): void {
    this.#clearTimer();
    this.#outer.removeEventListener('abort', this.#onOuterAbort);
    if (!this.#ended && !this.#controller.signal.aborted) this.#controller.abort(new Error('model stream closed'));
  }

  #idleError(cause: unknown): ModelError {
    return new ModelError(`Model stream idle: no data for ${this.#idleTimeoutMs} ms`, 'stream_failed', true, null, cause === undefined ? undefined : { cause });
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
