import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

/**
 * A scripted stand-in for an OpenAI-compatible model API, served over real HTTP on loopback.
 *
 * It speaks the streaming Responses API (`POST /v1/responses`) and streaming Chat Completions
 * (`POST /v1/chat/completions`), answers each request with the next step of a script, records
 * every request so a test can assert what the model was shown, and checks that every tool call
 * in the request has exactly one output (the rule the real API enforces). Point an agent at it
 * with `OPENAI_BASE_URL=<server.url>` and any API key.
 *
 * @example
 * ```ts
 * const server = await startFakeModelServer();
 * server.enqueue(
 *   { kind: 'response', items: [{ type: 'function_call', name: 'shell', arguments: { command: ['ls'] } }] },
 *   { kind: 'response', items: [{ type: 'message', text: 'Done.' }] },
 * );
 * // ... run the agent with OPENAI_BASE_URL = server.url ...
 * console.log(server.requests.length, server.violations);
 * await server.close();
 * ```
 *
 * @packageDocumentation
 */

/** One output item the fake model produces. */
export type ScriptItem =
  /** An assistant message; its text is streamed in a few deltas. */
  | { readonly type: 'message'; readonly text: string }
  /**
   * A function (tool) call. An object `arguments` is sent JSON-encoded; a string is sent as is,
   * so a test can also send malformed arguments. `call_id` is generated when absent.
   */
  | {
      readonly type: 'function_call';
      readonly name: string;
      readonly arguments: string | Readonly<Record<string, unknown>>;
      readonly call_id?: string;
    }
  /** Reasoning, streamed as a reasoning summary (Responses) or `reasoning_content` (Chat). */
  | { readonly type: 'reasoning'; readonly text: string };

/** Token counts to report; missing fields are estimated from the request and output sizes. */
export interface ScriptUsage {
  readonly input_tokens?: number;
  readonly cached_input_tokens?: number;
  readonly output_tokens?: number;
  readonly reasoning_output_tokens?: number;
}

/** Fields every script step may carry. */
export interface StepOptions {
  /**
   * Which requests this step may answer. A request is answered by the first pending step whose
   * `match` accepts it (steps without `match` accept anything), so concurrent requests from
   * several agents can be routed by their content.
   */
  readonly match?: (request: RecordedRequest) => boolean;
  /** Wait this long before answering. The wait ends early if the client disconnects. */
  readonly delayMs?: number;
}

