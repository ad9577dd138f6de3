import type OpenAI from 'openai';
import { ModelError } from './errors.js';
import { rateLimitsFromHeaders } from './rate-limits.js';
import { StreamGuard } from './stream-guard.js';
import type { ModelClient, ModelStreamEvent, Prompt } from './types.js';

export interface SdkModelClientOptions {
  /** An SDK client built with `maxRetries: 0`: each `stream()` call is exactly one attempt. */
  readonly client: OpenAI;
  readonly idleTimeoutMs: number;
  readonly contextWindow: (model: string) => number | null;
  /** Added to a refusal of the credentials (401, 403): where the key came from. */
  readonly keySource?: string | undefined;
}

/**
 * Request options that send `body`, JSON the client encoded itself, as is: the SDK passes a
 * string body through untouched when the request names its content type. From the request
 * parameters it then reads only `stream`, to know how to read the answer.
 */
export function encodedBody(body: string, signal: AbortSignal): { body: string; signal: AbortSignal; headers: { 'content-type': 'application/json' } } {
  return { body, signal, headers: { 'content-type': 'application/json' } };
}

/** A streamed request as the SDK's `withResponse()` opens it: the events, and the HTTP response. */
export interface OpenedStream<T> {
  readonly data: AsyncIterable<T>;
  readonly response: Response;
}

/**
 * What the two wire clients share. Each `stream()` call is one attempt, watched by a
 * StreamGuard (the caller's abort, the idle timeout, failures classified), and the provider's
 * rate limits are announced before anything else. A subclass says how its wire opens a request
 * and how its events become ModelStreamEvents.
 */
export abstract class SdkModelClient<T> implements ModelClient {
  protected readonly options: SdkModelClientOptions;

  constructor(options: SdkModelClientOptions) {
    this.options = options;
  }

  contextWindow(model: string): number | null {
    return this.options.contextWindow(model);
  }

  async *stream(prompt: Prompt, signal: AbortSignal): AsyncGenerator<ModelStreamEvent> {
    const guard = new StreamGuard(signal, this.options.idleTimeoutMs);
    try {
      guard.throwIfAborted();
      // Built before the guard waits: a request that cannot be built is a bug to surface, not
      // a network failure to retry.
      const send = this.open(prompt);
      const opened = await guard
        .wait(() => send(guard.signal))
        .catch((error: unknown) => {
          throw this.#withKeySource(error);
        });
      const limits = rateLimitsFromHeaders(opened.response.headers);
      if (limits !== null) yield { type: 'rate_limits', snapshot: limits };
      const events = opened.data[Symbol.asyncIterator]();
      yield* this.read(() => guard.wait(() => events.next()), guard, opened.response.headers);
    } finally {
      guard.dispose();
    }
  }

  /** A refusal of the credentials says which key was refused, so the user knows what to fix. */
  #withKeySource(error: unknown): unknown {
    const source = this.options.keySource;
    if (!(error instanceof ModelError) || error.code !== 'unauthorized' || source === undefined) return error;
    return new ModelError(`${error.message} (${source})`, error.code, error.retryable, error.retryAfterMs, { cause: error });
  }

  /** Build the request for `prompt`; the returned function sends it, aborted by `signal`. */
  protected abstract open(prompt: Prompt): (signal: AbortSignal) => Promise<OpenedStream<T>>;

  /**
   * Turn the wire's events into ModelStreamEvents. `next` waits for the next event under the
   * guard; `headers` are the response's, for errors that report what the provider said.
   */
  protected abstract read(next: () => Promise<IteratorResult<T, unknown>>, guard: StreamGuard, headers: Headers): AsyncGenerator<ModelStreamEvent>;
}
