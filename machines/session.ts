import { assign, fromPromise, sendTo, setup } from 'xstate';
import type { EventMsg, ResponseItem, ReviewDecision, ReviewTarget, TurnOverrides } from '../protocol/index.js';
import { turnMachine, type TurnOutput } from './turn.js';
import { applyOverrides, buildTurnContext, type SessionSettings } from './turn-context.js';

/**
 * SessionMachine: owns a session's settings and runs one task at a time: a regular turn, a
 * review, a compaction, an undo or a command the user typed. Ops arrive as events (the host
 * has already validated them and turned user input into history items). Each task is an
 * invoked actor, so ending the task's state is the only way a task can end without the
 * session knowing; an interrupt asks a turn to abort (it answers its pending calls) and stops
 * the other tasks, whose actors clean up through their abort signal.
 */

export interface SessionInput {
  readonly sessionId: string;
  readonly settings: SessionSettings;
}

export type SessionEvent =
  /** `user_turn` / `user_input`: starts a turn, or steers the running one. */
  | {
      type: 'TURN_INPUT';
      submissionId: string;
      items: ResponseItem[];
      overrides: TurnOverrides;
      final_output_json_schema?: Record<string, unknown> | undefined;
    }
  | { type: 'OVERRIDE'; submissionId: string; overrides: TurnOverrides }
  | { type: 'INTERRUPT'; submissionId: string }
  | { type: 'APPROVAL'; submissionId: string; callId: string; decision: ReviewDecision }
  | { type: 'REVIEW'; submissionId: string; target: ReviewTarget; hint?: string | undefined }
  | { type: 'COMPACT'; submissionId: string }
  | { type: 'UNDO'; submissionId: string }
  | { type: 'ROLLBACK'; submissionId: string; numTurns: number }
  | { type: 'USER_SHELL'; submissionId: string; command: string }
  | { type: 'SHUTDOWN'; submissionId: string };

/** The op events that start a task other than a turn. */
export type TaskRequest = Extract<SessionEvent, { type: 'REVIEW' | 'COMPACT' | 'UNDO' | 'USER_SHELL' }>;

/** What every task actor is given: the request that started it and the settings of the moment. */
export interface TaskInput<R extends TaskRequest = TaskRequest> {
  readonly sessionId: string;
  readonly request: R;
  readonly settings: SessionSettings;
}

export interface SessionContext {
  readonly sessionId: string;
  settings: SessionSettings;
  /** The submission that asked for shutdown while a task was running. */
  shutdownId: string | null;
  /** The submission of the task (turn, review, ...) running now, or last: a failure ends it under this id. */
  taskId: string | null;
}

const notProvided = (what: string) => () => {
  throw new Error(`SessionMachine: ${what} was not provided`);
};

const busy = (what: string) => ({
  actions: {
    type: 'emitEvent' as const,
    params: ({ event }: { event: SessionEvent }) => ({
      id: event.submissionId,
      msg: { type: 'error' as const, code: 'bad_request' as const, message: `${what}: another task is running; interrupt it first` },
    }),
  },
});

const sessionSetup = setup({
  types: {
    input: {} as SessionInput,
    context: {} as SessionContext,
    events: {} as SessionEvent,
  },
  actors: {
    turn: turnMachine,
    /** A review in an isolated child session; emits entered/exited_review_mode itself. */
    review: fromPromise<void, TaskInput>(notProvided('review')),
    /** Summarize the history and replace it with the summary bridge. */
    compact: fromPromise<void, TaskInput>(notProvided('compact')),
    /** Restore the working tree to the snapshot taken before the last turn. */
    undo: fromPromise<void, TaskInput>(notProvided('undo')),
    /** Run a command the user typed and record it in the history. */
    userShell: fromPromise<void, TaskInput>(notProvided('userShell')),
    /** Flush and close what the session holds (sub-agents, rollout, processes); resolves when done. */
    close: fromPromise<void, { sessionId: string }>(notProvided('close')),
  },
  actions: {
    emitEvent: (_, _params: { id: string | null; msg: EventMsg }) => notProvided('emitEvent')(),
    /** Drop the last user turns from the history (files untouched). */
    rollback: (_, _params: { submissionId: string; numTurns: number }) => notProvided('rollback')(),
  },
  guards: {
    shutdownRequested: ({ context }) => context.shutdownId !== null,
  },
});

/**
 * A task that throws ends like any other, under its own id: the error says what broke, and
 * `task_complete` closes the task for whoever waits on it (a client, or a parent agent, which
 * reads the pair as `errored`). The session stays usable.
 */
const failTask = (what: string) => [
  {
    type: 'emitEvent' as const,
    params: ({ context, event }: { context: SessionContext; event: { error?: unknown } }) => ({
      id: context.taskId,
      msg: { type: 'error' as const, code: 'internal' as const, message: `${what} failed: ${String(event.error)}` },
    }),
  },
  {
    type: 'emitEvent' as const,
    // Every task state sets taskId on entry, so a task that fails always has one.
    params: ({ context }: { context: SessionContext }) => ({
      id: context.taskId,
      msg: { type: 'task_complete' as const, turn_id: context.taskId ?? '', last_agent_message: null },
    }),
  },
];

/** Entering a task's state: remember whose task it is. */
const startTask = sessionSetup.assign({ taskId: ({ event }) => event.submissionId });

