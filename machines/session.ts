import { assign, fromCallback, fromPromise, sendTo, setup, type EventObject } from 'xstate';
import { errorEvent, TroupeError, type EventMsg, type ResponseItem, type ReviewDecision, type ReviewTarget, type TurnOverrides } from '../protocol/index.js';
import { fromTask, type TaskOutput } from './task.js';
import type { ToolOutput } from './tool-plan.js';
import { noClientCallMessage, turnMachine } from './turn.js';
import { applyOverrides, buildTurnContext, type SessionSettings } from './turn-context.js';

/**
 * SessionMachine: owns a session's settings and runs one task at a time: a regular turn, a
 * review, a compaction, an undo or a command the user typed. Ops arrive as events (the host
 * has already validated them and turned user input into history items).
 *
 * Every task has the same life here (task.ts): entering its state announces it
 * (`task_started`, by the `announce` actor, which starts before the task's own actor); the
 * task actor's output ends it (`task_complete`, or `turn_aborted` when it was aborted); an
 * actor that throws ends it with `error` then `task_complete`. An interrupt, or a shutdown,
 * sends the task `ABORT` and the state waits for the task to end. So each task sends exactly
 * one `task_started` and then exactly one `task_complete` or `turn_aborted`, whatever its kind.
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
  /** `client_tool_output`: the client's answer to a client tool call of the running turn. */
  | { type: 'CLIENT_TOOL_OUTPUT'; submissionId: string; callId: string; output: ToolOutput }
  | { type: 'REVIEW'; submissionId: string; target: ReviewTarget; hint?: string | undefined }
  | { type: 'COMPACT'; submissionId: string }
  | { type: 'UNDO'; submissionId: string }
  | { type: 'ROLLBACK'; submissionId: string; numTurns: number }
  | { type: 'USER_SHELL'; submissionId: string; command: string }
  | { type: 'SHUTDOWN'; submissionId: string };

/** The op events that start a task other than a turn. */
export type TaskRequest = Extract<SessionEvent, { type: 'REVIEW' | 'COMPACT' | 'UNDO' | 'USER_SHELL' }>;

/** What every task actor but the turn is given: the request that started it and the settings of the moment. */
export interface TaskInput<R extends TaskRequest = TaskRequest> {
  readonly sessionId: string;
  readonly request: R;
  readonly settings: SessionSettings;
}

/** What the `announce` actor is given: the task, and the model whose context window `task_started` carries. */
export interface TaskAnnouncement {
  readonly sessionId: string;
  readonly id: string;
  readonly model: string;
}

export interface SessionContext {
  readonly sessionId: string;
  settings: SessionSettings;
  /** The submission that asked for shutdown while a task was running. */
  shutdownId: string | null;
  /** The task running now, or the last one: the submission that started it, the `turn_id` of its events. */
  taskId: string | null;
}

const notProvided = (what: string) => () => {
  throw new Error(`SessionMachine: ${what} was not provided`);
};

/** The op each event comes from, as errors name it. */
const OP_NAMES: Record<SessionEvent['type'], string> = {
  TURN_INPUT: 'user input',
  OVERRIDE: 'override_turn_context',
  INTERRUPT: 'interrupt',
  APPROVAL: 'approval',
  CLIENT_TOOL_OUTPUT: 'client_tool_output',
  REVIEW: 'review',
  COMPACT: 'compact',
  UNDO: 'undo',
  ROLLBACK: 'thread_rollback',
  USER_SHELL: 'run_user_shell_command',
  SHUTDOWN: 'shutdown',
};

const badRequest = (message: string) => new TroupeError(message, { code: 'bad_request' });

/** An op refused with a `bad_request` error carrying its own submission id. */
const refuse = (why: string) => ({
  actions: {
    type: 'emitEvent' as const,
    params: ({ event }: { event: SessionEvent }) => ({
      id: event.submissionId,
      msg: errorEvent(badRequest(why), OP_NAMES[event.type]),
    }),
  },
});

const busy = refuse('another task is running; interrupt it first');
const shuttingDown = refuse('the session is shutting down');

