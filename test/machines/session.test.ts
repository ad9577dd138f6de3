import { createActor, fromCallback, fromPromise, waitFor, type EventObject } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { EventMsg, ResponseItem } from '../../protocol/index.js';
import { sessionMachine, type SessionEvent, type TaskAnnouncement, type TaskInput } from '../../machines/session.js';
import { fromTask, type TaskOutput } from '../../machines/task.js';
import { turnMachine, type TurnEvent, type TurnStep } from '../../machines/turn.js';
import { settingsFromConfig } from '../../machines/turn-context.js';

/**
 * The SessionMachine with in-memory fakes provided (`.provide()`): a real TurnMachine whose
 * sampler the test drives, task actors the test settles, and every emitted event recorded.
 */

interface Emitted {
  readonly id: string | null;
  readonly msg: EventMsg;
}

interface PendingTask {
  readonly input: TaskInput;
  readonly signal: AbortSignal;
  finish(output: TaskOutput): void;
  fail(error: Error): void;
}

const COMPLETED: TaskOutput = { status: 'completed', lastAgentMessage: null, abortReason: null };
const INTERRUPTED: TaskOutput = { status: 'aborted', lastAgentMessage: null, abortReason: 'interrupted' };
const settings = settingsFromConfig(
  { cwd: '/work', model: 'session-model', review_model: 'review-model' },
  { model: 'default-model', cwd: '/work', base_instructions: 'be brief' },
);
const assistant = (text: string): ResponseItem => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });

function harness(options: { turnFails?: boolean; unknownModel?: string } = {}) {
  const emitted: Emitted[] = [];
  const started: { id: string; model: string }[] = [];
  const rollbacks: { submissionId: string; numTurns: number }[] = [];
  const tasks = new Map<string, PendingTask>();
  const samplers = new Map<string, (event: TurnEvent) => void>();
  let closeDone: () => void = () => undefined;
  const noop = () => undefined;
  const turn = turnMachine.provide({
    actors: {
      sample: fromCallback<TurnEvent, TurnStep & { attempt: number }>(({ input, sendBack }) => {
        samplers.set(input.turnId, sendBack);
        return () => samplers.delete(input.turnId);
      }),
    },
    guards: { wantsSnapshot: () => false, wantsCompaction: () => false },
    actions: {
      emitEvent: ({ context }, { msg, id }) => void emitted.push({ id: id ?? context.turnId, msg }),
      beginTurn: () => {
        if (options.turnFails) throw new Error('the history is gone');
      },
      recordItem: noop,
      recordOutputs: noop,
      recordInput: noop,
      recordAborted: noop,
      accountUsage: noop,
      rememberRateLimits: noop,
      reportFailure: noop,
      interruptAgents: noop,
    },
  });
  const machine = sessionMachine.provide({
    actors: {
      turn,
      task: fromTask<TaskInput>(
        ({ input, signal }) =>
          new Promise<TaskOutput>((resolve, reject) => {
            tasks.set(input.request.submissionId, { input, signal, finish: resolve, fail: reject });
            // Like the real tasks: an interrupt stops them, except an undo, which finishes.
            if (input.request.type !== 'UNDO') signal.addEventListener('abort', () => resolve(INTERRUPTED), { once: true });
          }),
      ),
      announce: fromCallback<EventObject, TaskAnnouncement>(({ input }) => {
        if (input.model === options.unknownModel) throw new Error(`no window for ${input.model}`);
        started.push({ id: input.id, model: input.model });
        emitted.push({ id: input.id, msg: { type: 'task_started', turn_id: input.id, model_context_window: null } });
      }),
      close: fromPromise<void, { sessionId: string }>(() => new Promise<void>((resolve) => (closeDone = resolve))),
    },
    actions: {
      emitEvent: (_, { id, msg }) => void emitted.push({ id, msg }),
      rollback: (_, params) => void rollbacks.push(params),
    },
  });
  const actor = createActor(machine, { input: { sessionId: 's', settings } });
  actor.start();
  return {
    actor,
    emitted,
    started,
    rollbacks,
    send: (event: SessionEvent) => actor.send(event),
    state: () => actor.getSnapshot().value,
    task: (id: string) => {
      const task = tasks.get(id);
      if (!task) throw new Error(`no task ${id} is running`);
      return task;
    },
    /** The model answers turn `turnId` with `text` and no tool call: the turn completes. */
    answer: (turnId: string, text: string) => {
      const sendBack = samplers.get(turnId);
      if (!sendBack) throw new Error(`turn ${turnId} is not sampling`);
      sendBack({ type: 'MODEL.ITEM', item: assistant(text) });
      sendBack({ type: 'MODEL.COMPLETED', usage: null });
    },
    closeDone: () => closeDone(),
    /** The task lifecycle events of `id`, in order. */
    lifecycle: (id: string) =>
      emitted
        .filter((e) => e.id === id && (e.msg.type === 'task_started' || e.msg.type === 'task_complete' || e.msg.type === 'turn_aborted'))
        .map((e) => e.msg.type),
    errorsOf: (id: string) => emitted.flatMap((e) => (e.id === id && e.msg.type === 'error' ? [e.msg] : [])),
    idle: () => waitFor(actor, (s) => s.matches('idle')),
  };
}

