import { assign, enqueueActions, fromCallback, fromPromise, sendTo, setup } from 'xstate';
import {
  errorEvent,
  TroupeError,
  type EventMsg,
  type ErrorCode,
  type RateLimitSnapshot,
  type ResponseItem,
  type ReviewDecision,
  type TokenUsage,
} from '../protocol/index.js';
import { toolCallMachine, type ToolCallParentEvent } from './tool-call.js';
import type { ToolOutput } from './tool-plan.js';
import type { TurnContext } from './turn-context.js';

/**
 * TurnMachine: the regular task. Sample the model; start a ToolCallMachine for each call as
 * soon as the model finishes writing it; when the response is complete and every call has its
 * output, record the outputs in call order and sample again, until the model answers without
 * calling a tool and no steering input is waiting.
 *
 * The sampler, the history and the event stream are injected by name; this file only orders
 * things. Retries of transient model failures happen here (each attempt is announced, and an
 * interrupt stops the wait); the delay comes from the sampler, which knows the provider.
 */

export const MAX_STREAM_ATTEMPTS = 5;

export interface TurnInput {
  /** The session the turn belongs to: the injected logic serves every session of a host. */
  readonly sessionId: string;
  readonly turnId: string;
  readonly context: TurnContext;
  /** The user message(s) that started the turn. */
  readonly input: readonly ResponseItem[];
}

/** What the turn's injected actors are given. */
export interface TurnStep {
  readonly sessionId: string;
  readonly turnId: string;
  readonly turn: TurnContext;
}

export interface ModelFailure {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  /** How long to wait before the next attempt, when retried. */
  readonly retryDelayMs: number;
}

/**
 * What the sampler reports back while its stream runs. Text and reasoning deltas are not among
 * them: the turn would only pass them on, so the sampler emits them itself.
 */
export type SamplerEvent =
  | { type: 'MODEL.ITEM'; item: ResponseItem }
  | { type: 'MODEL.RATE_LIMITS'; snapshot: RateLimitSnapshot }
  | { type: 'MODEL.COMPLETED'; usage: TokenUsage | null }
  | { type: 'MODEL.FAILED'; failure: ModelFailure };

export type TurnAbortReason = 'interrupted' | 'replaced' | 'review_ended';

export type TurnEvent =
  | SamplerEvent
  | ToolCallParentEvent
  | { type: 'STEER'; items: ResponseItem[] }
  | { type: 'ABORT'; reason: TurnAbortReason }
  | { type: 'APPROVAL'; submissionId: string; callId: string; decision: ReviewDecision }
  | { type: 'CLIENT_TOOL_OUTPUT'; submissionId: string; callId: string; output: ToolOutput };

export type TurnStatus = 'completed' | 'aborted' | 'failed';
/** How the turn ended; the session machine announces it (task_complete or turn_aborted). */
export interface TurnOutput {
  readonly turnId: string;
  readonly status: TurnStatus;
  readonly lastAgentMessage: string | null;
  readonly abortReason: TurnAbortReason | null;
}

interface CallSlot {
  readonly callId: string;
  output: ToolOutput | null;
}

export interface TurnMachineContext {
  readonly sessionId: string;
  readonly turnId: string;
  readonly turn: TurnContext;
  readonly input: readonly ResponseItem[];
  /** The calls of the current sampling round, in the order the model made them. */
  calls: CallSlot[];
  /** Calls whose approval waiter is open. */
  awaiting: string[];
  /** Client tool calls waiting for the client's answer. */
  awaitingClient: string[];
  /** Failed attempts of the current request. */
  failures: number;
  retryAt: number | null;
  /** Steering input that joins the next request. */
  pendingInput: ResponseItem[];
  /** Set when a round closes: the model must be sampled again (it called tools, or input is waiting). */
  followUp: boolean;
  lastAgentMessage: string | null;
  abortReason: TurnAbortReason | null;
  status: TurnStatus | null;
}

const notProvided = (what: string) => () => {
  throw new Error(`TurnMachine: ${what} was not provided`);
};

function agentText(item: ResponseItem): string | null {
  if (item.type !== 'message' || item.role !== 'assistant') return null;
  return item.content.map((c) => (c.type === 'output_text' ? c.text : '')).join('');
}

