import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeModelServer, type FakeModelServer, type RecordedRequest } from '../testing/index.js';
import { waitFor } from './support/wait.js';

let server: FakeModelServer;
beforeEach(async () => {
  server = await startFakeModelServer();
});
afterEach(async () => {
  await server.close();
});

function post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer test' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

interface SseEvent {
  event: string | null;
  data: string;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((line) => line.startsWith('event: '))?.slice('event: '.length) ?? null;
      const data = lines
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice('data: '.length))
        .join('\n');
      return { event, data };
    });
}

function userMessage(text: string): Record<string, unknown> {
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}

describe('Responses streaming', () => {
  it('sends well-formed events ending in response.completed', async () => {
    server.enqueue({
      kind: 'response',
      items: [
        { type: 'reasoning', text: 'thinking hard' },
        { type: 'message', text: 'Hello there, world' },
        { type: 'function_call', name: 'shell', arguments: { command: ['ls'] } },
      ],
    });
    const response = await post('/responses', { model: 'gpt-5', input: [userMessage('hi')], stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const events = parseSse(await response.text());
    const payloads = events.map((event) => JSON.parse(event.data) as Record<string, unknown>);

    // Every event names its type twice, and sequence numbers count up from 0.
    events.forEach((event, index) => expect(payloads[index]?.['type']).toBe(event.event));
    expect(payloads.map((payload) => payload['sequence_number'])).toEqual(payloads.map((_, index) => index));
    const types = payloads.map((payload) => payload['type']);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(types).toContain('response.reasoning_summary_text.delta');
    expect(types).toContain('response.function_call_arguments.delta');

    const text = payloads.filter((payload) => payload['type'] === 'response.output_text.delta').map((payload) => payload['delta']);
    expect(text.length).toBeGreaterThan(1);
    expect(text.join('')).toBe('Hello there, world');

    const done = payloads.filter((payload) => payload['type'] === 'response.output_item.done').map((payload) => payload['item']);
    expect(done).toMatchObject([
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'thinking hard' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hello there, world' }] },
      { type: 'function_call', name: 'shell', arguments: '{"command":["ls"]}', call_id: expect.stringMatching(/^call_/) },
    ]);
    const completed = payloads.at(-1)?.['response'] as Record<string, unknown>;
    expect(completed['usage']).toMatchObject({
      input_tokens: expect.any(Number),
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: expect.any(Number),
      output_tokens_details: { reasoning_tokens: expect.any(Number) },
      total_tokens: expect.any(Number),
    });
    expect(completed['output']).toHaveLength(3);
  });

  it('is understood by the openai SDK', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'from the SDK' }], usage: { input_tokens: 10, output_tokens: 3 } });
    const client = new OpenAI({ apiKey: 'test', baseURL: server.url, maxRetries: 0 });
    const stream = await client.responses.create({ model: 'gpt-5', input: 'hi', stream: true });
    let text = '';
    let usage: OpenAI.Responses.ResponseUsage | undefined;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') usage = event.response.usage;
    }
    expect(text).toBe('from the SDK');
    expect(usage).toMatchObject({ input_tokens: 10, output_tokens: 3, total_tokens: 13 });
  });

  it('answers a non-streaming request with the whole response', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'all at once' }] });
    const response = await post('/responses', { model: 'gpt-5', input: 'hi' });
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ object: 'response', status: 'completed', output: [{ type: 'message', content: [{ text: 'all at once' }] }] });
  });
});