type Harness = ReturnType<typeof harness>;

/** The op of each event type, sent with submission id `id`. */
function op(type: SessionEvent['type'], id: string): SessionEvent {
  switch (type) {
    case 'TURN_INPUT':
      return { type, submissionId: id, items: [], overrides: {} };
    case 'OVERRIDE':
      return { type, submissionId: id, overrides: { model: 'other-model' } };
    case 'APPROVAL':
      return { type, submissionId: id, callId: 'c1', decision: 'approved' };
    case 'CLIENT_TOOL_OUTPUT':
      return { type, submissionId: id, callId: 'c1', output: { text: 'done', success: true } };
    case 'REVIEW':
      return { type, submissionId: id, target: { type: 'uncommitted_changes' } };
    case 'ROLLBACK':
      return { type, submissionId: id, numTurns: 1 };
    case 'USER_SHELL':
      return { type, submissionId: id, command: 'ls' };
    case 'INTERRUPT':
    case 'COMPACT':
    case 'UNDO':
    case 'SHUTDOWN':
      return { type, submissionId: id };
  }
}

/** How to bring a fresh session into each state, the task (if any) running under id `task`. */
const INTO: Record<string, (h: Harness) => void> = {
  idle: () => undefined,
  running: (h) => h.send(op('TURN_INPUT', 'task')),
  reviewing: (h) => h.send(op('REVIEW', 'task')),
  compacting: (h) => h.send(op('COMPACT', 'task')),
  undoing: (h) => h.send(op('UNDO', 'task')),
  userShell: (h) => h.send(op('USER_SHELL', 'task')),
  closing: (h) => h.send(op('SHUTDOWN', 'task')),
};

const busy = (name: string) => `${name}: another task is running; interrupt it first`;
const closing = (name: string) => `${name}: the session is shutting down`;
const TASK_STATE_REFUSALS: [SessionEvent['type'], string][] = [
  ['TURN_INPUT', busy('user input')],
  ['REVIEW', busy('review')],
  ['COMPACT', busy('compact')],
  ['UNDO', busy('undo')],
  ['ROLLBACK', busy('thread_rollback')],
  ['USER_SHELL', busy('run_user_shell_command')],
  ['APPROVAL', 'no approval is pending with id c1'],
  ['CLIENT_TOOL_OUTPUT', 'client_tool_output: no client tool call is waiting with call_id c1'],
];

/** For each state, each op it cannot take and the `bad_request` message it answers with. */
const REFUSALS: Record<string, [SessionEvent['type'], string][]> = {
  idle: [
    ['APPROVAL', 'no approval is pending with id c1: no turn is running'],
    ['CLIENT_TOOL_OUTPUT', 'client_tool_output: no client tool call is waiting with call_id c1: no turn is running'],
  ],
  running: [
    ['REVIEW', busy('review')],
    ['COMPACT', busy('compact')],
    ['UNDO', busy('undo')],
    ['ROLLBACK', busy('thread_rollback')],
    ['USER_SHELL', busy('run_user_shell_command')],
    // Passed to the turn, which has no such call waiting.
    ['APPROVAL', 'no approval is pending with id c1'],
    ['CLIENT_TOOL_OUTPUT', 'client_tool_output: no client tool call is waiting with call_id c1'],
  ],
  reviewing: TASK_STATE_REFUSALS,
  compacting: TASK_STATE_REFUSALS,
  undoing: TASK_STATE_REFUSALS,
  userShell: TASK_STATE_REFUSALS,
  closing: [
    ['TURN_INPUT', closing('user input')],
    ['APPROVAL', closing('approval')],
    ['CLIENT_TOOL_OUTPUT', closing('client_tool_output')],
    ['REVIEW', closing('review')],
    ['COMPACT', closing('compact')],
    ['UNDO', closing('undo')],
    ['ROLLBACK', closing('thread_rollback')],
    ['USER_SHELL', closing('run_user_shell_command')],
  ],
};