const noPendingApproval = (suffix: string) => ({
  actions: {
    type: 'emitEvent' as const,
    params: ({ event }: { event: Extract<SessionEvent, { type: 'APPROVAL' }> }) => ({
      id: event.submissionId,
      msg: errorEvent(badRequest(`no approval is pending with id ${event.callId}${suffix}`)),
    }),
  },
});

const noClientCall = (suffix: string) => ({
  actions: {
    type: 'emitEvent' as const,
    params: ({ event }: { event: Extract<SessionEvent, { type: 'CLIENT_TOOL_OUTPUT' }> }) => ({
      id: event.submissionId,
      msg: errorEvent(badRequest(`${noClientCallMessage(event.callId)}${suffix}`)),
    }),
  },
});

/** The model a task runs: its context window goes in `task_started`. */
function taskModel(settings: SessionSettings, event: SessionEvent): string {
  if (event.type === 'TURN_INPUT') return applyOverrides(settings, event.overrides).model;
  if (event.type === 'REVIEW') return settings.review_model ?? settings.model;
  return settings.model;
}

/** The event that closes a task, from how its actor ended. */
function taskEnd(taskId: string | null, output: TaskOutput): { id: string | null; msg: EventMsg } {
  // Every task state sets the task on entry, so an ending task always has one.
  const id = taskId ?? '';
  const msg: EventMsg =
    output.status === 'aborted'
      ? { type: 'turn_aborted', turn_id: id, reason: output.abortReason ?? 'interrupted' }
      : { type: 'task_complete', turn_id: id, last_agent_message: output.lastAgentMessage };
  return { id, msg };
}