describe('Chat Completions streaming', () => {
  it('streams chunks, tool calls by index, usage when asked, then [DONE]', async () => {
    server.enqueue({
      kind: 'response',
      items: [
        { type: 'message', text: 'Calling tools now' },
        { type: 'function_call', name: 'shell', arguments: { command: ['ls'] }, call_id: 'call_1' },
        { type: 'function_call', name: 'read_file', arguments: '{"file_path":"/a"}', call_id: 'call_2' },
      ],
    });
    const response = await post('/chat/completions', {
      model: 'gpt-4.1',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = parseSse(await response.text());
    expect(events.every((event) => event.event === null)).toBe(true);
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event.data) as { choices: Array<Record<string, any>>; usage?: unknown });
    expect(chunks.every((chunk) => (chunk as Record<string, unknown>)['object'] === 'chat.completion.chunk')).toBe(true);

    const text = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice['delta']?.content ?? '')).join('');
    expect(text).toBe('Calling tools now');
    const fragments = chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice['delta']?.tool_calls ?? []));
    const byIndex = new Map<number, { id?: string; name?: string; args: string }>();
    for (const fragment of fragments) {
      const call = byIndex.get(fragment.index) ?? { args: '' };
      call.id ??= fragment.id;
      call.name ??= fragment.function?.name;
      call.args += fragment.function?.arguments ?? '';
      byIndex.set(fragment.index, call);
    }
    expect([...byIndex.values()]).toEqual([
      { id: 'call_1', name: 'shell', args: '{"command":["ls"]}' },
      { id: 'call_2', name: 'read_file', args: '{"file_path":"/a"}' },
    ]);
    const finish = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice['finish_reason'])).filter((reason) => reason !== null);
    expect(finish).toEqual(['tool_calls']);
    const usageChunk = chunks.at(-1);
    expect(usageChunk?.choices).toEqual([]);
    expect(usageChunk?.usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), total_tokens: expect.any(Number) });
  });

  it('sends no usage chunk unless stream_options.include_usage is set', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'hi' }] });
    const response = await post('/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const chunks = parseSse(await response.text())
      .slice(0, -1)
      .map((event) => JSON.parse(event.data) as Record<string, unknown>);
    expect(chunks.some((chunk) => chunk['usage'] !== undefined)).toBe(false);
  });

  it('ends a cut stream without finish_reason or [DONE]', async () => {
    server.enqueue({ kind: 'cut', items: [{ type: 'message', text: 'partial' }] });
    const response = await post('/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const events = parseSse(await response.text());
    expect(events.some((event) => event.data === '[DONE]')).toBe(false);
    const chunks = events.map((event) => JSON.parse(event.data) as { choices: Array<{ finish_reason: string | null }> });
    expect(chunks.every((chunk) => chunk.choices.every((choice) => choice.finish_reason === null))).toBe(true);
  });
});

describe('script', () => {
  it('answers with a 500 naming the exhausted script, and records the request', async () => {
    const response = await post('/responses', { model: 'gpt-5', input: 'hi', stream: true });
    expect(response.status).toBe(500);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/script is exhausted/);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ endpoint: 'responses', status: 500, disconnected: false });
  });

  it('routes concurrent requests to the steps whose match accepts them', async () => {
    const asks = (word: string) => (request: RecordedRequest) => JSON.stringify(request.body['input']).includes(word);
    server.enqueue(
      { kind: 'response', match: asks('alpha'), items: [{ type: 'message', text: 'for alpha' }], delayMs: 100 },
      { kind: 'response', match: asks('beta'), items: [{ type: 'message', text: 'for beta' }], delayMs: 100 },
    );
    const ask = async (word: string): Promise<string> => {
      const response = await post('/responses', { model: 'gpt-5', input: [userMessage(word)], stream: true });
      const done = parseSse(await response.text())
        .map((event) => JSON.parse(event.data) as Record<string, any>)
        .find((payload) => payload['type'] === 'response.completed');
      return done?.['response']?.output?.[0]?.content?.[0]?.text as string;
    };
    // beta is asked first, but its step is second in the script.
    const [beta, alpha] = await Promise.all([ask('beta'), ask('alpha')]);
    expect(beta).toBe('for beta');
    expect(alpha).toBe('for alpha');
    const [first, second] = server.requests;
    expect(first?.endedAt).not.toBeNull();
    expect(second?.endedAt).not.toBeNull();
    // Both were in flight at once: each started before the other ended.
    expect(first!.startedAt).toBeLessThan(second!.endedAt!);
    expect(second!.startedAt).toBeLessThan(first!.endedAt!);
  });

  it('lets a reply step compute its answer from the request', async () => {
    server.enqueue({
      kind: 'reply',
      handler: (request) => ({ kind: 'response', items: [{ type: 'message', text: `model was ${String(request.body['model'])}` }] }),
    });
    const response = await post('/responses', { model: 'gpt-4.1', input: 'hi' });
    expect(await response.json()).toMatchObject({ output: [{ content: [{ text: 'model was gpt-4.1' }] }] });
  });

  it('sends http_error bodies and headers as given', async () => {
    server.enqueue({ kind: 'http_error', status: 429, body: { error: { message: 'slow down' } }, headers: { 'retry-after': '3' } });
    const response = await post('/chat/completions', { model: 'm', messages: [], stream: true });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('3');
    expect(await response.json()).toEqual({ error: { message: 'slow down' } });
  });

  it('sends configured rate-limit headers and per-step headers', async () => {
    await server.close();
    server = await startFakeModelServer({
      rateLimitHeaders: { 'x-ratelimit-remaining-requests': '9' },
      steps: [{ kind: 'response', items: [], headers: { 'x-custom': 'yes' } }],
    });
    const response = await post('/responses', { model: 'gpt-5', input: 'hi', stream: true });
    await response.text();
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('9');
    expect(response.headers.get('x-custom')).toBe('yes');
  });

  it('ends a delay early when the client disconnects', async () => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'late' }], delayMs: 60_000 });
    const controller = new AbortController();
    const pending = post('/responses', { model: 'gpt-5', input: 'hi', stream: true }, controller.signal);
    await waitFor(() => server.requests.length === 1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(() => server.requests[0]?.endedAt !== null);
    expect(server.requests[0]).toMatchObject({ disconnected: true, status: null });
  });

  it('ends hanging streams when it closes', async () => {
    server.enqueue({ kind: 'hang' });
    const response = await post('/responses', { model: 'gpt-5', input: 'hi', stream: true });
    expect(response.status).toBe(200);
    const reading = response.text().then(
      (text) => text,
      () => 'connection dropped',
    );
    await server.close();
    const received = await reading;
    expect(received === 'connection dropped' || !received.includes('response.completed')).toBe(true);
    expect(server.requests[0]?.endedAt).not.toBeNull();
    expect(server.requests[0]?.disconnected).toBe(false);
  });

  it('answers 404 on unknown routes', async () => {
    const response = await post('/embeddings', { input: 'x' });
    expect(response.status).toBe(404);
    expect(server.requests).toHaveLength(0);
  });
});

