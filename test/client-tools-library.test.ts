import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, SessionError, type Runtime } from '../index.js';
import type { Event } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { outputFor } from '../testing/requests.js';

/** Client tools from the library: the same config and op as over the app-server. */

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

const WEATHER = { name: 'weather', description: 'The weather in a city.', parameters: { type: 'object' as const, properties: { city: { type: 'string' } } } };

describe('client tools in the library', () => {
  it.each(['responses', 'chat'] as const)('are answered with session.submit over %s', async (wireApi) => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home, wireApi });
    const session = await runtime.newSession({ client_tools: [WEATHER] });
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'weather', call_id: 'w1', arguments: { city: 'Lyon' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Sunny in Lyon.' }] },
    );
    const events = session.events();
    const turnId = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'weather?' }] });
    let end: Event | undefined;
    for (;;) {
      const { value } = await events.next();
      const event = value as Event;
      if (event.msg.type === 'client_tool_call') {
        expect(event.msg).toEqual({ type: 'client_tool_call', call_id: 'w1', turn_id: turnId, name: 'weather', arguments: { city: 'Lyon' } });
        await session.submit({ type: 'client_tool_output', call_id: event.msg.call_id, output: 'sunny, 21 C', success: true });
      }
      if (event.id === turnId && (event.msg.type === 'task_complete' || event.msg.type === 'turn_aborted')) {
        end = event;
        break;
      }
    }
    expect(end.msg).toEqual({ type: 'task_complete', turn_id: turnId, last_agent_message: 'Sunny in Lyon.' });
    expect(model.requests).toHaveLength(2);
    expect(JSON.stringify(model.requests[0]!.body.tools)).toContain('"The weather in a city."');
    if (wireApi === 'responses') expect(outputFor(model.requests[1]!, 'w1')).toBe('sunny, 21 C');
    else expect(model.requests[1]!.body.messages).toContainEqual({ role: 'tool', tool_call_id: 'w1', content: 'sunny, 21 C' });
  });

  it('refuse a session whose client tool takes a built-in name', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home });
    const refused = runtime.newSession({ client_tools: [{ ...WEATHER, name: 'apply_patch' }] });
    await expect(refused).rejects.toBeInstanceOf(SessionError);
    await expect(refused).rejects.toThrow('client_tools: "apply_patch" has the name of the built-in tool apply_patch');
  });
});
