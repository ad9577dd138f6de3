import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../index.js';
import type { Event } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from './support/index.js';
import { inputTexts } from './support/requests.js';

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

  it('rejects a session whose config is wrong, naming the field', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home });
    await expect(runtime.newSession({ cwd: join(home, 'missing') })).rejects.toThrow(/config\.cwd/);
  });
});