/** Stream a complete, successful response made of `items`. */
export interface ResponseStep extends StepOptions {
  readonly kind: 'response';
  readonly items: readonly ScriptItem[];
  /**
   * Stream message and reasoning text in deltas of at most this many characters (default:
   * three deltas an item), e.g. to send a lot of events.
   */
  readonly deltaChars?: number;
  readonly usage?: ScriptUsage;
  /** Extra HTTP response headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Answer with an HTTP error and a JSON body (a string body is sent as plain text), e.g. `500`, a `429` with
 * `{ error: { code: 'insufficient_quota', type: 'insufficient_quota', message } }`, a `400` with
 * `{ error: { code: 'context_length_exceeded', message } }`, or a `429` with a `retry-after` header.
 */
export interface HttpErrorStep extends StepOptions {
  readonly kind: 'http_error';
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Stream the events of `items`, then end the HTTP response without the completion event
 * (`response.completed`; for Chat, without a `finish_reason` and `[DONE]`): a dropped stream.
 */
export interface CutStep extends StepOptions {
  readonly kind: 'cut';
  readonly items?: readonly ScriptItem[];
}

/**
 * Send the headers and the first event, then nothing until the client goes away or the server
 * closes: a stalled stream, for idle timeouts and interrupts.
 */
export interface HangStep extends StepOptions {
  readonly kind: 'hang';
}

/** Compute the answer from the request. The step it returns is used as is (its `match` is ignored). */
export interface ReplyStep extends StepOptions {
  readonly kind: 'reply';
  readonly handler: (request: RecordedRequest) => ScriptStep | Promise<ScriptStep>;
}

/** One scripted answer. */
export type ScriptStep = ResponseStep | HttpErrorStep | CutStep | HangStep | ReplyStep;

/** A request the server received, in arrival order. */
export interface RecordedRequest {
  /** `responses` for `POST /v1/responses`, `chat` for `POST /v1/chat/completions`. */
  readonly endpoint: 'responses' | 'chat';
  /** The parsed JSON body. */
  readonly body: Readonly<Record<string, unknown>>;
  /** Request headers, names lower-cased, repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** When the request arrived, in `performance.now()` milliseconds (compare requests for overlap). */
  readonly startedAt: number;
  /** When the exchange ended (answer finished or connection gone), or null while it is open. */
  readonly endedAt: number | null;
  /** The HTTP status sent, or null before the headers went out. */
  readonly status: number | null;
  /** True when the client went away before the server had finished answering. */
  readonly disconnected: boolean;
  /** Bytes of the answer's body written so far. */
  readonly bytesSent: number;
  /**
   * True while a streamed answer waits for the client to read what was sent: the socket's
   * buffers are full, and the server writes more only once the client takes some (as a real
   * server would). A client that applies backpressure holds this true.
   */
  readonly waitingForClient: boolean;
}

/** A running fake model server. */
export interface FakeModelServer {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`: use it as `OPENAI_BASE_URL`. */
  readonly url: string;
  /** Every request received, in arrival order. */
  readonly requests: readonly RecordedRequest[];
  /** Tool call / output pairing violations found in requests (each was answered with HTTP 400). */
  readonly violations: readonly string[];
  /** Append steps to the script (first in, first out, subject to each step's `match`). */
  enqueue(...steps: ScriptStep[]): void;
  /** Stop listening and end every open exchange, hanging streams included. */
  close(): Promise<void>;
}

/** Options of {@link startFakeModelServer}. */
export interface FakeModelServerOptions {
  /** Port on 127.0.0.1; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Initial script. */
  readonly steps?: readonly ScriptStep[];
  /**
   * Headers sent with every successful streamed answer, typically the provider's rate-limit
   * headers: `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
   * `x-ratelimit-reset-requests`, and the same three for `tokens`.
   */
  readonly rateLimitHeaders?: Readonly<Record<string, string>>;
}

type Endpoint = RecordedRequest['endpoint'];
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Json = Record<string, unknown>;

/** Steps after `reply` has been resolved. */
type ConcreteStep = Exclude<ScriptStep, ReplyStep>;

/** A script item with everything the wire formats need decided once (ids, argument text). */
type RenderedItem =
  | { readonly type: 'message'; readonly id: string; readonly text: string }
  | { readonly type: 'function_call'; readonly id: string; readonly call_id: string; readonly name: string; readonly arguments: string }
  | { readonly type: 'reasoning'; readonly id: string; readonly text: string };

/** One request/answer pair in flight. */
interface Exchange {
  readonly record: Mutable<RecordedRequest>;
  readonly res: ServerResponse;
  /** Aborted when the client disconnects or the server closes. */
  readonly gone: AbortController;
}

/**
 * Start a fake model server on 127.0.0.1.
 *
 * When the script has no step for a request, the request is still recorded and answered with
 * HTTP 500 and a JSON error saying the script is exhausted. A request that breaks the tool call
 * pairing rule is answered with HTTP 400 without consuming a step.
 */
export async function startFakeModelServer(options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
  const script: ScriptStep[] = [...(options.steps ?? [])];
  const requests: RecordedRequest[] = [];
  const violations: string[] = [];
  const open = new Set<Exchange>();
  const rateLimitHeaders = options.rateLimitHeaders ?? {};
  let closed = false;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // Only a bug in this file can get here; answer so the client does not wait forever.
      if (!res.headersSent) sendJson(res, 500, { error: { type: 'server_error', message: `fake model server: ${String(error)}` } });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const endpoint = endpointOf(req);
    const raw = await readBody(req);
    if (endpoint === null) {
      sendJson(res, 404, { error: { type: 'invalid_request_error', message: `fake model server: no route for ${req.method ?? '?'} ${req.url ?? '?'}` } });
      return;
    }
    const body = parseObject(raw);
    if (body === null) {
      sendJson(res, 400, { error: { type: 'invalid_request_error', message: 'fake model server: the request body is not a JSON object' } });
      return;
    }

    const record: Mutable<RecordedRequest> = {
      endpoint,
      body,
      headers: flattenHeaders(req),
      startedAt: performance.now(),
      endedAt: null,
      status: null,
      disconnected: false,
      bytesSent: 0,
      waitingForClient: false,
    };
    requests.push(record);
    const exchange: Exchange = { record, res, gone: new AbortController() };
    open.add(exchange);
    res.on('close', () => {
      open.delete(exchange);
      if (!res.writableEnded) {
        record.disconnected = !closed;
        exchange.gone.abort();
      }
      record.endedAt ??= performance.now();
    });
    if (closed) exchange.gone.abort();

    const problems = endpoint === 'responses' ? responsesPairingViolations(body) : chatPairingViolations(body);
    if (problems.length > 0) {
      violations.push(...problems);
      finishJson(exchange, 400, { error: { type: 'invalid_request_error', code: null, param: 'input', message: problems.join(' ') } });
      return;
    }

    const index = script.findIndex((step) => step.match === undefined || step.match(record));
    if (index < 0) {
      finishJson(exchange, 500, {
        error: {
          type: 'server_error',
          code: 'script_exhausted',
          message: `fake model server: the script is exhausted (request #${requests.length} to ${endpoint} has no step)`,
        },
      });
      return;
    }
    const [picked] = script.splice(index, 1);
    if (picked === undefined) return;
    const step = await resolveStep(picked, record);

    if (step.delayMs !== undefined && step.delayMs > 0) await sleep(step.delayMs, exchange.gone.signal);
    if (exchange.gone.signal.aborted) {
      res.destroy();
      return;
    }
    await answer(exchange, step, { rateLimitHeaders });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    violations,
    enqueue(...steps: ScriptStep[]): void {
      script.push(...steps);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const exchange of open) {
        exchange.gone.abort();
        exchange.res.destroy();
      }
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await stopped;
    },
  };
}

