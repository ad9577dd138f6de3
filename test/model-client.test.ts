import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createModelClient,
  knownContextWindow,
  MAX_RETRY_DELAY_MS,
  MAX_STREAM_RETRIES,
  ModelError,
  retryDelayMs,
  type ModelClient,
  type ModelStreamEvent,
  type Prompt,
} from '../lib/model/index.js';
import type { ResponseItem } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { waitFor } from './support/wait.js';
import { RATE_LIMIT_HEADERS, RATE_LIMIT_SNAPSHOT } from './support/rate-limits.js';

type WireApi = 'responses' | 'chat';
const WIRE_APIS: readonly WireApi[] = ['responses', 'chat'];

let server: FakeModelServer;
beforeEach(async () => {
  server = await startFakeModelServer();
});
afterEach(async () => {
  await server.close();
});

function client(wireApi: WireApi, idleTimeoutMs = 5_000, baseURL = server.url): ModelClient {
  return createModelClient({ wireApi, apiKey: 'test-key', baseURL, idleTimeoutMs });
}

function prompt(overrides: Partial<Prompt> = {}): Prompt {
  return {
    model: 'gpt-5-codex',
    instructions: 'You are a test agent.',
    input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] }],
    tools: [],
    parallel_tool_calls: true,
    ...overrides,
  };
}

