import OpenAI, { type ClientOptions } from 'openai';
import { ChatModelClient } from './chat-client.js';
import { contextWindowResolver } from './context-window.js';
import { httpFetch } from './http-fetch.js';
import { ResponsesModelClient } from './responses-client.js';
import { ModelError } from './errors.js';
import type { ModelClient, ModelStreamEvent } from './types.js';

export interface ModelClientOptions {
  /** Which OpenAI wire API the provider speaks. */
  readonly wireApi: 'responses' | 'chat';
  /** Defaults to OPENAI_API_KEY, then to a placeholder: local providers need no key. */
  readonly apiKey?: string | undefined;
  /** An OpenAI-compatible base URL including `/v1`; defaults to OPENAI_BASE_URL, then the OpenAI API. */
  readonly baseURL?: string | undefined;
  /** A stream that sends nothing for this long fails (retryable). Default 300 000 ms. */
  readonly idleTimeoutMs?: number | undefined;
  /** Context window for every model: a number, or null for "unknown"; omit to use the known-model table. */
  readonly contextWindow?: number | null | undefined;
  /** A fetch implementation for the SDK (proxies, tests); defaults to {@link httpFetch}. */
  readonly fetch?: ClientOptions['fetch'];
}

export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;

/** Sent when there is no key at all, so keyless local providers (Ollama, vLLM) work. */
const PLACEHOLDER_API_KEY = 'troupe-no-api-key';

/**
 * What a model request needs and was not given: no key and no endpoint means the OpenAI API
 * without a key, which can only be refused. Said before any request is made.
 */
export const NO_PROVIDER_MESSAGE =
  'No model provider is set: set OPENAI_API_KEY to use the OpenAI API, or OPENAI_BASE_URL to use an OpenAI-compatible server (such as Ollama or vLLM)';

/** A ModelClient for the chosen wire API. Each `stream()` call is one attempt: the turn retries. */
export function createModelClient(options: ModelClientOptions): ModelClient {
  const envKey = process.env['OPENAI_API_KEY'] || undefined;
  const apiKey = options.apiKey ?? envKey;
  const baseURL = options.baseURL ?? (process.env['OPENAI_BASE_URL'] || undefined);
  const contextWindow = contextWindowResolver(options.contextWindow);
  // A fetch of the caller's own may route the default endpoint anywhere (proxies, tests).
  if (apiKey === undefined && baseURL === undefined && options.fetch === undefined) return new NoProviderClient(contextWindow);
  const client = new OpenAI({
    apiKey: apiKey ?? PLACEHOLDER_API_KEY,
    ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
    fetch: options.fetch ?? httpFetch,
    maxRetries: 0,
  });
  const common = {
    client,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    contextWindow,
    keySource:
      apiKey === undefined
        ? 'no API key was sent: set OPENAI_API_KEY'
        : apiKey === envKey
          ? 'the API key in OPENAI_API_KEY was refused'
          : 'the API key given to troupe was refused',
  };
  return options.wireApi === 'chat' ? new ChatModelClient(common) : new ResponsesModelClient(common);
}

/** Fails every request at once, saying what to set (see NO_PROVIDER_MESSAGE). */
class NoProviderClient implements ModelClient {
  readonly #contextWindow: (model: string) => number | null;

  constructor(contextWindow: (model: string) => number | null) {
    this.#contextWindow = contextWindow;
  }

  contextWindow(model: string): number | null {
    return this.#contextWindow(model);
  }

  stream(): AsyncIterable<ModelStreamEvent> {
    const error = new ModelError(NO_PROVIDER_MESSAGE, 'unauthorized', false);
    return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }) };
  }
}

export { MAX_STREAM_RETRIES, MAX_RETRY_DELAY_MS, retryDelayMs } from './backoff.js';
export { ChatModelClient, encodeChatRequest } from './chat-client.js';
export { classifyModelError, classifyProviderFailure, retryAfterMs, type ProviderFailure } from './classify.js';
export { contextWindowResolver, knownContextWindow } from './context-window.js';
export { ModelError } from './errors.js';
export { rateLimitsFromHeaders } from './rate-limits.js';
export { ResponsesModelClient, fromOutputItem, encodeResponsesRequest } from './responses-client.js';
export { SdkModelClient, type OpenedStream, type SdkModelClientOptions } from './sdk-client.js';
export type { ModelClient, ModelStreamEvent, Prompt, ToolSpecJson } from './types.js';