/** The refusal of a `client_tool_output` no call waits for (the session says it too, with no turn running). */
export const noClientCallMessage = (callId: string) => `client_tool_output: no client tool call is waiting with call_id ${callId}`;

const allCallsDone = (ctx: TurnMachineContext) => ctx.calls.every((c) => c.output !== null);

const turnSetup = setup({
  types: {
    input: {} as TurnInput,
    context: {} as TurnMachineContext,
    events: {} as TurnEvent,
    output: {} as TurnOutput,
  },
  actors: {
    toolCall: toolCallMachine,
    /** One sampling attempt: streams the model's answer as SamplerEvents. */
    sample: fromCallback<TurnEvent, TurnStep & { attempt: number }>(notProvided('sample')),
    /** Compact the history before a request, because it has grown past the limit. */
    autoCompact: fromPromise<void, TurnStep>(notProvided('autoCompact')),
    /** Resolves at an absolute time (the retry backoff: `retryAt` in the context says when). */
    deadline: fromPromise<void, { until: number }>(
      ({ input, signal }) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, input.until - Date.now()));
          signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
        }),
    ),
  },
  actions: {
    /**
     * Start the snapshot `undo` returns to. The first request does not wait for it; the port
     * makes the turn's tools wait for it before they run, so it still sees the tree as it was
     * before the turn changed anything.
     */
    startSnapshot: () => notProvided('startSnapshot')(),
    /** Emit `msg` for the turn, or, with `id`, as the answer to that submission. */
    emitEvent: (_, _params: { msg: EventMsg; id?: string }) => notProvided('emitEvent')(),
    /** Record the turn's context and user input (the session machine has announced the turn). */
    beginTurn: (_, _params: { turnId: string; turn: TurnContext; input: readonly ResponseItem[] }) => notProvided('beginTurn')(),
    /** Record one finished model item and announce it (agent_message, reasoning). */
    recordItem: (_, _params: { item: ResponseItem }) => notProvided('recordItem')(),
    /** Record call outputs, in the order given. */
    recordOutputs: (_, _params: { outputs: { callId: string; output: ToolOutput }[] }) => notProvided('recordOutputs')(),
    /** Record steering input that joins the next request. */
    recordInput: (_, _params: { items: ResponseItem[] }) => notProvided('recordInput')(),
    accountUsage: (_, _params: { usage: TokenUsage | null }) => notProvided('accountUsage')(),
    rememberRateLimits: (_, _params: { snapshot: RateLimitSnapshot }) => notProvided('rememberRateLimits')(),
    /** Report a model failure that ends the turn (error event, and token_count when the window is full). */
    reportFailure: (_, _params: { failure: ModelFailure }) => notProvided('reportFailure')(),
    /** Interrupt the sub-agents this session started (an interrupt cascades down the tree). */
    interruptAgents: () => notProvided('interruptAgents')(),
    /** Give calls that never finished the aborted output. */
    recordAborted: (_, _params: { callIds: string[] }) => notProvided('recordAborted')(),
  },
  guards: {
    /** Whether this turn takes an undo snapshot (it could change files in a repository). */
    wantsSnapshot: notProvided('wantsSnapshot'),
    /** Whether the history has grown past the auto-compaction limit. */
    wantsCompaction: notProvided('wantsCompaction'),
    needsFollowUp: ({ context }) => context.followUp,
    retryPending: ({ context }) => context.retryAt !== null,
    canRetry: ({ context, event }) => event.type === 'MODEL.FAILED' && event.failure.retryable && context.failures < MAX_STREAM_ATTEMPTS,
    isAwaiting: ({ context, event }) => event.type === 'APPROVAL' && context.awaiting.includes(event.callId),
    isAwaitingClient: ({ context, event }) => event.type === 'CLIENT_TOOL_OUTPUT' && context.awaitingClient.includes(event.callId),
  },
});

/** Close a sampling round: outputs in call order, then any steering input. */
const flushRound = turnSetup.enqueueActions(({ enqueue, context }) => {
  const outputs = context.calls.map((c) => ({ callId: c.callId, output: c.output as ToolOutput }));
  if (outputs.length > 0) enqueue({ type: 'recordOutputs', params: { outputs } });
  if (context.pendingInput.length > 0) enqueue({ type: 'recordInput', params: { items: context.pendingInput } });
  enqueue.assign({ calls: [], pendingInput: [], followUp: outputs.length > 0 || context.pendingInput.length > 0 });
});

