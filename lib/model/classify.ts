import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { ModelError } from './errors.js';

/** What a provider said about a failure, whichever way it arrived (HTTP error or stream event). */
export interface ProviderFailure {
  /** HTTP status, or null when the failure came inside a stream. */
  readonly status: number | null;
  readonly code: string | null;
  readonly type: string | null;
  readonly message: string;
  readonly headers: Headers | null;
}

const CONTEXT_WINDOW_PATTERN = /context_length_exceeded|maximum context length|exceeds the context window|context window/i;
const QUOTA = 'insufficient_quota';

/**
 * Map anything a model request threw (SDK errors, fetch failures, stream parse errors) to the
 * one ModelError the turn understands. Abort errors must be filtered out before calling this:
 * an interrupt is not a model failure.
 */
export function classifyModelError(error: unknown): ModelError {
  if (error instanceof ModelError) return error;
  // Connection errors are APIErrors without a status, so they must be tested first.
  if (error instanceof APIConnectionTimeoutError) {
    return new ModelError('Model request timed out before the server answered', 'stream_failed', true, null, { cause: error });
  }
  if (error instanceof APIConnectionError) {
    const detail = describeCause(error);
    return new ModelError(`Could not reach the model server${detail ? `: ${detail}` : ''}`, 'stream_failed', true, null, { cause: error });
  }
  if (error instanceof APIError) {
    const body = isRecord(error.error) ? error.error : {};
    // The SDK prefixes the status to its message; ours names the status already.
    const sdkMessage = typeof error.status === 'number' ? error.message.replace(new RegExp(`^${error.status} `), '') : error.message;
    const providerMessage = typeof body['message'] === 'string' && body['message'] !== '' ? body['message'] : sdkMessage;
    return classifyProviderFailure(
      {
        status: typeof error.status === 'number' ? error.status : null,
        code: error.code ?? null,
        type: error.type ?? null,
        message: providerMessage,
        headers: (error.headers as Headers | undefined) ?? null,
      },
      error,
    );
  }
  const text = error instanceof Error ? error.message : String(error);
  return new ModelError(`Model stream failed: ${text}`, 'stream_failed', true, null, { cause: error });
}

/** Classify a failure described by its parts: an HTTP error body, `response.failed` or an `error` event. */
export function classifyProviderFailure(failure: ProviderFailure, cause?: unknown): ModelError {
  const { status, code, type, message } = failure;
  const options = cause === undefined ? undefined : { cause };
  const where = status === null ? 'Model stream reported an error' : `Model request failed with HTTP ${status}`;
  const text = `${where}${code ? ` (${code})` : ''}: ${message}`;

  const mentionsContext = code === 'context_length_exceeded' || CONTEXT_WINDOW_PATTERN.test(message);
  if (mentionsContext && (status === null || status === 400 || status === 413)) {
    return new ModelError(text, 'context_window_exceeded', false, null, options);
  }
  if ((status === null || status === 429) && (code === QUOTA || type === QUOTA)) {
    return new ModelError(text, 'quota_exceeded', false, null, options);
  }
  if (status === 429 || (status === null && (code === 'rate_limit_exceeded' || type === 'rate_limit_exceeded'))) {
    return new ModelError(text, 'server_error', true, retryAfterMs(failure), options);
  }
  if (status === 401 || status === 403) return new ModelError(text, 'unauthorized', false, null, options);
  if (status !== null && status >= 400 && status < 500) return new ModelError(text, 'bad_request', false, null, options);
  if (status === null && (code === 'invalid_prompt' || type === 'invalid_request_error')) {
    return new ModelError(text, 'bad_request', false, null, options);
  }
  // 5xx, and in-stream failures we cannot attribute to the request itself.
  return new ModelError(text, 'server_error', true, retryAfterMs(failure), options);
}

/**
 * The delay the server asked for: `retry-after-ms`, then `retry-after` (seconds or an HTTP
 * date), then a "try again in 1.5s" hint in the message, which is all a stream event carries.
 */
export function retryAfterMs(failure: Pick<ProviderFailure, 'headers' | 'message'>): number | null {
  const headers = failure.headers;
  const ms = headers?.get('retry-after-ms');
  if (ms) {
    const value = Number.parseFloat(ms);
    if (Number.isFinite(value) && value >= 0) return Math.round(value);
  }
  const after = headers?.get('retry-after');
  if (after) {
    const seconds = Number.parseFloat(after);
    if (Number.isFinite(seconds) && /^\s*[\d.]+\s*$/.test(after)) return Math.max(0, Math.round(seconds * 1000));
    const date = Date.parse(after);
    if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  }
  const hint = /try again in\s+([\d.]+)\s*(ms|s)\b/i.exec(failure.message);
  if (hint?.[1] !== undefined) {
    const value = Number.parseFloat(hint[1]);
    if (Number.isFinite(value)) return Math.round(hint[2]?.toLowerCase() === 'ms' ? value : value * 1000);
  }
  return null;
}

function describeCause(error: Error): string {
  const parts: string[] = [];
  let current: unknown = error.cause;
  for (let depth = 0; current instanceof Error && depth < 3; depth++) {
    const code = (current as { code?: unknown }).code;
    parts.push(typeof code === 'string' ? `${current.message} (${code})` : current.message);
    current = current.cause;
  }
  return parts.join(': ');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