async function resolveStep(step: ScriptStep, record: RecordedRequest): Promise<ConcreteStep> {
  let current: ScriptStep = step;
  let delayMs = step.delayMs;
  while (current.kind === 'reply') {
    try {
      current = await current.handler(record);
    } catch (error) {
      return {
        kind: 'http_error',
        status: 500,
        body: { error: { type: 'server_error', message: `fake model server: reply handler failed: ${String(error)}` } },
      };
    }
    delayMs = current.delayMs ?? delayMs;
  }
  return delayMs === undefined ? current : { ...current, delayMs };
}

interface AnswerContext {
  readonly rateLimitHeaders: Readonly<Record<string, string>>;
}

async function answer(exchange: Exchange, step: ConcreteStep, context: AnswerContext): Promise<void> {
  const { record } = exchange;
  if (step.kind === 'http_error') {
    if (typeof step.body === 'string') {
      // A string is sent as is: what a proxy's HTML or plain-text error page looks like.
      startHeaders(exchange, step.status, 'text/plain; charset=utf-8', step.headers);
      exchange.record.endedAt = performance.now();
      exchange.res.end(step.body);
    } else {
      finishJson(exchange, step.status, step.body, step.headers);
    }
    return;
  }
  const streaming = record.body['stream'] === true;
  const items = renderItems(step.kind === 'hang' ? [] : (step.items ?? []));
  const headers = { ...context.rateLimitHeaders, ...(step.kind === 'response' ? step.headers : undefined) };

  if (!streaming) {
    if (step.kind === 'response') {
      const final =
        record.endpoint === 'responses'
          ? responseObject(record, items, 'completed', usageFor(record, items, step.usage))
          : chatCompletionObject(record, items, usageFor(record, items, step.usage));
      finishJson(exchange, 200, final, headers);
    } else if (step.kind === 'cut') {
      startHeaders(exchange, 200, 'application/json', headers);
      exchange.res.destroy();
    } else {
      await waitUntilGone(exchange);
    }
    return;
  }

  startHeaders(exchange, 200, 'text/event-stream', headers);
  const deltaChars = step.kind === 'response' ? step.deltaChars : undefined;
  const writer = record.endpoint === 'responses' ? new ResponsesWriter(exchange, record, deltaChars) : new ChatWriter(exchange, record, deltaChars);
  await writer.begin();
  if (step.kind === 'hang') {
    await waitUntilGone(exchange);
    return;
  }
  for (const [index, item] of items.entries()) await writer.item(item, index);
  if (step.kind === 'cut') {
    // End the body cleanly but early: the client must notice the missing completion itself.
    finish(exchange);
    return;
  }
  await writer.complete(items, usageFor(record, items, step.usage));
  finish(exchange);
}