/**
 * Stop unfinished calls (stopping an actor aborts its execution, which kills its processes)
 * and keep what the finished ones produced. Calls left without an output get the aborted output
 * from ConversationHistory, the one place that knows how to repair the history.
 */
const abandonCalls = turnSetup.enqueueActions(({ enqueue, context }) => {
  for (const call of context.calls) if (call.output === null) enqueue.stopChild(`call:${call.callId}`);
  const finished = context.calls.filter((c) => c.output !== null).map((c) => ({ callId: c.callId, output: c.output as ToolOutput }));
  if (finished.length > 0) enqueue({ type: 'recordOutputs', params: { outputs: finished } });
  enqueue({ type: 'recordAborted', params: { callIds: context.calls.filter((c) => c.output === null).map((c) => c.callId) } });
  if (context.pendingInput.length > 0) enqueue({ type: 'recordInput', params: { items: context.pendingInput } });
  enqueue.assign({ calls: [], pendingInput: [], awaiting: [], awaitingClient: [] });
});

export const turnMachine = turnSetup.extend({ actions: { flushRound, abandonCalls } }).createMachine({
  id: 'turn',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    turnId: input.turnId,
    turn: input.context,
    input: input.input,
    calls: [],
    awaiting: [],
    awaitingClient: [],
    failures: 0,
    retryAt: null,
    pendingInput: [],
    followUp: false,
    lastAgentMessage: null,
    abortReason: null,
    status: null,
  }),
  entry: { type: 'beginTurn', params: ({ context }) => ({ turnId: context.turnId, turn: context.turn, input: context.input }) },
  initial: 'starting',
  on: {
    STEER: { actions: assign({ pendingInput: ({ context, event }) => [...context.pendingInput, ...event.items] }) },
    ABORT: { target: '.aborted', actions: assign({ abortReason: ({ event }) => event.reason }) },
    'CALL.ABORT_TURN': {
      target: '.aborted',
      actions: assign({
        abortReason: 'interrupted',
        calls: ({ context, event }) => context.calls.map((c) => (c.callId === event.callId ? { ...c, output: event.output } : c)),
      }),
    },
    'CALL.AWAITING_APPROVAL': { actions: assign({ awaiting: ({ context, event }) => [...context.awaiting, event.callId] }) },
    'CALL.AWAITING_CLIENT': { actions: assign({ awaitingClient: ({ context, event }) => [...context.awaitingClient, event.callId] }) },
    'CALL.DONE': {
      actions: assign({
        calls: ({ context, event }) => context.calls.map((c) => (c.callId === event.callId ? { ...c, output: event.output } : c)),
        awaiting: ({ context, event }) => context.awaiting.filter((id) => id !== event.callId),
      }),
    },
    APPROVAL: [
      {
        guard: 'isAwaiting',
        // The call is answered: a second answer is refused like any other (an escalation
        // makes the call ask again, and CALL.AWAITING_APPROVAL puts it back).
        actions: [
          assign({ awaiting: ({ context, event }) => context.awaiting.filter((id) => id !== event.callId) }),
          sendTo(
            ({ event }) => `call:${event.callId}`,
            ({ event }) => ({ type: 'APPROVAL' as const, decision: event.decision }),
          ),
        ],
      },
      {
        actions: {
          type: 'emitEvent',
          params: ({ event }) => ({
            id: event.submissionId,
            msg: errorEvent(new TroupeError(`no approval is pending with id ${event.callId}`, { code: 'bad_request' })),
          }),
        },
      },
    ],
    CLIENT_TOOL_OUTPUT: [
      {
        guard: 'isAwaitingClient',
        // The first answer is taken; another one for the same call is refused below.
        actions: [
          assign({ awaitingClient: ({ context, event }) => context.awaitingClient.filter((id) => id !== event.callId) }),
          sendTo(
            ({ event }) => `call:${event.callId}`,
            ({ event }) => ({ type: 'CLIENT_OUTPUT' as const, output: event.output }),
          ),
        ],
      },
      {
        actions: {
          type: 'emitEvent',
          params: ({ event }) => ({
            id: event.submissionId,
            msg: errorEvent(new TroupeError(noClientCallMessage(event.callId), { code: 'bad_request' })),
          }),
        },
      },
    ],
  },
  states: {
    // Most turns need neither a snapshot nor a compaction: deciding that is a guard, not an
    // actor, so the common path costs no extra step. The snapshot runs beside the request.
    starting: {
      always: [{ guard: 'wantsSnapshot', target: 'preparing', actions: 'startSnapshot' }, { target: 'preparing' }],
    },
    preparing: {
      always: [{ guard: 'wantsCompaction', target: 'compacting' }, { target: 'sampling' }],
    },
    compacting: {
      invoke: {
        src: 'autoCompact',
        input: ({ context }) => ({ sessionId: context.sessionId, turnId: context.turnId, turn: context.turn }),
        onDone: 'sampling',
        onError: {
          target: 'failed',
          actions: {
            type: 'reportFailure',
            params: ({ event }) => ({
              failure: { code: 'internal', message: `could not prepare the request: ${String(event.error)}`, retryable: false, retryDelayMs: 0 },
            }),
          },
        },
      },
    },
    sampling: {
      entry: assign({ calls: [], retryAt: null }),
      invoke: {
        src: 'sample',
        input: ({ context }) => ({ sessionId: context.sessionId, turnId: context.turnId, turn: context.turn, attempt: context.failures + 1 }),
      },
      on: {
        'MODEL.RATE_LIMITS': { actions: { type: 'rememberRateLimits', params: ({ event }) => ({ snapshot: event.snapshot }) } },
        'MODEL.ITEM': {
          actions: enqueueActions(({ enqueue, context, event }) => {
            const item = event.item;
            enqueue({ type: 'recordItem', params: { item } });
            const text = agentText(item);
            if (text !== null) enqueue.assign({ lastAgentMessage: text });
            if (item.type === 'function_call') {
              enqueue.assign({ calls: [...context.calls, { callId: item.call_id, output: null }] });
              enqueue.spawnChild('toolCall', {
                id: `call:${item.call_id}`,
                input: { sessionId: context.sessionId, callId: item.call_id, turnId: context.turnId, name: item.name, arguments: item.arguments },
              });
            }
          }),
        },
        'MODEL.COMPLETED': {
          target: 'draining',
          actions: [{ type: 'accountUsage', params: ({ event }) => ({ usage: event.usage }) }, assign({ failures: 0 })],
        },
        'MODEL.FAILED': [
          {
            guard: 'canRetry',
            target: 'draining',
            actions: [
              assign({
                failures: ({ context }) => context.failures + 1,
                retryAt: ({ event }) => Date.now() + event.failure.retryDelayMs,
              }),
              {
                type: 'emitEvent',
                params: ({ context, event }) => ({
                  msg: {
                    type: 'stream_error',
                    message: `${event.failure.message}; retrying`,
                    attempt: context.failures,
                    max_attempts: MAX_STREAM_ATTEMPTS,
                  },
                }),
              },
            ],
          },
          {
            target: 'failed',
            actions: { type: 'reportFailure', params: ({ event }) => ({ failure: event.failure }) },
          },
        ],
      },
    },
    /** The response is over (or broke): wait until every call it made has an output. */
    draining: {
      always: { guard: ({ context }) => allCallsDone(context), target: 'deciding' },
    },
    deciding: {
      entry: 'flushRound',
      always: [
        {
          guard: 'retryPending',
          target: 'backoff',
        },
        { guard: 'needsFollowUp', target: 'preparing' },
        { target: 'completed' },
      ],
    },
    backoff: {
      invoke: {
        src: 'deadline',
        input: ({ context }) => ({ until: context.retryAt ?? Date.now() }),
        onDone: { target: 'sampling' },
      },
    },
    completed: {
      type: 'final',
      entry: assign({ status: 'completed' }),
    },
    failed: {
      type: 'final',
      entry: ['abandonCalls', assign({ status: 'failed' })],
    },
    aborted: {
      type: 'final',
      entry: ['abandonCalls', 'interruptAgents', assign({ status: 'aborted' })],
    },
  },
  // The session machine ends the task from this: task_complete, or turn_aborted with the reason.
  output: ({ context }) => ({
    turnId: context.turnId,
    status: context.status ?? 'failed',
    lastAgentMessage: context.lastAgentMessage,
    abortReason: context.status === 'aborted' ? (context.abortReason ?? 'interrupted') : null,
  }),
});
