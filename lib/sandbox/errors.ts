import { TroupeError } from '../../protocol/index.js';
/** No sandbox backend can confine commands here; the message says how to get one. */
export class SandboxUnavailableError extends TroupeError {
  override readonly name = 'SandboxUnavailableError';
  override readonly code = 'sandbox_error';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