// ---------------------------------------------------------------------------------------------
// Wire formats

interface FullUsage {
  readonly input_tokens: number;
  readonly cached_input_tokens: number;
  readonly output_tokens: number;
  readonly reasoning_output_tokens: number;
}

/** Each method resolves once what it wrote has been taken by the client's socket. */
interface StreamWriter {
  begin(): Promise<void>;
  item(item: RenderedItem, index: number): Promise<void>;
  complete(items: readonly RenderedItem[], usage: FullUsage): Promise<void>;
}

/** Server-sent events of the Responses API: `event: <type>` plus the JSON payload. */
class ResponsesWriter implements StreamWriter {
  #sequence = 0;
  readonly #responseId = `resp_${compactId()}`;
  constructor(
    private readonly exchange: Exchange,
    private readonly record: RecordedRequest,
    private readonly deltaChars: number | undefined,
  ) {}

  async begin(): Promise<void> {
    const response = responseObject(this.record, [], 'in_progress', null, this.#responseId);
    await this.#send('response.created', { response });
    await this.#send('response.in_progress', { response });
  }

  async item(item: RenderedItem, index: number): Promise<void> {
    const where = { output_index: index, item_id: item.id };
    await this.#send('response.output_item.added', { output_index: index, item: outputItem(item, 'in_progress', this.record) });
    switch (item.type) {
      case 'message': {
        const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
        await this.#send('response.content_part.added', { ...where, content_index: 0, part });
        for (const delta of pieces(item.text, this.deltaChars))
          await this.#send('response.output_text.delta', { ...where, content_index: 0, delta, logprobs: [] });
        await this.#send('response.output_text.done', { ...where, content_index: 0, text: item.text, logprobs: [] });
        await this.#send('response.content_part.done', { ...where, content_index: 0, part: { ...part, text: item.text } });
        break;
      }
      case 'reasoning': {
        const part = { type: 'summary_text', text: '' };
        await this.#send('response.reasoning_summary_part.added', { ...where, summary_index: 0, part });
        for (const delta of pieces(item.text, this.deltaChars))
          await this.#send('response.reasoning_summary_text.delta', { ...where, summary_index: 0, delta });
        await this.#send('response.reasoning_summary_text.done', { ...where, summary_index: 0, text: item.text });
        await this.#send('response.reasoning_summary_part.done', { ...where, summary_index: 0, part: { ...part, text: item.text } });
        break;
      }
      case 'function_call': {
        for (const delta of pieces(item.arguments)) await this.#send('response.function_call_arguments.delta', { ...where, delta });
        await this.#send('response.function_call_arguments.done', { ...where, name: item.name, arguments: item.arguments });
        break;
      }
    }
    await this.#send('response.output_item.done', { output_index: index, item: outputItem(item, 'completed', this.record) });
  }

  async complete(items: readonly RenderedItem[], usage: FullUsage): Promise<void> {
    await this.#send('response.completed', { response: responseObject(this.record, items, 'completed', usage, this.#responseId) });
  }

  #send(type: string, payload: Json): Promise<void> | undefined {
    const data = JSON.stringify({ type, sequence_number: this.#sequence++, ...payload });
    return send(this.exchange, `event: ${type}\ndata: ${data}\n\n`);
  }
}

/** Server-sent events of Chat Completions: bare `data:` chunks ending with `data: [DONE]`. */
class ChatWriter implements StreamWriter {
  readonly #id = `chatcmpl-${compactId()}`;
  readonly #created = Math.floor(Date.now() / 1000);
  #toolIndex = 0;
  constructor(
    private readonly exchange: Exchange,
    private readonly record: RecordedRequest,
    private readonly deltaChars: number | undefined,
  ) {}

  async begin(): Promise<void> {
    await this.#chunk({ role: 'assistant', content: '' });
  }

  async item(item: RenderedItem): Promise<void> {
    switch (item.type) {
      case 'message':
        for (const content of pieces(item.text, this.deltaChars)) await this.#chunk({ content });
        break;
      case 'reasoning':
        // Not part of the OpenAI schema, but what vLLM, DeepSeek and others stream.
        for (const reasoning_content of pieces(item.text, this.deltaChars)) await this.#chunk({ reasoning_content });
        break;
      case 'function_call': {
        const index = this.#toolIndex++;
        await this.#chunk({ tool_calls: [{ index, id: item.call_id, type: 'function', function: { name: item.name, arguments: '' } }] });
        for (const args of pieces(item.arguments)) await this.#chunk({ tool_calls: [{ index, function: { arguments: args } }] });
        break;
      }
    }
  }

  async complete(items: readonly RenderedItem[], usage: FullUsage): Promise<void> {
    const finishReason = items.some((item) => item.type === 'function_call') ? 'tool_calls' : 'stop';
    await this.#chunk({}, finishReason);
    const streamOptions = this.record.body['stream_options'];
    if (isObject(streamOptions) && streamOptions['include_usage'] === true) {
      await this.#write({ ...this.#envelope(), choices: [], usage: chatUsage(usage) });
    }
    await send(this.exchange, 'data: [DONE]\n\n');
  }

  #chunk(delta: Json, finishReason: string | null = null): Promise<void> | undefined {
    return this.#write({ ...this.#envelope(), choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }] });
  }

  #envelope(): Json {
    return { id: this.#id, object: 'chat.completion.chunk', created: this.#created, model: modelOf(this.record) };
  }

  #write(chunk: Json): Promise<void> | undefined {
    return send(this.exchange, `data: ${JSON.stringify(chunk)}\n\n`);
  }
}