async function collect(stream: AsyncIterable<ModelStreamEvent>): Promise<ModelStreamEvent[]> {
  const events: ModelStreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

/** Run the stream to its failure and return what it threw. */
async function failure(stream: AsyncIterable<ModelStreamEvent>, seen: ModelStreamEvent[] = []): Promise<unknown> {
  try {
    for await (const event of stream) seen.push(event);
  } catch (error) {
    return error;
  }
  throw new Error('the stream did not fail');
}

async function modelError(stream: AsyncIterable<ModelStreamEvent>): Promise<ModelError> {
  const error = await failure(stream);
  expect(error).toBeInstanceOf(ModelError);
  return error as ModelError;
}

function items(events: readonly ModelStreamEvent[]): ResponseItem[] {
  return events.flatMap((event) => (event.type === 'output_item_done' ? [event.item] : []));
}

function textOf(events: readonly ModelStreamEvent[], type: 'output_text_delta' | 'reasoning_delta'): string {
  return events.flatMap((event) => (event.type === type ? [event.delta] : [])).join('');
}

describe.each(WIRE_APIS)('%s wire API', (wireApi) => {
  it('streams text in deltas and reports usage', async () => {
    server.enqueue({
      kind: 'response',
      items: [{ type: 'message', text: 'Hello from the fake model!' }],
      usage: { input_tokens: 120, cached_input_tokens: 100, output_tokens: 7, reasoning_output_tokens: 2 },
    });
    const events = await collect(client(wireApi).stream(prompt(), new AbortController().signal));

    expect(events[0]).toEqual({ type: 'created' });
    expect(events.filter((event) => event.type === 'output_text_delta').length).toBeGreaterThan(1);
    expect(textOf(events, 'output_text_delta')).toBe('Hello from the fake model!');
    expect(items(events)).toMatchObject([{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hello from the fake model!' }] }]);
    const completed = events.at(-1);
    expect(completed).toMatchObject({
      type: 'completed',
      usage: { input_tokens: 120, cached_input_tokens: 100, output_tokens: 7, reasoning_output_tokens: 2, total_tokens: 127 },
    });
    expect(completed?.type === 'completed' && completed.response_id !== '').toBe(true);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.endpoint).toBe(wireApi);
    expect(server.requests[0]?.body['stream']).toBe(true);
    expect(server.requests[0]?.headers['authorization']).toBe('Bearer test-key');
  });

  it('returns several tool calls from one response with their arguments', async () => {
    server.enqueue({
      kind: 'response',
      items: [
        { type: 'reasoning', text: 'I should look at the files first.' },
        { type: 'function_call', name: 'shell', arguments: { command: ['ls', '-la'] }, call_id: 'call_one' },
        { type: 'function_call', name: 'read_file', arguments: '{"file_path":"/tmp/x.txt"}', call_id: 'call_two' },
      ],
    });
    const tools = [{ type: 'function' as const, name: 'shell', description: 'Run a command', parameters: { type: 'object', properties: {} } }];
    const events = await collect(client(wireApi).stream(prompt({ tools }), new AbortController().signal));

    const calls = items(events).filter((item) => item.type === 'function_call');
    expect(calls).toMatchObject([
      { type: 'function_call', call_id: 'call_one', name: 'shell' },
      { type: 'function_call', call_id: 'call_two', name: 'read_file', arguments: '{"file_path":"/tmp/x.txt"}' },
    ]);
    expect(JSON.parse(calls[0]?.type === 'function_call' ? calls[0].arguments : '')).toEqual({ command: ['ls', '-la'] });
    expect(textOf(events, 'reasoning_delta')).toBe('I should look at the files first.');
    expect(events.at(-1)?.type).toBe('completed');
    expect(events.at(-1)).toMatchObject({ usage: { reasoning_output_tokens: expect.any(Number) } });
  });

  it('yields the rate limits the provider reported in headers', async () => {
    await server.close();
    server = await startFakeModelServer({
      rateLimitHeaders: RATE_LIMIT_HEADERS,
    });
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const events = await collect(client(wireApi).stream(prompt(), new AbortController().signal));
    expect(events.find((event) => event.type === 'rate_limits')).toEqual({
      type: 'rate_limits',
      snapshot: RATE_LIMIT_SNAPSHOT,
    });
  });

  it('yields no rate_limits event when the provider sends no such headers', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const events = await collect(client(wireApi).stream(prompt(), new AbortController().signal));
    expect(events.some((event) => event.type === 'rate_limits')).toBe(false);
  });

  it('classifies HTTP errors', async () => {
    server.enqueue(
      { kind: 'http_error', status: 500, body: { error: { type: 'server_error', message: 'The server had an error' } } },
      {
        kind: 'http_error',
        status: 429,
        body: { error: { code: 'insufficient_quota', type: 'insufficient_quota', message: 'You exceeded your current quota' } },
      },
      {
        kind: 'http_error',
        status: 400,
        body: { error: { code: 'context_length_exceeded', type: 'invalid_request_error', message: 'Your input exceeds the context window of this model.' } },
      },
      { kind: 'http_error', status: 429, body: { error: { code: 'rate_limit_exceeded', message: 'Rate limit reached' } }, headers: { 'retry-after': '2' } },
      { kind: 'http_error', status: 429, body: { error: { message: 'slow down' } }, headers: { 'retry-after-ms': '1500' } },
      { kind: 'http_error', status: 401, body: { error: { code: 'invalid_api_key', message: 'Incorrect API key provided' } } },
      { kind: 'http_error', status: 403, body: { error: { message: 'Project does not have access' } } },
      { kind: 'http_error', status: 422, body: { error: { message: 'Unknown parameter' } } },
      { kind: 'http_error', status: 413, body: { error: { message: "This model's maximum context length is 128000 tokens" } } },
      { kind: 'http_error', status: 503, body: 'upstream unavailable' },
    );
    const model = client(wireApi);
    const next = (): Promise<ModelError> => modelError(model.stream(prompt(), new AbortController().signal));

    const serverError = await next();
    expect(serverError).toMatchObject({ code: 'server_error', retryable: true, retryAfterMs: null });
    expect(serverError.message).toContain('500');
    expect(serverError.message).toContain('The server had an error');

    const quota = await next();
    expect(quota).toMatchObject({ code: 'quota_exceeded', retryable: false });
    expect(quota.message).toContain('You exceeded your current quota');

    expect(await next()).toMatchObject({ code: 'context_window_exceeded', retryable: false });
    expect(await next()).toMatchObject({ code: 'server_error', retryable: true, retryAfterMs: 2000 });
    expect(await next()).toMatchObject({ code: 'server_error', retryable: true, retryAfterMs: 1500 });
    const unauthorized = await next();
    expect(unauthorized).toMatchObject({ code: 'unauthorized', retryable: false });
    expect(unauthorized.message).toContain('Incorrect API key provided');
    expect(await next()).toMatchObject({ code: 'unauthorized', retryable: false });
    expect(await next()).toMatchObject({ code: 'bad_request', retryable: false });
    expect(await next()).toMatchObject({ code: 'context_window_exceeded', retryable: false });
    const unavailable = await next();
    expect(unavailable).toMatchObject({ code: 'server_error', retryable: true });
    expect(unavailable.message).toBe('Model request failed with HTTP 503: upstream unavailable');
    expect(server.requests).toHaveLength(10);
  });

  it('fails retryably when the stream is cut before completion, after yielding what arrived', async () => {
    server.enqueue({ kind: 'cut', items: [{ type: 'message', text: 'partial answer' }] });
    const seen: ModelStreamEvent[] = [];
    const error = await failure(client(wireApi).stream(prompt(), new AbortController().signal), seen);
    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({ code: 'stream_failed', retryable: true });
    expect(textOf(seen, 'output_text_delta')).toBe('partial answer');
    expect(seen.some((event) => event.type === 'completed')).toBe(false);
  });

  it('fails retryably when the stream goes idle', async () => {
    server.enqueue({ kind: 'hang' });
    const seen: ModelStreamEvent[] = [];
    const error = await failure(client(wireApi, 200).stream(prompt(), new AbortController().signal), seen);
    expect(error).toBeInstanceOf(ModelError);
    expect(error).toMatchObject({ code: 'stream_failed', retryable: true });
    expect((error as ModelError).message).toContain('idle');
    expect(seen).toContainEqual({ type: 'created' });
    await waitFor(() => server.requests[0]?.endedAt !== null);
    expect(server.requests[0]?.disconnected).toBe(true);
  });

  it('fails retryably when the response headers take longer than the idle timeout', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'too late' }], delayMs: 5_000 });
    const error = await modelError(client(wireApi, 200).stream(prompt(), new AbortController().signal));
    expect(error).toMatchObject({ code: 'stream_failed', retryable: true });
    await waitFor(() => server.requests[0]?.endedAt !== null);
    expect(server.requests[0]?.disconnected).toBe(true);
  });

  it('releases the connection when the consumer stops reading', async () => {
    server.enqueue({ kind: 'hang' });
    for await (const event of client(wireApi).stream(prompt(), new AbortController().signal)) {
      expect(event).toEqual({ type: 'created' });
      break;
    }
    await waitFor(() => server.requests[0]?.endedAt !== null);
    expect(server.requests[0]?.disconnected).toBe(true);
  });

  it('stops on abort with the abort reason, and the server sees the disconnect', async () => {
    server.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const seen: ModelStreamEvent[] = [];
    const result = failure(client(wireApi).stream(prompt(), controller.signal), seen);
    await waitFor(() => seen.length > 0);
    const reason = new Error('user interrupt');
    controller.abort(reason);
    expect(await result).toBe(reason);
    await waitFor(() => server.requests[0]?.endedAt !== null);
    expect(server.requests[0]?.disconnected).toBe(true);
  });

  it('throws the abort reason at once when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await failure(client(wireApi).stream(prompt(), controller.signal));
    expect(error).not.toBeInstanceOf(ModelError);
    expect((error as Error).name).toBe('AbortError');
    expect(server.requests).toHaveLength(0);
  });

  it('fails retryably when the server cannot be reached', async () => {
    const closed = await startFakeModelServer();
    const url = closed.url;
    await closed.close();
    const error = await modelError(client(wireApi, 5_000, url).stream(prompt(), new AbortController().signal));
    expect(error).toMatchObject({ code: 'stream_failed', retryable: true });
    expect(error.message).toMatch(/reach|connect/i);
  });

  it('reports the pairing violation the server answered with 400 as a bad request', async () => {
    const orphan: ResponseItem[] = [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
      { type: 'function_call', call_id: 'call_lonely', name: 'shell', arguments: '{}' },
    ];
    const error = await modelError(client(wireApi).stream(prompt({ input: orphan }), new AbortController().signal));
    expect(error).toMatchObject({ code: 'bad_request', retryable: false });
    expect(error.message).toContain('call_lonely');
    expect(server.violations.join('\n')).toContain('call_lonely');
  });
});