describe('SessionMachine: every state answers the ops it cannot take', () => {
  for (const [state, refusals] of Object.entries(REFUSALS)) {
    describe(state, () => {
      it.each(refusals)('%s is refused with a bad_request under its own id', (type, message) => {
        const h = harness();
        INTO[state]!(h);
        expect(h.state()).toBe(state);
        const before = h.emitted.length;
        h.send(op(type, 'refused'));
        expect(h.emitted.slice(before)).toEqual([{ id: 'refused', msg: { type: 'error', code: 'bad_request', message } }]);
        expect(h.state()).toBe(state);
      });
    });
  }

  it('idle and closing take an interrupt without a word: nothing runs', () => {
    for (const state of ['idle', 'closing']) {
      const h = harness();
      INTO[state]!(h);
      const before = h.emitted.length;
      h.send(op('INTERRUPT', 'i'));
      expect(h.emitted.slice(before)).toEqual([]);
      expect(h.state()).toBe(state);
    }
  });

  it('a second shutdown while closing is already under way: no answer, one shutdown_complete', async () => {
    const h = harness();
    h.send(op('SHUTDOWN', 'first'));
    h.send(op('SHUTDOWN', 'second'));
    h.closeDone();
    await waitFor(h.actor, (s) => s.status === 'done');
    expect(h.emitted).toEqual([{ id: 'first', msg: { type: 'shutdown_complete' } }]);
  });

  it('takes override_turn_context in every state but closed', () => {
    for (const state of Object.keys(INTO)) {
      const h = harness();
      INTO[state]!(h);
      h.send(op('OVERRIDE', 'o'));
      expect(h.actor.getSnapshot().context.settings.model).toBe('other-model');
      expect(h.errorsOf('o')).toEqual([]);
    }
  });

  it('rolls back in idle only', () => {
    const h = harness();
    h.send(op('ROLLBACK', 'r'));
    expect(h.rollbacks).toEqual([{ submissionId: 'r', numTurns: 1 }]);
    expect(h.state()).toBe('idle');
  });
});

