import { assign, fromPromise, sendParent, setup } from 'xstate';
import type { EventMsg, ReviewDecision } from '../protocol/index.js';
import type { ApprovalRequest, ToolOutput, ToolPlan } from './tool-plan.js';

/**
 * ToolCallMachine: one model tool call, from plan to output. Each call of a response is its own
 * actor, so parallel calls each have their own approval waiter: denying one never touches its
 * siblings. The plan and the execution are injected (`plan`, `execute`); the machine only
 * decides the order of things.
 */

export interface ToolCallInput {
  readonly sessionId: string;
  readonly callId: string;
  readonly turnId: string;
  readonly name: string;
  /** The raw JSON the model sent; the injected actors parse it (kept raw so input stays serializable). */
  readonly arguments: string;
}

export interface ToolCallContext extends ToolCallInput {
  plan: ToolPlan | null;
  /** The user approved the plan's request: run as the approval said. */
  approved: boolean;
  output: ToolOutput | null;
  /** A client tool's answer, which `execute` hands back as the call's output. */
  answer: ToolOutput | null;
}

/** What `execute` is given: the call, how to run it, and for a client tool the client's answer. */
/**
 * `approvedKey`: the approval key the call runs under, when the user approved it (now, or for
 * the session): a tool whose key names files checks, as it runs, that it writes those files.
 */
export type ToolRunInput = ToolCallInput & { sandboxed: boolean; userApproved: boolean; approvedKey?: string | undefined; answer?: ToolOutput | undefined };

export type ToolCallEvent = { type: 'APPROVAL'; decision: ReviewDecision } | { type: 'CLIENT_OUTPUT'; output: ToolOutput };

/** What a call tells its turn. */
export type ToolCallParentEvent =
  | { type: 'CALL.AWAITING_APPROVAL'; callId: string }
  /** A client tool's call waits for the client's `client_tool_output`. */
  | { type: 'CALL.AWAITING_CLIENT'; callId: string }
  | { type: 'CALL.DONE'; callId: string; output: ToolOutput }
  /** The user answered `abort`: the call is denied and its turn must stop. */
  | { type: 'CALL.ABORT_TURN'; callId: string; output: ToolOutput };

export const DENIED_OUTPUT = 'The user denied this request. Do not retry it as is; continue without it or ask the user.';

function approvalRequestEvent(ctx: ToolCallContext, request: ApprovalRequest): EventMsg {
  if (request.type === 'exec') {
    return {
      type: 'exec_approval_request',
      call_id: ctx.callId,
      turn_id: ctx.turnId,
      command: [...request.command],
      cwd: request.cwd,
      ...(request.reason !== undefined ? { reason: request.reason } : {}),
    };
  }
  if (request.type === 'tool') {
    return {
      type: 'tool_approval_request',
      call_id: ctx.callId,
      turn_id: ctx.turnId,
      tool: request.tool,
      arguments: request.arguments,
      ...(request.reason !== undefined ? { reason: request.reason } : {}),
    };
  }
  return {
    type: 'apply_patch_approval_request',
    call_id: ctx.callId,
    turn_id: ctx.turnId,
    changes: request.changes,
    ...(request.reason !== undefined ? { reason: request.reason } : {}),
  };
}

const notProvided = (what: string) => () => {
  throw new Error(`ToolCallMachine: ${what} was not provided`);
};

