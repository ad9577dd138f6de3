import type { BusMessage } from '../../protocol/index.js';
import { encodeRequest } from './codec.js';

/** A request in flight, from the transport's side: answered or failed, once. */
export interface InFlight {
  answer(reply: BusMessage): void;
  fail(error: Error): void;
}

/**
 * The requests one connection has in flight, what every transport shares about them: the
 * checks before one goes out, settling it exactly once, and failing all of them when the
 * connection closes. How a request travels and how its answer comes back is the transport's.
 */
export class InFlightRequests {
  readonly #open = new Set<InFlight>();
  readonly #ensureOpen: () => void;

  constructor(ensureOpen: () => void) {
    this.#ensureOpen = ensureOpen;
  }

  /**
   * Starts a request. `start` puts the validated payload on its way and returns what to clean
   * up once the request settles (a timer, an inbox). A throw before or in `start` (a closed
   * connection, a bad subject, an invalid message) becomes the rejection.
   */
  send(subject: string, message: BusMessage, timeoutMs: number, start: (payload: string, request: InFlight) => (() => void) | void): Promise<BusMessage> {
    return new Promise<BusMessage>((resolve, reject) => {
      this.#ensureOpen();
      const payload = encodeRequest(subject, message, timeoutMs);
      let settled = false;
      let cleanup: (() => void) | undefined;
      const settle = (finish: () => void) => {
        if (settled) return;
        settled = true;
        this.#open.delete(request);
        cleanup?.();
        finish();
      };
      const request: InFlight = {
        answer: (reply) => settle(() => resolve(reply)),
        fail: (error) => settle(() => reject(error)),
      };
      this.#open.add(request);
      cleanup = start(payload, request) ?? undefined;
      // Settled within `start` (no responders, say): clean up now that we know how.
      if (settled) cleanup?.();
    });
  }

  /** Fails every request still in flight (the connection is closing). */
  failAll(error: Error): void {
    for (const request of [...this.#open]) request.fail(error);
  }
}
