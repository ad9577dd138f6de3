import { TroupeError, type ErrorCode } from '../../protocol/index.js';

/**
 * The one error type model clients throw. `retryable` decides whether the turn retries the
 * request (DESIGN.md: errors that retrying cannot fix are not retried).
 */
export class ModelError extends TroupeError {
  override readonly name = 'ModelError';
  constructor(
    message: string,
    override readonly code: ErrorCode,
    readonly retryable: boolean,
    /** Server-requested delay before the next attempt (from `retry-after`), in ms. */
    readonly retryAfterMs: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
