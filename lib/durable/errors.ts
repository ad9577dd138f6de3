import { TroupeError } from '../../protocol/index.js';
/** Something the durable layer (JetStream, KV) could not do; `cause` holds the client's error. */
export class DurableError extends TroupeError {
  override name = 'DurableError';
}

/** The lease of a session is held by another worker, or was taken over. */
export class LeaseLostError extends DurableError {
  override name = 'LeaseLostError';
  constructor(
    readonly sessionId: string,
    options?: ErrorOptions,
  ) {
    super(`the lease of session ${sessionId} is held by another worker`, options);
  }
}