const sessionSetup = setup({
  types: {
    input: {} as SessionInput,
    context: {} as SessionContext,
    events: {} as SessionEvent,
  },
  actors: {
    turn: turnMachine,
    /** Every other task: review, compaction, undo, a user's shell command (TaskInput says which). */
    task: fromTask<TaskInput>(notProvided('task')),
    /** Announce a task (`task_started`) as it starts; throws when it cannot. */
    announce: fromCallback<EventObject, TaskAnnouncement>(notProvided('announce')),
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

/** Entering a task's state: remember whose task it is. */
const beginTask = sessionSetup.assign({ taskId: ({ event }) => event.submissionId });

/** A task's actor ended: close the task, then go on to closing if a shutdown came meanwhile. */
const endTask = {
  type: 'emitEvent' as const,
  params: ({ context, event }: { context: SessionContext; event: { output: TaskOutput } }) => taskEnd(context.taskId, event.output),
};
const taskDone = [
  { guard: 'shutdownRequested' as const, target: 'closing' as const, actions: endTask },
  { target: 'idle' as const, actions: endTask },
];

/**
 * A task that throws ends like any other, under its own id: the error says what broke, and
 * `task_complete` closes the task for whoever waits on it (a client, or a parent agent, which
 * reads the pair as `errored`). The session stays usable.
 */
const taskFailed = (what: string) => {
  const actions = [
    {
      type: 'emitEvent' as const,
      params: ({ context, event }: { context: SessionContext; event: { error?: unknown } }) => ({
        id: context.taskId,
        msg: errorEvent(new TroupeError(String(event.error), { cause: event.error }), `${what} failed`),
      }),
    },
    {
      type: 'emitEvent' as const,
      params: ({ context }: { context: SessionContext }) => taskEnd(context.taskId, { status: 'failed', lastAgentMessage: null, abortReason: null }),
    },
  ];
  return [
    { guard: 'shutdownRequested' as const, target: 'closing' as const, actions },
    { target: 'idle' as const, actions },
  ];
};

/**
 * The announcement failed (the model's context window could not be looked up): the task is
 * announced without it, and fails.
 */
const announceFailed = (what: string) =>
  taskFailed(what).map((transition) => ({
    ...transition,
    actions: [
      {
        type: 'emitEvent' as const,
        params: ({ context }: { context: SessionContext }) => {
          const id = context.taskId ?? '';
          return { id, msg: { type: 'task_started' as const, turn_id: id, model_context_window: null } };
        },
      },
      ...transition.actions,
    ],
  }));

/** The `announce` actor of a task state, the first thing the state starts. */
const announce = (what: string) => ({
  src: 'announce' as const,
  input: ({ context, event }: { context: SessionContext; event: SessionEvent }) => ({
    sessionId: context.sessionId,
    id: event.submissionId,
    model: taskModel(context.settings, event),
  }),
  onError: announceFailed(what),
});

/** Ask the running task to stop; it ends, and its state ends with it. */
const abortTask = sessionSetup.sendTo('task', { type: 'ABORT', reason: 'interrupted' });

/** What every task state does with the ops that are not its own. */
const taskOps = {
  // The task stops what it started and ends; a shutdown goes on to closing after that.
  INTERRUPT: { actions: abortTask },
  SHUTDOWN: { actions: [sessionSetup.assign({ shutdownId: ({ event }) => event.submissionId }), abortTask] },
  REVIEW: busy,
  COMPACT: busy,
  UNDO: busy,
  ROLLBACK: busy,
  USER_SHELL: busy,
};

/** A task state other than the turn's: its actor is `task`, fed with the request that started it. */
function taskState(what: string) {
  return sessionSetup.createStateConfig({
    entry: beginTask,
    invoke: [
      announce(what),
      {
        id: 'task',
        src: 'task',
        input: ({ context, event }): TaskInput => {
          if (event.type !== 'REVIEW' && event.type !== 'COMPACT' && event.type !== 'UNDO' && event.type !== 'USER_SHELL') {
            throw new Error(`a task cannot start from ${event.type}`);
          }
          return { sessionId: context.sessionId, request: event, settings: context.settings };
        },
        onDone: taskDone,
        onError: taskFailed(what),
      },
    ],
    on: {
      ...taskOps,
      TURN_INPUT: busy,
      APPROVAL: noPendingApproval(''),
      CLIENT_TOOL_OUTPUT: noClientCall(''),
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
        ROLLBACK: {
          actions: { type: 'rollback', params: ({ event }) => ({ submissionId: event.submissionId, numTurns: event.numTurns }) },
        },
        // Nothing runs: nothing to interrupt.
        INTERRUPT: {},
        APPROVAL: noPendingApproval(': no turn is running'),
        CLIENT_TOOL_OUTPUT: noClientCall(': no turn is running'),
        SHUTDOWN: { target: 'closing', actions: assign({ shutdownId: ({ event }) => event.submissionId }) },
      },
    },
    running: {
      entry: beginTask,
      invoke: [
        announce('the turn'),
        {
          // The same id as every task, so the ops that stop a task are the same in every task state.
          id: 'task',
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
          onDone: taskDone,
          onError: taskFailed('the turn'),
        },
      ],
      on: {
        ...taskOps,
        TURN_INPUT: { actions: sendTo('task', ({ event }) => ({ type: 'STEER' as const, items: event.items })) },
        APPROVAL: {
          actions: sendTo('task', ({ event }) => ({
            type: 'APPROVAL' as const,
            submissionId: event.submissionId,
            callId: event.callId,
            decision: event.decision,
          })),
        },
        CLIENT_TOOL_OUTPUT: {
          actions: sendTo('task', ({ event }) => ({
            type: 'CLIENT_TOOL_OUTPUT' as const,
            submissionId: event.submissionId,
            callId: event.callId,
            output: event.output,
          })),
        },
      },
    },
    reviewing: taskState('the review'),
    compacting: taskState('compaction'),
    undoing: taskState('undo'),
    userShell: taskState('the shell command'),
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
              msg: errorEvent(new TroupeError(String(event.error), { cause: event.error }), 'closing the session failed'),
            }),
          },
        },
      },
      on: {
        TURN_INPUT: shuttingDown,
        APPROVAL: shuttingDown,
        CLIENT_TOOL_OUTPUT: shuttingDown,
        REVIEW: shuttingDown,
        COMPACT: shuttingDown,
        UNDO: shuttingDown,
        ROLLBACK: shuttingDown,
        USER_SHELL: shuttingDown,
        // Nothing runs any more; a second shutdown is already under way.
        INTERRUPT: {},
        SHUTDOWN: {},
      },
    },
    closed: {
      type: 'final',
      entry: { type: 'emitEvent', params: ({ context }) => ({ id: context.shutdownId, msg: { type: 'shutdown_complete' } }) },
    },
  },
});
