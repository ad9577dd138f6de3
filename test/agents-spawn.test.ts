import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../index.js';
import type { BusMessage, Event } from '../protocol/index.js';
import { subjects } from '../lib/bus/subjects.js';
import { mentions, startFakeModelServer, type FakeModelServer } from '../testing/index.js';

let model: FakeModelServer;
let home: string;
let runtime: Runtime;
let events: Event[];
/** Every op sent to any session of the runtime, as the bus carried it. */
let ops: Extract<BusMessage, { kind: 'op' }>['submission'][];
/** Every placement, as the bus carried it. */
let placements: Extract<BusMessage, { kind: 'place' }>[];

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-spawn-'));
  runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home });
  events = [];
  ops = [];
  placements = [];
  runtime.onEvent((e) => events.push(e));
  const names = subjects();
  // Every session's op subject (the wildcard in place of the session id).
  runtime.bus.subscribe(names.op('x').replace(/x$/, '*'), (message) => {
    if (message.kind === 'op') ops.push(message.submission);
  });
  runtime.bus.subscribe(names.place(), (message) => {
    if (message.kind === 'place') placements.push(message);
  });
});

afterEach(async () => {
  await runtime.close();
  await model.close();
  await rm(home, { recursive: true, force: true });
});

describe('spawning a sub-agent', () => {
  it('hands the child its task with the placement: no op goes to the child before its turn, and the parent reports it spawned, pending, running, completed', async () => {
    model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'delegate'),
        items: [
          { type: 'function_call', name: 'spawn_agent', call_id: 'sp1', arguments: { message: 'CHILD ONE: count the files' } },
          { type: 'function_call', name: 'spawn_agent', call_id: 'sp2', arguments: { message: 'CHILD TWO: read the README' } },
        ],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD ONE'), items: [{ type: 'message', text: 'three files' }] },
      { kind: 'response', match: (r) => mentions(r, 'CHILD TWO'), items: [{ type: 'message', text: 'it says hello' }] },
      { kind: 'response', match: (r) => mentions(r, 'delegate'), items: [{ type: 'message', text: 'delegated' }] },
    );
    const parent = await runtime.newSession({ approval_policy: 'never' });
    const completed = new Promise<void>((resolve) => {
      let done = 0;
      runtime.onEvent((e) => {
        if (e.session_id === parent.id && e.msg.type === 'agent_status' && e.msg.status === 'completed' && ++done === 2) resolve();
      });
    });
    const result = await parent.run('delegate the work');
    expect(result.finalMessage).toBe('delegated');
    await completed;

    const spawned = events.flatMap((e) => (e.session_id === parent.id && e.msg.type === 'agent_spawned' ? [e.msg] : []));
    expect(spawned.map((s) => s.call_id).sort()).toEqual(['sp1', 'sp2']);
    for (const child of spawned) {
      // The placement carried the task; the child took it as its first turn.
      const placement = placements.find((p) => p.session_id === child.agent_id);
      expect(placement?.first_turn).toEqual({ id: `${child.call_id}-task`, op: { type: 'user_turn', items: [{ type: 'text', text: child.prompt }] } });
      expect(ops.filter((op) => op.session_id === child.agent_id)).toEqual([]);
      const started = events.find((e) => e.session_id === child.agent_id && e.msg.type === 'task_started');
      expect(started?.id).toBe(`${child.call_id}-task`);
      // The child's events came before the placement's reply; the parent still tells them in order.
      const statuses = events.flatMap((e) =>
        e.session_id === parent.id && e.msg.type === 'agent_status' && e.msg.agent_id === child.agent_id ? [e.msg.status] : [],
      );
      expect(statuses).toEqual(['pending_init', 'running', 'completed']);
    }
    const childRequests = model.requests.filter((r) => mentions(r, 'CHILD ') && !mentions(r, 'delegate'));
    expect(childRequests).toHaveLength(2);
    expect(model.requests.filter((r) => mentions(r, 'delegate'))).toHaveLength(2);
  });
});

describe('placing a session whose rollout cannot be made', () => {
  it('refuses a session without a first turn before it says anything', async () => {
    await writeFile(join(home, 'sessions'), 'not a directory');
    await expect(runtime.newSession()).rejects.toThrow(/cannot create the directory for rollout .*sessions/);
    expect(events.map((e) => e.msg.type)).toEqual(['error']);
  });

  it('ends a sub-agent whose rollout cannot be made and fails its spawn; the parent goes on', async () => {
    const parent = await runtime.newSession();
    // The parent's rollout is open; the children's day directory can no longer be made.
    await rm(join(home, 'sessions'), { recursive: true });
    await writeFile(join(home, 'sessions'), 'not a directory');
    model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'delegate'),
        items: [{ type: 'function_call', name: 'spawn_agent', call_id: 'sp1', arguments: { message: 'CHILD ONE: count the files' } }],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD ONE'), items: [{ type: 'message', text: 'child done' }] },
      { kind: 'response', match: (r) => mentions(r, 'delegate'), items: [{ type: 'message', text: 'spawn failed' }] },
    );
    const result = await parent.run('delegate the work');
    expect(result.finalMessage).toBe('spawn failed');
    // The spawn call's output, as the parent's second request carried it.
    expect(JSON.stringify(model.requests.at(-1)?.body.input)).toMatch(/"call_id":"sp1","output":"[^"]*cannot create rollout/);
    expect(events.some((e) => e.session_id === parent.id && e.msg.type === 'agent_spawned')).toBe(false);
  });
});