/** The transitions every non-turn task state shares: it ends, fails, or is interrupted. */
function taskState<S extends 'review' | 'compact' | 'undo' | 'userShell'>(src: S, label: string) {
  return sessionSetup.createStateConfig({
    entry: startTask,
    invoke: {
      src,
      input: ({ context, event }): TaskInput => {
        if (event.type !== 'REVIEW' && event.type !== 'COMPACT' && event.type !== 'UNDO' && event.type !== 'USER_SHELL') {
          throw new Error(`a task cannot start from ${event.type}`);
        }
        return { sessionId: context.sessionId, request: event, settings: context.settings };
      },
      onDone: [{ guard: 'shutdownRequested', target: 'closing' }, { target: 'idle' }],
      onError: { target: 'idle', actions: failTask(label) },
    },
    on: {
      // Leaving the state stops the task; its actor sees the abort and reports how it ended.
      INTERRUPT: { target: 'idle' },
      SHUTDOWN: { target: 'closing', actions: assign({ shutdownId: ({ event }) => event.submissionId }) },
      TURN_INPUT: busy('user input'),
      REVIEW: busy('review'),
      COMPACT: busy('compact'),
      UNDO: busy('undo'),
      ROLLBACK: busy('thread_rollback'),
      USER_SHELL: busy('run_user_shell_command'),
      APPROVAL: {
        actions: {
          type: 'emitEvent',
          params: ({ event }) => ({
            id: event.submissionId,
            msg: { type: 'error', code: 'bad_request', message: `no approval is pending with id ${event.callId}` },
          }),
        },
      },
    },
  });
}

export const sessionMachine = sessionSetup.createMachine({
  id: 'session',
  context: ({ input }) => ({ sessionId: input.sessionId, settings: input.settings, shutdownId: null, taskId: null }),
  initial: 'idle',
  on: {
    OVERRIDE: { actions: assign({ settings: ({ context, event }) => applyOverrides(context.settings, event.overrides) }) },
  },
  states: {
    idle: {
      on: {
        TURN_INPUT: { target: 'running' },
        REVIEW: { target: 'reviewing' },
        COMPACT: { target: 'compacting' },
        UNDO: { target: 'undoing' },
        USER_SHELL: { target: 'userShell' },
        ROLLBACK: { actions: { type: 'rollback', params: ({ event }) => ({ submissionId: event.submissionId, numTurns: event.numTurns }) } },
        INTERRUPT: {},
        APPROVAL: {
          actions: {
            type: 'emitEvent',
            params: ({ event }) => ({
              id: event.submissionId,
              msg: { type: 'error', code: 'bad_request', message: `no approval is pending with id ${event.callId}: no turn is running` },
            }),
          },
        },
        SHUTDOWN: { target: 'closing', actions: assign({ shutdownId: ({ event }) => event.submissionId }) },
      },
    },
    running: {
      entry: startTask,
      invoke: {
        id: 'turn',
        src: 'turn',
        input: ({ context, event }) => {
          if (event.type !== 'TURN_INPUT') throw new Error(`a turn cannot start from ${event.type}`);
          return {
            sessionId: context.sessionId,
            turnId: event.submissionId,
            context: buildTurnContext(context.settings, event.submissionId, {
              ...event.overrides,
              final_output_json_schema: event.final_output_json_schema,
            }),
            input: event.items,
          };
        },
        onDone: [{ guard: 'shutdownRequested', target: 'closing' }, { target: 'idle' }],
        onError: [
          { guard: 'shutdownRequested', target: 'closing' },
          { target: 'idle', actions: failTask('the turn') },
        ],
      },
      on: {
        TURN_INPUT: { actions: sendTo('turn', ({ event }) => ({ type: 'STEER' as const, items: event.items })) },
        INTERRUPT: { actions: sendTo('turn', { type: 'ABORT', reason: 'interrupted' }) },
        APPROVAL: {
          actions: sendTo('turn', ({ event }) => ({
            type: 'APPROVAL' as const,
            submissionId: event.submissionId,
            callId: event.callId,
            decision: event.decision,
          })),
        },
        REVIEW: busy('review'),
        COMPACT: busy('compact'),
        UNDO: busy('undo'),
        ROLLBACK: busy('thread_rollback'),
        USER_SHELL: busy('run_user_shell_command'),
        SHUTDOWN: {
          actions: [assign({ shutdownId: ({ event }) => event.submissionId }), sendTo('turn', { type: 'ABORT', reason: 'interrupted' })],
        },
      },
    },
    reviewing: taskState('review', 'the review'),
    compacting: taskState('compact', 'compaction'),
    undoing: taskState('undo', 'undo'),
    userShell: taskState('userShell', 'the shell command'),
    closing: {
      invoke: {
        src: 'close',
        input: ({ context }) => ({ sessionId: context.sessionId }),
        onDone: 'closed',
        onError: {
          target: 'closed',
          actions: {
            type: 'emitEvent',
            params: ({ context, event }) => ({
              id: context.shutdownId,
              msg: { type: 'error', code: 'internal', message: `closing the session failed: ${String(event.error)}` },
            }),
          },
        },
      },
    },
    closed: {
      type: 'final',
      entry: { type: 'emitEvent', params: ({ context }) => ({ id: context.shutdownId, msg: { type: 'shutdown_complete' } }) },
    },
  },
});

export type { TurnOutput };
