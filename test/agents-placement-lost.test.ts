/**
 * A sub-agent's placement that goes unanswered: its host may have died before it could answer,
 * with the child placed (it runs on, or is adopted elsewhere) or not. The supervisor is driven
 * on an in-process bus whose only placer takes placements and never answers them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentSupervisor } from '../actors/agents/supervisor.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { createInProcessBus, type InProcessBus } from '../lib/bus/in-process.js';
import { subjects } from '../lib/bus/subjects.js';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import type { EventMsg } from '../protocol/index.js';
import { TestResources } from './support/tool-context.js';

const names = subjects();
const ROOT = 'root-1';

let bus: InProcessBus;
let emitted: EventMsg[];
let placed: string[];

beforeEach(() => {
  bus = createInProcessBus();
  emitted = [];
  placed = [];
});
afterEach(async () => {
  await bus.close();
});

function supervisor(): AgentSupervisor {
  return new AgentSupervisor({
    bus,
    namespace: names.namespace,
    sessionId: ROOT,
    rootId: ROOT,
    depth: 0,
    maxDepth: 2,
    maxThreads: 1,
    emit: (_id, msg) => emitted.push(msg),
    history: () => [],
    approvals: () => [],
    isIdle: () => false,
    notify: () => undefined,
    requestTimeoutMs: 200,
  });
}

function context(callId: string): ToolContext {
  const settings = settingsFromConfig({ cwd: '/tmp', approval_policy: 'never' }, { model: 'm', cwd: '/tmp', base_instructions: '' });
  return {
    sessionId: ROOT,
    callId,
    turn: buildTurnContext(settings, 't1', {}),
    signal: new AbortController().signal,
    resources: new TestResources(),
    emit: () => undefined,
  };
}

/** A host that takes every placement and dies before it answers; `runs`: the child had started its task by then. */
function placerThatNeverAnswers(runs: boolean): void {
  bus.subscribe(names.place(), async (message) => {
    if (message.kind !== 'place') return;
    placed.push(message.session_id);
    if (!runs) return;
    const turnId = message.first_turn!.id;
    await bus.publish(names.event(ROOT, message.session_id), {
      kind: 'event',
      event: { id: turnId, session_id: message.session_id, seq: 1, msg: { type: 'task_started', turn_id: turnId, model_context_window: null } },
    });
  });
}

describe('a placement nobody answers', () => {
  it('keeps a child whose events show it runs: the spawn succeeds, and the parent hears it spawned and running', async () => {
    placerThatNeverAnswers(true);
    const agents = supervisor();
    const report = await agents.spawn({ message: 'do the item', forkContext: false }, context('call-1'));
    expect(report).toMatchObject({ agent_id: placed[0], status: 'running' });
    expect(emitted.map((m) => (m.type === 'agent_status' ? `${m.type}:${m.status}` : m.type))).toEqual([
      'agent_spawned',
      'agent_status:pending_init',
      'agent_status:running',
    ]);
    // It is the parent's child like any other: its slot stays taken, and it can be waited for.
    await expect(agents.spawn({ message: 'another', forkContext: false }, context('call-2'))).rejects.toThrow(/agent_max_threads is 1/);
    const finished = agents.wait([placed[0]!], { returnWhen: 'all', timeoutMs: 60_000, signal: new AbortController().signal });
    await bus.publish(names.event(ROOT, placed[0]!), {
      kind: 'event',
      event: { id: 'call-1-task', session_id: placed[0]!, seq: 2, msg: { type: 'task_complete', turn_id: 'call-1-task', last_agent_message: 'done' } },
    });
    expect(await finished).toMatchObject({ timed_out: false, agents: [{ agent_id: placed[0], status: 'completed', message: 'done' }] });
  });

  it('fails the spawn of a child that never showed a sign of life, and gives its slot back', async () => {
    placerThatNeverAnswers(false);
    const agents = supervisor();
    await expect(agents.spawn({ message: 'do the item', forkContext: false }, context('call-1'))).rejects.toThrow(/cannot spawn: .*timed out/);
    expect(emitted).toEqual([]);
    // The slot came back: the next spawn is refused for the same reason, not for the limit.
    await expect(agents.spawn({ message: 'again', forkContext: false }, context('call-2'))).rejects.toThrow(/cannot spawn: .*timed out/);
    expect(placed).toHaveLength(2);
  });
});
