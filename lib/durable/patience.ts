import { InvalidArgumentError } from '@nats-io/transport-node';
import type { NatsLink } from '../nats/link.js';
import { DurableError } from './errors.js';

/** The work is no longer wanted (its signal aborted), or the connection closed for good. */
export class GaveUpError extends DurableError {
  override name = 'GaveUpError';
}

/** How long one attempt may take while the link stays up (a loaded broker can be slow). */
export const ATTEMPT_TIMEOUT_MS = 5_000;
/** Pauses between attempts that failed while the link was up: 100 ms, doubling, up to 1 s. */
const FIRST_PAUSE_MS = 100;
const LAST_PAUSE_MS = 1_000;

export interface PatienceOptions {
  readonly link: NatsLink;
  /** Stops the retrying: the pending attempt is left to fail on its own. */
  readonly signal?: AbortSignal | undefined;
  /** Called each time an attempt has to wait for the link to come back. */
  readonly onHold?: (() => void) | undefined;
  /** Called with the error of an attempt that failed while the link was up (it is retried). */
  readonly onError?: ((error: unknown) => void) | undefined;
  /** Give up after this many attempts failed while the link was up (default: never). */
  readonly maxFailures?: number | undefined;
}

/**
 * Runs `attempt` until it succeeds. While the link is down nothing is tried (it would be
 * dropped, see NatsLink): the attempt waits for the link. An attempt in flight when the link
 * goes down is not waited for: it is started again once the link is back, so `attempt` must
 * be idempotent (a JetStream publication with a message id, a KV read). An attempt that fails
 * while the link stays up is retried after a short pause. Errors the client raises for a bad
 * argument (a payload over the server's limit) are not retried: they are thrown.
 */
export async function untilDone<T>(attempt: (timeoutMs: number) => Promise<T>, options: PatienceOptions): Promise<T> {
  const { link, signal } = options;
  let pause = FIRST_PAUSE_MS;
  let failures = 0;
  for (;;) {
    if (signal?.aborted) throw new GaveUpError('given up: no longer wanted', { cause: signal.reason });
    if (link.closed) throw new GaveUpError('given up: the NATS connection is closed');
    if (!link.up) {
      options.onHold?.();
      await link.whenUp(signal);
      continue;
    }
    const epoch = link.epoch;
    // The link is up here: the attempt is abandoned when it goes down, or when `signal` aborts.
    // Listeners, not an AbortController per attempt: this runs for every op queued and acknowledged.
    let unwatch = () => {};
    const interrupted = new Promise<null>((resolve) => {
      const stop = link.onDisconnect(() => resolve(null));
      const aborted = () => resolve(null);
      signal?.addEventListener('abort', aborted, { once: true });
      unwatch = () => {
        stop();
        signal?.removeEventListener('abort', aborted);
      };
    });
    const outcome = await Promise.race([
      attempt(ATTEMPT_TIMEOUT_MS).then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
      interrupted,
    ]);
    unwatch();
    if (outcome?.ok) return outcome.value;
    if (outcome && isPermanent(outcome.error)) throw outcome.error;
    // The link went down during the attempt (or right after it failed): wait for it, retry.
    if (outcome === null || !link.up || link.epoch !== epoch) continue;
    if (++failures >= (options.maxFailures ?? Number.POSITIVE_INFINITY)) throw outcome.error;
    options.onError?.(outcome.error);
    await sleep(pause, signal);
    pause = Math.min(LAST_PAUSE_MS, pause * 2);
  }
}

/** An error the client raises for a bad argument (a payload over the server's limit): retrying cannot help. */
export function isPermanent(error: unknown): boolean {
  return error instanceof InvalidArgumentError;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