export const toolCallMachine = setup({
  types: {
    input: {} as ToolCallInput,
    context: {} as ToolCallContext,
    events: {} as ToolCallEvent,
    output: {} as { callId: string; output: ToolOutput },
  },
  actors: {
    plan: fromPromise<ToolPlan, ToolCallInput>(notProvided('plan')),
    execute: fromPromise<ToolOutput, ToolRunInput>(notProvided('execute')),
  },
  actions: {
    /** Put a protocol event on the session's stream. */
    emitEvent: (_, _params: { msg: EventMsg }) => notProvided('emitEvent')(),
    /** Remember an `approved_for_session` decision for the whole session tree. */
    rememberApproval: (_, _params: { key: string }) => notProvided('rememberApproval')(),
    /** Wait for approval again, now to run the blocked command outside the sandbox. */
    askToEscalate: assign({
      approved: false,
      plan: (_, output: ToolOutput) => {
        const escalate = output.escalate!;
        return { kind: 'ask' as const, request: escalate.request, sandboxedAfterApproval: false, approvalKey: escalate.approvalKey };
      },
    }),
  },
  guards: {
    planIs: ({ context }, kind: ToolPlan['kind']) => context.plan?.kind === kind,
    decisionIs: ({ event }, decision: ReviewDecision) => event.type === 'APPROVAL' && event.decision === decision,
    escalates: (_, output: ToolOutput) => output.escalate !== undefined,
  },
}).createMachine({
  id: 'toolCall',
  context: ({ input }) => ({ ...input, plan: null, approved: false, output: null, answer: null }),
  initial: 'planning',
  states: {
    planning: {
      invoke: {
        src: 'plan',
        input: ({ context }) => ({
          sessionId: context.sessionId,
          callId: context.callId,
          turnId: context.turnId,
          name: context.name,
          arguments: context.arguments,
        }),
        onDone: { target: 'routing', actions: assign({ plan: ({ event }) => event.output }) },
        onError: {
          target: 'done',
          actions: assign({ output: ({ event }) => ({ text: `could not plan this call: ${errorText(event.error)}`, success: false }) }),
        },
      },
    },
    routing: {
      always: [
        { guard: { type: 'planIs', params: 'run' }, target: 'running' },
        { guard: { type: 'planIs', params: 'ask' }, target: 'awaitingApproval' },
        { guard: { type: 'planIs', params: 'client' }, target: 'awaitingClient' },
        {
          target: 'done',
          actions: [
            assign({ output: ({ context }) => ({ text: context.plan?.kind === 'reject' ? context.plan.reason : 'rejected', success: false }) }),
            {
              type: 'emitEvent',
              params: ({ context }) => ({
                msg: {
                  type: 'tool_call_refused',
                  call_id: context.callId,
                  turn_id: context.turnId,
                  tool: context.name,
                  by: 'policy',
                  reason: context.output?.text ?? 'rejected',
                },
              }),
            },
          ],
        },
      ],
    },
    /** The approval waiter: an explicit state of this call's own actor (DESIGN.md). */
    awaitingApproval: {
      entry: [
        {
          type: 'emitEvent',
          params: ({ context }) => ({ msg: approvalRequestEvent(context, (context.plan as Extract<ToolPlan, { kind: 'ask' }>).request) }),
        },
        sendParent(({ context }) => ({ type: 'CALL.AWAITING_APPROVAL', callId: context.callId })),
      ],
      on: {
        APPROVAL: [
          { guard: { type: 'decisionIs', params: 'approved' }, target: 'running', actions: assign({ approved: true }) },
          {
            guard: { type: 'decisionIs', params: 'approved_for_session' },
            target: 'running',
            actions: [
              assign({ approved: true }),
              {
                type: 'rememberApproval',
                params: ({ context }) => ({ key: (context.plan as Extract<ToolPlan, { kind: 'ask' }>).approvalKey }),
              },
            ],
          },
          { guard: { type: 'decisionIs', params: 'denied' }, target: 'done', actions: assign({ output: { text: DENIED_OUTPUT, success: false } }) },
          {
            target: 'done',
            actions: [
              assign({ output: { text: DENIED_OUTPUT, success: false } }),
              sendParent(({ context }) => ({ type: 'CALL.ABORT_TURN', callId: context.callId, output: { text: DENIED_OUTPUT, success: false } })),
            ],
          },
        ],
      },
    },
    /**
     * The client tool waiter: the call is announced and waits for the client's answer, which then
     * goes through `execute` like any output (so it is journaled). An interrupt stops this actor;
     * the turn gives the call the aborted output.
     */
    awaitingClient: {
      entry: [
        {
          type: 'emitEvent',
          params: ({ context }) => ({
            msg: {
              type: 'client_tool_call',
              call_id: context.callId,
              turn_id: context.turnId,
              name: context.name,
              arguments: (context.plan as Extract<ToolPlan, { kind: 'client' }>).arguments,
            },
          }),
        },
        sendParent(({ context }) => ({ type: 'CALL.AWAITING_CLIENT', callId: context.callId })),
      ],
      on: {
        CLIENT_OUTPUT: { target: 'running', actions: assign({ answer: ({ event }) => event.output }) },
      },
    },
    running: {
      invoke: {
        src: 'execute',
        input: ({ context }) => ({
          sessionId: context.sessionId,
          callId: context.callId,
          turnId: context.turnId,
          name: context.name,
          arguments: context.arguments,
          ...runMode(context),
          ...(context.answer ? { answer: context.answer } : {}),
        }),
        onDone: [
          // The sandbox blocked the command and the policy lets us ask to run it outside.
          {
            guard: { type: 'escalates', params: ({ event }) => event.output },
            target: 'awaitingApproval',
            actions: { type: 'askToEscalate', params: ({ event }) => event.output },
          },
          { target: 'done', actions: assign({ output: ({ event }) => event.output }) },
        ],
        onError: { target: 'done', actions: assign({ output: ({ event }) => ({ text: errorText(event.error), success: false }) }) },
      },
    },
    done: {
      type: 'final',
      entry: sendParent(({ context }) => ({
        type: 'CALL.DONE',
        callId: context.callId,
        output: context.output ?? { text: 'no output', success: false },
      })),
    },
  },
  output: ({ context }) => ({ callId: context.callId, output: context.output ?? { text: 'no output', success: false } }),
});

/** How to run: as planned, or, once the user approved the plan's request, as it asked. */
function runMode(context: ToolCallContext): { sandboxed: boolean; userApproved: boolean; approvedKey?: string } {
  const plan = context.plan;
  if (context.approved && plan?.kind === 'ask') return { sandboxed: plan.sandboxedAfterApproval, userApproved: true, approvedKey: plan.approvalKey };
  if (plan?.kind === 'run')
    return { sandboxed: plan.sandboxed, userApproved: false, ...(plan.approvedKey !== undefined ? { approvedKey: plan.approvedKey } : {}) };
  return { sandboxed: true, userApproved: false };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
