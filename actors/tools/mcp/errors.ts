import { TroupeError } from '../../../protocol/index.js';
/** An MCP server could not be started, connected or listed; `server` is its configured name. */
export class McpStartError extends TroupeError {
  override readonly name = 'McpStartError';
  constructor(
    readonly server: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`MCP server "${server}" failed to start: ${reason}`, options);
  }
}

/** One tool call did not produce a result (as opposed to a result flagged `isError`). */
export class McpCallError extends TroupeError {
  override readonly name = 'McpCallError';
}

/** `resolve_elicitation` named a request that is not (or no longer) waiting for an answer. */
export class UnknownElicitationError extends TroupeError {
  override readonly name = 'UnknownElicitationError';
  override readonly code = 'bad_request';
}