function outputItem(item: RenderedItem, status: 'in_progress' | 'completed', record: RecordedRequest): Json {
  const done = status === 'completed';
  switch (item.type) {
    case 'message':
      return {
        id: item.id,
        type: 'message',
        role: 'assistant',
        status,
        content: done ? [{ type: 'output_text', text: item.text, annotations: [], logprobs: [] }] : [],
      };
    case 'function_call':
      return { id: item.id, type: 'function_call', status, call_id: item.call_id, name: item.name, arguments: done ? item.arguments : '' };
    case 'reasoning': {
      const include = record.body['include'];
      const wantsEncrypted = Array.isArray(include) && include.includes('reasoning.encrypted_content');
      return {
        id: item.id,
        type: 'reasoning',
        summary: done ? [{ type: 'summary_text', text: item.text }] : [],
        ...(wantsEncrypted && done ? { encrypted_content: `fake-encrypted:${Buffer.from(item.text).toString('base64')}` } : {}),
      };
    }
  }
}

function responseObject(
  record: RecordedRequest,
  items: readonly RenderedItem[],
  status: 'in_progress' | 'completed',
  usage: FullUsage | null,
  id = `resp_${compactId()}`,
): Json {
  const body = record.body;
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    model: modelOf(record),
    instructions: body['instructions'] ?? null,
    output: items.map((item) => outputItem(item, 'completed', record)),
    parallel_tool_calls: body['parallel_tool_calls'] ?? true,
    tool_choice: body['tool_choice'] ?? 'auto',
    tools: body['tools'] ?? [],
    temperature: null,
    top_p: null,
    metadata: {},
    error: null,
    incomplete_details: null,
    usage:
      usage === null
        ? null
        : {
            input_tokens: usage.input_tokens,
            input_tokens_details: { cached_tokens: usage.cached_input_tokens },
            output_tokens: usage.output_tokens,
            output_tokens_details: { reasoning_tokens: usage.reasoning_output_tokens },
            total_tokens: usage.input_tokens + usage.output_tokens,
          },
  };
}

