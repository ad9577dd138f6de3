import { assign, fromPromise, sendTo, setup } from 'xstate';
import type { EventMsg, ResponseItem, ReviewDecision, TurnOverrides } from '../protocol/index.js';
import { turnMachine, type TurnOutput } from './turn.js';
import { applyOverrides, buildTurnContext, type SessionSettings } from './turn-context.js';

/**
 * SessionMachine: owns a session's settings and runs one task at a time. Ops arrive as events
 * (the host has already validated them and turned user input into history items); a turn is an
 * invoked TurnMachine, so ending the session's `running` state is the only way a turn can end
 * without the session knowing.
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
  | { type: 'SHUTDOWN'; submissionId: string };

interface SessionContext {
  readonly sessionId: string;
  settings: SessionSettings;
  /** The submission that asked for shutdown while a turn was running. */
  shutdownId: string | null;
}

const notProvided = (what: string) => () => {
  throw new Error(`SessionMachine: ${what} was not provided`);
};

export const sessionMachine = setup({
  types: {
    input: {} as SessionInput,
    context: {} as SessionContext,
    events: {} as SessionEvent,
  },
  actors: {
    turn: turnMachine,
    /** Flush and close what the session holds (rollout, processes); resolves when done. */
    close: fromPromise<void, { sessionId: string }>(notProvided('close')),
  },
  actions: {
    emitEvent: (_, _params: { id: string | null; msg: EventMsg }) => notProvided('emitEvent')(),
  },
  guards: {
    shutdownRequested: ({ context }) => context.shutdownId !== null,
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({ sessionId: input.sessionId, settings: input.settings, shutdownId: null }),
  initial: 'idle',
  on: {
    OVERRIDE: { actions: assign({ settings: ({ context, event }) => applyOverrides(context.settings, event.overrides) }) },
  },
  states: {
    idle: {
      on: {
        TURN_INPUT: { target: 'running' },
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
      invoke: {
        id: 'turn',
        src: 'turn',
        input: ({ context, event }) => {
          if (event.type !== 'TURN_INPUT') throw new Error(`a turn cannot start from ${event.type}`);
          return {
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
          {
            guard: 'shutdownRequested',
            target: 'closing',
          },
          {
            target: 'idle',
            actions: {
              type: 'emitEvent',
              params: ({ event }) => ({
                id: null,
                msg: { type: 'error', code: 'internal', message: `the turn failed: ${String(event.error)}` },
              }),
            },
          },
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
        SHUTDOWN: {
          actions: [assign({ shutdownId: ({ event }) => event.submissionId }), sendTo('turn', { type: 'ABORT', reason: 'interrupted' })],
        },
      },
    },
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
