import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../index.js';
import type { ModelClient } from '../lib/model/types.js';
import type { Event } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { inputTexts } from '../testing/requests.js';
import { MAX_WAITING_SUBMISSIONS } from '../actors/gateway/gateway.js';

let model: FakeModelServer;
let home: string;
let runtime: Runtime;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
});

afterEach(async () => {
  await runtime.close();
  await model.close();
  await rm(home, { recursive: true, force: true });
});

async function untilDone(events: AsyncIterator<Event>, turnId: string): Promise<Event[]> {
  const seen: Event[] = [];
  for (;;) {
    const { value, done } = await events.next();
    if (done) return seen;
    seen.push(value);
    if (value.id === turnId && (value.msg.type === 'task_complete' || value.msg.type === 'turn_aborted')) return seen;
  }
}

describe('the library', () => {
  it('runs sessions in this process through createRuntime', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, model: 'lib-model', cwd: home });
    const session = await runtime.newSession();
    expect(session.configured).toMatchObject({ model: 'lib-model', cwd: home, worker_id: 'local', depth: 0 });
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'hi from the library' }] });
    const events = session.events();
    const turnId = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'hello' }] });
    const seen = await untilDone(events, turnId);
    expect(seen[0]!.msg.type).toBe('session_configured');
    expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => i + 1));
    expect(seen.at(-1)!.msg).toEqual({ type: 'task_complete', turn_id: turnId, last_agent_message: 'hi from the library' });
    expect(inputTexts(model.requests[0]!).at(-1)).toBe('hello');
  });

  it('closes with more sessions open than a gateway holds submissions waiting', { timeout: 120_000 }, async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home });
    const count = MAX_WAITING_SUBMISSIONS + 1;
    for (let i = 0; i < count; i++) await runtime.newSession();
    const closedSessions = new Set<string>();
    runtime.onEvent((event) => {
      if (event.msg.type === 'shutdown_complete' && event.session_id) closedSessions.add(event.session_id);
    });
    await runtime.close();
    expect(closedSessions.size).toBe(count);
  });

  it('speaks Chat Completions when asked', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home, wireApi: 'chat' });
    const session = await runtime.newSession();
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['echo', 'chat-tool'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'done over chat' }] },
    );
    const events = session.events();
    const turnId = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'use chat' }] });
    const seen = await untilDone(events, turnId);
    expect(seen.at(-1)!.msg).toMatchObject({ last_agent_message: 'done over chat' });
    expect(model.requests.map((r) => r.endpoint)).toEqual(['chat', 'chat']);
    const messages = model.requests[1]!.body.messages as { role: string; tool_call_id?: string; content?: unknown }[];
    const tool = messages.find((m) => m.role === 'tool');
    expect(tool?.tool_call_id).toBe('c1');
    expect(JSON.stringify(tool?.content)).toContain('chat-tool');
  });

  it('ends a turn that throws with an error and task_complete under its id, and the session goes on', async () => {
    // A model client of the user's own whose context-window lookup throws once: the turn's
    // actor fails in the middle of a step, not in a promise anyone awaits.
    let lookups = 0;
    const flaky: ModelClient = {
      contextWindow: () => {
        if (lookups++ === 0) throw new Error('no window for this model');
        return 1000;
      },
      async *stream() {
        yield { type: 'output_item_done', item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'fine now' }] } };
        yield {
          type: 'completed',
          response_id: 'r',
          usage: { input_tokens: 1, cached_input_tokens: 0, output_tokens: 1, reasoning_output_tokens: 0, total_tokens: 2 },
        };
      },
    };
    runtime = createRuntime({ modelClient: flaky, home, cwd: home });
    const session = await runtime.newSession();
    const events = session.events();
    const failed = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'first' }] });
    const seen = await untilDone(events, failed);
    const ending = seen.filter((e) => e.id === failed).map((e) => e.msg);
    expect(ending.at(-2)).toEqual({ type: 'error', code: 'internal', message: 'the turn failed: Error: no window for this model' });
    expect(ending.at(-1)).toEqual({ type: 'task_complete', turn_id: failed, last_agent_message: null });

    const next = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'second' }] });
    expect((await untilDone(events, next)).at(-1)!.msg).toEqual({ type: 'task_complete', turn_id: next, last_agent_message: 'fine now' });
  });

  it('shuts down a session its host no longer has: the unknown_session answer means done, and close does not wait for it', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home });
    const session = await runtime.newSession();
    const kept = await runtime.newSession();
    const errors: Event[] = [];
    runtime.onEvent((event) => {
      if (event.msg.type === 'error') errors.push(event);
    });
    // Gone from its host without a shutdown_complete, as a session that ended while its events
    // were on their way (or whose worker let it go) is for a gateway on NATS.
    runtime.host!.abandon(session.id);
    await session.shutdown();
    expect(errors.map((e) => [e.session_id, e.msg])).toEqual([[null, { type: 'error', code: 'unknown_session', message: `unknown session ${session.id}` }]]);
    // close shuts the other session down and does not wait for the gone one's shutdown_complete.
    const closed: string[] = [];
    runtime.onEvent((event) => {
      if (event.msg.type === 'shutdown_complete' && event.session_id) closed.push(event.session_id);
    });
    await runtime.close();
    expect(closed).toEqual([kept.id]);
  });

  it('rejects a session whose config is wrong, naming the field', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home });
    await expect(runtime.newSession({ cwd: join(home, 'missing') })).rejects.toThrow(/config\.cwd/);
  });
});
