/** How many times the turn retries a failed model stream before giving up with an `error` event. */
export const MAX_STREAM_RETRIES = 5;

/** No wait between attempts is longer than this, whatever the attempt number. */
export const MAX_RETRY_DELAY_MS = 30_000;

/**
 * The wait before retry number `attempt` (1-based): exponential from `baseMs`, with ±20%
 * jitter so many agents failing together do not retry in lockstep, capped at
 * MAX_RETRY_DELAY_MS. A server-requested delay (`retry-after`) is a floor and may exceed the
 * cap: asking sooner than the server allowed only earns another 429.
 */
export function retryDelayMs(attempt: number, retryAfterMs: number | null, baseMs: number): number {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  const exponential = Math.min(baseMs * 2 ** exponent, MAX_RETRY_DELAY_MS);
  const jittered = Math.min(exponential * (0.8 + Math.random() * 0.4), MAX_RETRY_DELAY_MS);
  const floor = retryAfterMs !== null && retryAfterMs > 0 ? retryAfterMs : 0;
  return Math.round(Math.max(jittered, floor));
}