describe('tool call pairing', () => {
  const call = (id: string) => ({ type: 'function_call', call_id: id, name: 'shell', arguments: '{}' });
  const output = (id: string) => ({ type: 'function_call_output', call_id: id, output: 'ok' });

  it('accepts a history where every call has exactly one output', async () => {
    server.enqueue({ kind: 'response', items: [] });
    const response = await post('/responses', { model: 'gpt-5', input: [userMessage('hi'), call('a'), call('b'), output('b'), output('a')], stream: true });
    expect(response.status).toBe(200);
    await response.text();
    expect(server.violations).toEqual([]);
  });

  it.each([
    ['a call without output', [call('c_missing')], 'c_missing'],
    ['an output without call', [output('c_orphan')], 'c_orphan'],
    ['an output before its call', [output('c_early'), call('c_early')], 'c_early'],
    ['two outputs for one call', [call('c_twice'), output('c_twice'), output('c_twice')], 'c_twice'],
  ])('rejects %s with a 400 naming the call_id, without using a step', async (_name, input, id) => {
    server.enqueue({ kind: 'response', items: [{ type: 'message', text: 'still here' }] });
    const response = await post('/responses', { model: 'gpt-5', input: [userMessage('hi'), ...input], stream: true });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toContain(id);
    expect(server.violations.join('\n')).toContain(id);

    const next = await post('/responses', { model: 'gpt-5', input: [userMessage('hi')] });
    expect(await next.json()).toMatchObject({ output: [{ content: [{ text: 'still here' }] }] });
  });

  it('checks chat messages: tool_calls against tool messages', async () => {
    const assistant = {
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'tc_1', type: 'function', function: { name: 'shell', arguments: '{}' } },
        { id: 'tc_2', type: 'function', function: { name: 'shell', arguments: '{}' } },
      ],
    };
    const tool = (id: string) => ({ role: 'tool', tool_call_id: id, content: 'ok' });
    server.enqueue({ kind: 'response', items: [] });

    const good = await post('/chat/completions', {
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }, assistant, tool('tc_1'), tool('tc_2')],
      stream: true,
    });
    expect(good.status).toBe(200);
    await good.text();

    const missing = await post('/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }, assistant, tool('tc_1')], stream: true });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toContain('tc_2');

    const stray = await post('/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }, tool('tc_9')], stream: true });
    expect(stray.status).toBe(400);
    await stray.text();
    expect(server.violations).toHaveLength(2);
    expect(server.violations[1]).toContain('tc_9');
  });
});
