import { TroupeError } from '../../protocol/index.js';
/**
 * The one error type of the rollout module. `path` names the rollout file it is about, so a
 * failure to resume or to persist can be traced to a file without reading the stack.
 */
export class RolloutError extends TroupeError {
  override readonly name = 'RolloutError';
  constructor(
    message: string,
    readonly path: string | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