function chatCompletionObject(record: RecordedRequest, items: readonly RenderedItem[], usage: FullUsage): Json {
  const text = items.flatMap((item) => (item.type === 'message' ? [item.text] : [])).join('');
  const calls = items.flatMap((item) =>
    item.type === 'function_call' ? [{ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } }] : [],
  );
  return {
    id: `chatcmpl-${compactId()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: modelOf(record),
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: text === '' ? null : text, refusal: null, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
        finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
        logprobs: null,
      },
    ],
    usage: chatUsage(usage),
  };
}

function chatUsage(usage: FullUsage): Json {
  return {
    prompt_tokens: usage.input_tokens,
    completion_tokens: usage.output_tokens,
    total_tokens: usage.input_tokens + usage.output_tokens,
    prompt_tokens_details: { cached_tokens: usage.cached_input_tokens },
    completion_tokens_details: { reasoning_tokens: usage.reasoning_output_tokens },
  };
}

/** Plausible token counts: about four characters a token, like English text. */
function usageFor(record: RecordedRequest, items: readonly RenderedItem[], given: ScriptUsage | undefined): FullUsage {
  const prompt = record.endpoint === 'responses' ? [record.body['instructions'], record.body['input']] : record.body['messages'];
  const tokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4));
  const reasoning = items.reduce((sum, item) => sum + (item.type === 'reasoning' ? tokens(item.text) : 0), 0);
  const visible = items.reduce(
    (sum, item) => sum + (item.type === 'message' ? tokens(item.text) : item.type === 'function_call' ? tokens(item.name + item.arguments) : 0),
    0,
  );
  return {
    input_tokens: given?.input_tokens ?? tokens(JSON.stringify(prompt ?? '')),
    cached_input_tokens: given?.cached_input_tokens ?? 0,
    output_tokens: given?.output_tokens ?? visible + reasoning,
    reasoning_output_tokens: given?.reasoning_output_tokens ?? reasoning,
  };
}

function renderItems(items: readonly ScriptItem[]): RenderedItem[] {
  return items.map((item): RenderedItem => {
    switch (item.type) {
      case 'message':
        return { type: 'message', id: `msg_${compactId()}`, text: item.text };
      case 'reasoning':
        return { type: 'reasoning', id: `rs_${compactId()}`, text: item.text };
      case 'function_call':
        return {
          type: 'function_call',
          id: `fc_${compactId()}`,
          call_id: item.call_id ?? `call_${compactId()}`,
          name: item.name,
          arguments: typeof item.arguments === 'string' ? item.arguments : JSON.stringify(item.arguments),
        };
    }
  });
}

/**
 * Split text into deltas of at most `size` UTF-16 units, or into up to three deltas without a
 * size; never inside a surrogate pair.
 */
function pieces(text: string, size?: number): string[] {
  if (size !== undefined) {
    const out: string[] = [];
    for (let start = 0; start < text.length;) {
      let end = Math.min(text.length, start + Math.max(2, size));
      // Keep a pair together: an end just after a high surrogate moves back one.
      const last = text.charCodeAt(end - 1);
      if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
      out.push(text.slice(start, end));
      start = end;
    }
    return out;
  }
  const chars = Array.from(text);
  if (chars.length < 3) return chars.length === 0 ? [] : [text];
  const third = Math.ceil(chars.length / 3);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += third) out.push(chars.slice(i, i + third).join(''));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tool call / output pairing

/** Violations of "every call has exactly one output after it, every output has its call". */
function responsesPairingViolations(body: Json): string[] {
  const input = body['input'];
  if (!Array.isArray(input)) return [];
  const pairs: Array<{ kind: 'call' | 'output'; id: string }> = [];
  for (const item of input) {
    if (!isObject(item)) continue;
    if (item['type'] === 'function_call') pairs.push({ kind: 'call', id: String(item['call_id']) });
    else if (item['type'] === 'function_call_output') pairs.push({ kind: 'output', id: String(item['call_id']) });
  }
  return pairingViolations(pairs, 'function_call', 'function_call_output');
}

function chatPairingViolations(body: Json): string[] {
  const messages = body['messages'];
  if (!Array.isArray(messages)) return [];
  const pairs: Array<{ kind: 'call' | 'output'; id: string }> = [];
  for (const message of messages) {
    if (!isObject(message)) continue;
    const calls = message['tool_calls'];
    if (message['role'] === 'assistant' && Array.isArray(calls)) {
      for (const call of calls) if (isObject(call)) pairs.push({ kind: 'call', id: String(call['id']) });
    } else if (message['role'] === 'tool') {
      pairs.push({ kind: 'output', id: String(message['tool_call_id']) });
    }
  }
  return pairingViolations(pairs, 'assistant tool call', 'tool message');
}

function pairingViolations(pairs: ReadonlyArray<{ kind: 'call' | 'output'; id: string }>, callName: string, outputName: string): string[] {
  const problems: string[] = [];
  const outputs = new Map<string, number>();
  const calls = new Set<string>();
  for (const { kind, id } of pairs) {
    if (kind === 'call') {
      if (calls.has(id)) problems.push(`Duplicate ${callName} with call_id ${id}.`);
      calls.add(id);
      outputs.set(id, 0);
      continue;
    }
    const seen = outputs.get(id);
    if (seen === undefined) problems.push(`No ${callName} found before the ${outputName} for call_id ${id}.`);
    else outputs.set(id, seen + 1);
  }
  for (const [id, count] of outputs) {
    if (count === 0) problems.push(`No ${outputName} found for ${callName} with call_id ${id}.`);
    else if (count > 1) problems.push(`${count} ${outputName}s found for ${callName} with call_id ${id}; expected exactly one.`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

function endpointOf(req: IncomingMessage): Endpoint | null {
  if (req.method !== 'POST') return null;
  const path = (req.url ?? '').split('?')[0];
  if (path === '/v1/responses') return 'responses';
  if (path === '/v1/chat/completions') return 'chat';
  return null;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseObject(raw: string): Json | null {
  try {
    const value: unknown = JSON.parse(raw);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function startHeaders(exchange: Exchange, status: number, contentType: string, headers: Readonly<Record<string, string>> = {}): void {
  exchange.record.status = status;
  exchange.res.writeHead(status, {
    'content-type': contentType,
    'cache-control': 'no-cache',
    'x-request-id': `req_${compactId()}`,
    ...headers,
  });
  // Send the headers now: a client waiting for them must not wait for the first event.
  exchange.res.flushHeaders();
}

/**
 * Write part of a streamed answer. When the client has not read what was sent (the socket's
 * buffers are full) the returned promise waits until it has, as a real server's writes would.
 */
function send(exchange: Exchange, text: string): Promise<void> | undefined {
  const { res, record, gone } = exchange;
  record.bytesSent += Buffer.byteLength(text);
  if (res.write(text) || gone.signal.aborted) return undefined;
  record.waitingForClient = true;
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      gone.signal.removeEventListener('abort', done);
      record.waitingForClient = false;
      resolve();
    };
    res.once('drain', done);
    gone.signal.addEventListener('abort', done, { once: true });
  });
}

function finish(exchange: Exchange): void {
  exchange.record.endedAt = performance.now();
  exchange.res.end();
}

function finishJson(exchange: Exchange, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  startHeaders(exchange, status, 'application/json', headers);
  exchange.record.endedAt = performance.now();
  exchange.res.end(JSON.stringify(body));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function waitUntilGone(exchange: Exchange): Promise<void> {
  const signal = exchange.gone.signal;
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function modelOf(record: RecordedRequest): string {
  const model = record.body['model'];
  return typeof model === 'string' ? model : 'fake-model';
}

function compactId(): string {
  return randomUUID().replaceAll('-', '').slice(0, 24);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