describe('responses wire API', () => {
  it('sends instructions, stripped input, tools and options', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] }, { kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const input: ResponseItem[] = [
      { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'be careful' }] },
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'look' },
          { type: 'input_image', image_url: 'data:image/png;base64,AAAA' },
        ],
      },
      { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'thinking' }], encrypted_content: 'opaque' },
      { type: 'reasoning', id: 'rs_2', summary: [], encrypted_content: null },
      { type: 'message', id: 'msg_1', role: 'assistant', content: [{ type: 'output_text', text: 'Running ls.' }] },
      { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' },
      { type: 'function_call_output', call_id: 'call_a', output: 'README.md' },
    ];
    const tools = [
      { type: 'function' as const, name: 'shell', description: 'Run a command', parameters: { type: 'object', properties: { command: { type: 'array' } } } },
    ];
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    await collect(
      client('responses').stream(prompt({ input, tools, parallel_tool_calls: false, effort: 'high', output_schema: schema }), new AbortController().signal),
    );

    const body = server.requests[0]?.body ?? {};
    expect(body).toMatchObject({
      model: 'gpt-5-codex',
      instructions: 'You are a test agent.',
      store: false,
      stream: true,
      parallel_tool_calls: false,
      reasoning: { effort: 'high' },
      include: ['reasoning.encrypted_content'],
      tools: [{ type: 'function', name: 'shell', description: 'Run a command', parameters: tools[0]?.parameters }],
      text: { format: { type: 'json_schema', schema } },
    });
    expect(body['input']).toEqual([
      { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'be careful' }] },
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'look' },
          { type: 'input_image', image_url: 'data:image/png;base64,AAAA', detail: 'auto' },
        ],
      },
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'thinking' }], encrypted_content: 'opaque' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Running ls.' }] },
      { type: 'function_call', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' },
      { type: 'function_call_output', call_id: 'call_a', output: 'README.md' },
    ]);

    await collect(client('responses').stream(prompt(), new AbortController().signal));
    const plain = server.requests[1]?.body ?? {};
    expect(plain).not.toHaveProperty('reasoning');
    expect(plain).not.toHaveProperty('include');
    expect(plain).not.toHaveProperty('text');
  });

  it('sends a history the same way whether it grew, was rolled back or was rewritten since the last request', async () => {
    for (let i = 0; i < 5; i++) server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const freeze = (item: ResponseItem) => Object.freeze(item);
    const user = freeze({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'quote "this" \u2028 and \\ that' }] });
    const hidden = freeze({ type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: null });
    const call = freeze({ type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' });
    const output = freeze({ type: 'function_call_output', call_id: 'call_a', output: 'a\nb' });
    const answer = freeze({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Listed.' }] });
    const summary = freeze({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'summary' }] });
    const tools = Object.freeze([{ type: 'function' as const, name: 'shell', description: 'Run a command', parameters: { type: 'object' } }]);
    const histories = [
      [hidden, user],
      [hidden, user, call, output],
      [hidden, user, call, output, answer],
      [hidden, user],
      [hidden, summary, answer],
    ];
    const model = client('responses');
    for (const input of histories) await collect(model.stream(prompt({ input, tools }), new AbortController().signal));

    const wire = (item: ResponseItem) => {
      const { id: _id, ...rest } = item as ResponseItem & { id?: string };
      return rest;
    };
    expect(server.requests.map((request) => request.body['input'])).toEqual(histories.map((input) => input.filter((item) => item !== hidden).map(wire)));
    for (const request of server.requests) {
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.body['tools']).toEqual([{ type: 'function', name: 'shell', description: 'Run a command', parameters: { type: 'object' }, strict: false }]);
    }
  });

  it('returns reasoning items with their encrypted content when reasoning is on', async () => {
    server.enqueue({
      kind: 'response',
      items: [
        { type: 'reasoning', text: 'hmm' },
        { type: 'message', text: 'done' },
      ],
    });
    const events = await collect(client('responses').stream(prompt({ effort: 'low' }), new AbortController().signal));
    const [reasoning] = items(events);
    expect(reasoning).toMatchObject({ type: 'reasoning', summary: [{ type: 'summary_text', text: 'hmm' }], encrypted_content: expect.any(String) });
  });

  describe('in-stream failures', () => {
    let raw: Server;
    let rawUrl: string;
    let sse = '';
    beforeEach(async () => {
      raw = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(sse);
      });
      await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
      rawUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/v1`;
    });
    afterEach(async () => {
      raw.closeAllConnections();
      await new Promise((resolve) => raw.close(resolve));
    });
    const event = (payload: Record<string, unknown>): string => `event: ${String(payload['type'])}\ndata: ${JSON.stringify(payload)}\n\n`;
    const created = event({ type: 'response.created', sequence_number: 0, response: { id: 'resp_1', output: [] } });

    it('maps response.failed to a classified ModelError', async () => {
      sse =
        created +
        event({
          type: 'response.failed',
          sequence_number: 1,
          response: { id: 'resp_1', error: { code: 'context_length_exceeded', message: 'Your input exceeds the context window of this model.' } },
        });
      expect(await modelError(client('responses', 5_000, rawUrl).stream(prompt(), new AbortController().signal))).toMatchObject({
        code: 'context_window_exceeded',
        retryable: false,
      });
      sse =
        created +
        event({
          type: 'response.failed',
          sequence_number: 1,
          response: { id: 'resp_1', error: { code: 'rate_limit_exceeded', message: 'Rate limit reached. Please try again in 1.5s.' } },
        });
      expect(await modelError(client('responses', 5_000, rawUrl).stream(prompt(), new AbortController().signal))).toMatchObject({
        code: 'server_error',
        retryable: true,
        retryAfterMs: 1500,
      });
    });

    it('maps an error event to a classified ModelError', async () => {
      sse = created + event({ type: 'error', sequence_number: 1, code: 'insufficient_quota', message: 'You exceeded your current quota', param: null });
      expect(await modelError(client('responses', 5_000, rawUrl).stream(prompt(), new AbortController().signal))).toMatchObject({
        code: 'quota_exceeded',
        retryable: false,
      });
      sse = created + event({ type: 'error', sequence_number: 1, code: 'server_error', message: 'oops', param: null });
      expect(await modelError(client('responses', 5_000, rawUrl).stream(prompt(), new AbortController().signal))).toMatchObject({
        code: 'server_error',
        retryable: true,
      });
    });
  });
});

describe('chat wire API', () => {
  it('converts history, tools and options to chat messages', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const input: ResponseItem[] = [
      { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'be careful' }] },
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'what is this?' },
          { type: 'input_image', image_url: 'data:image/png;base64,AAAA' },
        ],
      },
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'dropped' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Let me check.' }] },
      { type: 'function_call', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' },
      { type: 'function_call', call_id: 'call_b', name: 'shell', arguments: '{"command":["pwd"]}' },
      { type: 'function_call_output', call_id: 'call_a', output: 'README.md' },
      { type: 'function_call_output', call_id: 'call_b', output: '/work' },
      { type: 'function_call', call_id: 'call_c', name: 'read_file', arguments: '{}' },
      { type: 'function_call_output', call_id: 'call_c', output: 'contents' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'thanks' }] },
    ];
    const tools = [{ type: 'function' as const, name: 'shell', description: 'Run a command', parameters: { type: 'object' } }];
    const schema = { type: 'object', properties: {}, additionalProperties: false };
    await collect(client('chat').stream(prompt({ input, tools, effort: 'medium', output_schema: schema }), new AbortController().signal));

    const body = server.requests[0]?.body ?? {};
    expect(body['messages']).toEqual([
      { role: 'system', content: 'You are a test agent.' },
      { role: 'system', content: 'be careful' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'what is this?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
        ],
      },
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'shell', arguments: '{"command":["ls"]}' } },
          { id: 'call_b', type: 'function', function: { name: 'shell', arguments: '{"command":["pwd"]}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: 'README.md' },
      { role: 'tool', tool_call_id: 'call_b', content: '/work' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_c', type: 'function', function: { name: 'read_file', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_c', content: 'contents' },
      { role: 'user', content: 'thanks' },
    ]);
    expect(body).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
      tools: [{ type: 'function', function: { name: 'shell', description: 'Run a command', parameters: { type: 'object' } } }],
      parallel_tool_calls: true,
      reasoning_effort: 'medium',
      response_format: { type: 'json_schema', json_schema: { schema } },
    });
  });

  it('sends frozen history items the same way as they accumulate over requests', async () => {
    for (let i = 0; i < 3; i++) server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const freeze = (item: ResponseItem) => Object.freeze(item);
    const user = freeze({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'list "it"' }] });
    const said = freeze({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Listing.' }] });
    const callA = freeze({ type: 'function_call', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' });
    const callB = freeze({ type: 'function_call', call_id: 'call_b', name: 'shell', arguments: '{"command":["pwd"]}' });
    const outA = freeze({ type: 'function_call_output', call_id: 'call_a', output: 'README.md' });
    const outB = freeze({ type: 'function_call_output', call_id: 'call_b', output: '/work' });
    const thought = freeze({ type: 'reasoning', summary: [{ type: 'summary_text', text: 'dropped' }] });
    const callC = freeze({ type: 'function_call', call_id: 'call_c', name: 'shell', arguments: '{}' });
    const outC = freeze({ type: 'function_call_output', call_id: 'call_c', output: 'done' });
    const tools = Object.freeze([{ type: 'function' as const, name: 'shell', description: 'Run a command', parameters: { type: 'object' } }]);
    const model = client('chat');
    const first = [user];
    const second = [...first, said, callA, callB, outA, outB];
    const third = [...second, thought, callC, outC, said];
    for (const input of [first, second, third]) await collect(model.stream(prompt({ input, tools }), new AbortController().signal));

    const system = { role: 'system', content: 'You are a test agent.' };
    const userMessage = { role: 'user', content: 'list "it"' };
    const call = (id: string, command: string) => ({ id, type: 'function', function: { name: 'shell', arguments: command } });
    const round = [
      { role: 'assistant', content: 'Listing.', tool_calls: [call('call_a', '{"command":["ls"]}'), call('call_b', '{"command":["pwd"]}')] },
      { role: 'tool', tool_call_id: 'call_a', content: 'README.md' },
      { role: 'tool', tool_call_id: 'call_b', content: '/work' },
    ];
    expect(server.requests.map((request) => request.body['messages'])).toEqual([
      [system, userMessage],
      [system, userMessage, ...round],
      [
        system,
        userMessage,
        ...round,
        { role: 'assistant', content: null, tool_calls: [call('call_c', '{}')] },
        { role: 'tool', tool_call_id: 'call_c', content: 'done' },
        { role: 'assistant', content: 'Listing.' },
      ],
    ]);
    for (const request of server.requests) {
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.body).toMatchObject({ stream: true, tool_choice: 'auto', tools: [{ type: 'function', function: { name: 'shell' } }] });
    }
  });

  it('leaves tool options out of a request without tools', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    await collect(client('chat').stream(prompt(), new AbortController().signal));
    const body = server.requests[0]?.body ?? {};
    expect(body).not.toHaveProperty('tools');
    expect(body).not.toHaveProperty('parallel_tool_calls');
    expect(body).not.toHaveProperty('reasoning_effort');
  });
});

describe('context windows and backoff', () => {
  it('knows current OpenAI model families and defers to an override', () => {
    expect(knownContextWindow('gpt-5')).toBe(272_000);
    expect(knownContextWindow('gpt-5.1-codex-max')).toBe(272_000);
    expect(knownContextWindow('gpt-4.1-mini')).toBe(1_047_576);
    expect(knownContextWindow('gpt-4o-mini')).toBe(128_000);
    expect(knownContextWindow('o3')).toBe(200_000);
    expect(knownContextWindow('o4-mini')).toBe(200_000);
    expect(knownContextWindow('openai/gpt-4.1')).toBe(1_047_576);
    expect(knownContextWindow('llama3.1:8b')).toBeNull();
    expect(createModelClient({ wireApi: 'responses', apiKey: 'k' }).contextWindow('gpt-5')).toBe(272_000);
    expect(createModelClient({ wireApi: 'chat', apiKey: 'k', contextWindow: 32_768 }).contextWindow('gpt-5')).toBe(32_768);
    expect(createModelClient({ wireApi: 'chat', apiKey: 'k', contextWindow: null }).contextWindow('gpt-5')).toBeNull();
  });

  it('grows exponentially with jitter, is capped, and honours retry-after', () => {
    expect(MAX_STREAM_RETRIES).toBe(5);
    for (let i = 0; i < 50; i++) {
      const first = retryDelayMs(1, null, 200);
      expect(first).toBeGreaterThanOrEqual(160);
      expect(first).toBeLessThanOrEqual(240);
      const third = retryDelayMs(3, null, 200);
      expect(third).toBeGreaterThanOrEqual(640);
      expect(third).toBeLessThanOrEqual(960);
      expect(retryDelayMs(40, null, 200)).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
      expect(retryDelayMs(1, 5_000, 200)).toBeGreaterThanOrEqual(5_000);
    }
  });
});