describe('SessionMachine: each task is started once and ended once', () => {
  const kinds: [string, SessionEvent['type'], string][] = [
    ['review', 'REVIEW', 'reviewing'],
    ['compaction', 'COMPACT', 'compacting'],
    ['undo', 'UNDO', 'undoing'],
    ['user shell', 'USER_SHELL', 'userShell'],
  ];

  it('a turn: task_started, then task_complete with the last message', async () => {
    const h = harness();
    h.send(op('TURN_INPUT', 't1'));
    expect(h.lifecycle('t1')).toEqual(['task_started']);
    h.answer('t1', 'all done');
    await h.idle();
    expect(h.lifecycle('t1')).toEqual(['task_started', 'task_complete']);
    expect(h.emitted.at(-1)).toEqual({ id: 't1', msg: { type: 'task_complete', turn_id: 't1', last_agent_message: 'all done' } });
  });

  it('an interrupted turn: task_started, then turn_aborted, no task_complete', async () => {
    const h = harness();
    h.send(op('TURN_INPUT', 't1'));
    h.send(op('INTERRUPT', 'i'));
    await h.idle();
    expect(h.lifecycle('t1')).toEqual(['task_started', 'turn_aborted']);
    expect(h.emitted.at(-1)).toEqual({ id: 't1', msg: { type: 'turn_aborted', turn_id: 't1', reason: 'interrupted' } });
  });

  it('a turn that throws: task_started, its error, task_complete; the session stays usable', async () => {
    const h = harness({ turnFails: true });
    h.send(op('TURN_INPUT', 't1'));
    await h.idle();
    expect(h.lifecycle('t1')).toEqual(['task_started', 'task_complete']);
    expect(h.errorsOf('t1')).toEqual([{ type: 'error', code: 'internal', message: expect.stringContaining('the turn failed') }]);
    h.send(op('COMPACT', 'c'));
    expect(h.state()).toBe('compacting');
  });

  for (const [name, type, state] of kinds) {
    it(`${name}: task_started, then task_complete with the task's message`, async () => {
      const h = harness();
      h.send(op(type, 'k'));
      expect(h.state()).toBe(state);
      expect(h.lifecycle('k')).toEqual(['task_started']);
      h.task('k').finish({ status: 'completed', lastAgentMessage: 'findings', abortReason: null });
      await h.idle();
      expect(h.lifecycle('k')).toEqual(['task_started', 'task_complete']);
      expect(h.emitted.at(-1)).toEqual({ id: 'k', msg: { type: 'task_complete', turn_id: 'k', last_agent_message: 'findings' } });
    });

    it(`${name} that throws: task_started, its error, task_complete`, async () => {
      const h = harness();
      h.send(op(type, 'k'));
      h.task('k').fail(new Error('broken'));
      await h.idle();
      expect(types(h.emitted.filter((e) => e.id === 'k'))).toEqual(['task_started', 'error', 'task_complete']);
    });
  }

  for (const [name, type] of kinds.filter(([, type]) => type !== 'UNDO')) {
    it(`an interrupted ${name}: the task is asked to stop, and ends with turn_aborted once it has`, async () => {
      const h = harness();
      h.send(op(type, 'k'));
      h.send(op('INTERRUPT', 'i'));
      expect(h.task('k').signal.aborted).toBe(true);
      await h.idle();
      expect(h.lifecycle('k')).toEqual(['task_started', 'turn_aborted']);
    });
  }

  it('an undo that is interrupted finishes, and completes', async () => {
    const h = harness();
    h.send(op('UNDO', 'u'));
    h.send(op('INTERRUPT', 'i'));
    expect(h.state()).toBe('undoing');
    h.task('u').finish(COMPLETED);
    await h.idle();
    expect(h.lifecycle('u')).toEqual(['task_started', 'task_complete']);
  });

  it('a shutdown during a task aborts it, then closes: turn_aborted before shutdown_complete', async () => {
    for (const type of ['TURN_INPUT', 'REVIEW', 'USER_SHELL'] as const) {
      const h = harness();
      h.send(op(type, 'k'));
      h.send(op('SHUTDOWN', 'bye'));
      await waitFor(h.actor, (s) => s.matches('closing'));
      h.closeDone();
      await waitFor(h.actor, (s) => s.status === 'done');
      expect(types(h.emitted)).toEqual(['task_started', 'turn_aborted', 'shutdown_complete']);
      expect(h.emitted.at(-1)?.id).toBe('bye');
    }
  });

  it('a task that cannot be announced is announced without its window, and fails', async () => {
    for (const event of [op('TURN_INPUT', 'k'), op('COMPACT', 'k')]) {
      const h = harness({ unknownModel: 'session-model' });
      h.send(event);
      await h.idle();
      expect(types(h.emitted.filter((e) => e.id === 'k'))).toEqual(['task_started', 'error', 'task_complete']);
      expect(h.emitted[0]?.msg).toEqual({ type: 'task_started', turn_id: 'k', model_context_window: null });
      expect(h.errorsOf('k')[0]?.message).toContain('no window for session-model');
    }
  });

  it('announces each task with the model it runs', async () => {
    const h = harness();
    h.send({ type: 'TURN_INPUT', submissionId: 't', items: [], overrides: { model: 'turn-model' } });
    h.send(op('INTERRUPT', 'i'));
    await h.idle();
    h.send(op('REVIEW', 'r'));
    h.send(op('INTERRUPT', 'i'));
    await h.idle();
    h.send(op('COMPACT', 'c'));
    expect(h.started).toEqual([
      { id: 't', model: 'turn-model' },
      { id: 'r', model: 'review-model' },
      { id: 'c', model: 'session-model' },
    ]);
  });

  it('hands the task its request and the settings of the moment', () => {
    const h = harness();
    h.send(op('OVERRIDE', 'o'));
    h.send(op('USER_SHELL', 'sh'));
    const { input } = h.task('sh');
    expect(input.request).toEqual(op('USER_SHELL', 'sh'));
    expect(input.settings.model).toBe('other-model');
    expect(input.sessionId).toBe('s');
  });
});

function types(events: readonly Emitted[]): string[] {
  return events.map((e) => e.msg.type);
}
