import { fromCallback, fromPromise } from 'xstate';
import type { EventMsg, RateLimitSnapshot, ResponseItem, TokenUsage } from '../../protocol/index.js';
import { sessionMachine, type TaskInput } from '../../machines/session.js';
import { toolCallMachine, type ToolCallInput } from '../../machines/tool-call.js';
import type { ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import { turnMachine, type ModelFailure, type TurnEvent, type TurnStep } from '../../machines/turn.js';
import type { TurnContext } from '../../machines/turn-context.js';

/**
 * What one session does for its machines' injected logic. Each method is named after the
 * action or actor it implements (machines/session.ts, turn.ts, tool-call.ts).
 */
export interface SessionBindings {
  emit(id: string | null, msg: EventMsg): void;
  // tool calls
  plan(input: ToolCallInput): Promise<ToolPlan>;
  execute(input: ToolCallInput & { sandboxed: boolean; userApproved: boolean }, signal: AbortSignal): Promise<ToolOutput>;
  rememberApproval(key: string): void;
  // turns
  sample(step: TurnStep & { attempt: number }, sendBack: (event: TurnEvent) => void): () => void;
  wantsSnapshot(turn: TurnContext): boolean;
  snapshot(step: TurnStep): Promise<void>;
  wantsCompaction(turn: TurnContext): boolean;
  autoCompact(step: TurnStep, signal: AbortSignal): Promise<void>;
  beginTurn(turnId: string, turn: TurnContext, input: readonly ResponseItem[]): void;
  recordItem(turnId: string, item: ResponseItem): void;
  recordOutputs(outputs: { callId: string; output: ToolOutput }[]): void;
  recordAborted(callIds: string[]): void;
  recordInput(turnId: string, items: ResponseItem[]): void;
  accountUsage(turnId: string, turn: TurnContext, usage: TokenUsage | null): void;
  rememberRateLimits(snapshot: RateLimitSnapshot): void;
  reportFailure(turnId: string, turn: TurnContext, failure: ModelFailure): void;
  interruptAgents(): void;
  // session tasks
  review(input: TaskInput, signal: AbortSignal): Promise<void>;
  compact(input: TaskInput, signal: AbortSignal): Promise<void>;
  undo(input: TaskInput): Promise<void>;
  userShell(input: TaskInput, signal: AbortSignal): Promise<void>;
  rollback(submissionId: string, numTurns: number): void;
  close(): Promise<void>;
}

/**
 * The session statechart with its logic provided, built once per host and shared by all its
 * sessions: every implementation finds its session's bindings by the session id the machines
 * carry. (Providing a machine per session would rebuild three statecharts for each one, which
 * costs memory per idle session and time per spawn.)
 */
export class SessionLogic {
  readonly #bindings = new Map<string, SessionBindings>();
  readonly machine;

  constructor() {
    const of = (sessionId: string): SessionBindings => {
      const bindings = this.#bindings.get(sessionId);
      if (!bindings) throw new Error(`session ${sessionId} has no bindings on this host`);
      return bindings;
    };
    const toolCall = toolCallMachine.provide({
      actors: {
        plan: fromPromise<ToolPlan, ToolCallInput>(({ input }) => of(input.sessionId).plan(input)),
        execute: fromPromise<ToolOutput, ToolCallInput & { sandboxed: boolean; userApproved: boolean }>(({ input, signal }) =>
          of(input.sessionId).execute(input, signal),
        ),
      },
      actions: {
        emitEvent: ({ context }, { msg }) => of(context.sessionId).emit(context.turnId, msg),
        rememberApproval: ({ context }, { key }) => of(context.sessionId).rememberApproval(key),
      },
    });
    const turn = turnMachine.provide({
      actors: {
        toolCall,
        sample: fromCallback<TurnEvent, TurnStep & { attempt: number }>(({ input, sendBack }) => of(input.sessionId).sample(input, sendBack)),
        snapshot: fromPromise<void, TurnStep>(({ input }) => of(input.sessionId).snapshot(input)),
        autoCompact: fromPromise<void, TurnStep>(({ input, signal }) => of(input.sessionId).autoCompact(input, signal)),
      },
      guards: {
        wantsSnapshot: ({ context }) => of(context.sessionId).wantsSnapshot(context.turn),
        wantsCompaction: ({ context }) => of(context.sessionId).wantsCompaction(context.turn),
      },
      actions: {
        emitEvent: ({ context }, { msg, id }) => of(context.sessionId).emit(id ?? context.turnId, msg),
        beginTurn: ({ context }, { turnId, turn, input }) => of(context.sessionId).beginTurn(turnId, turn, input),
        recordItem: ({ context }, { item }) => of(context.sessionId).recordItem(context.turnId, item),
        recordOutputs: ({ context }, { outputs }) => of(context.sessionId).recordOutputs(outputs),
        recordAborted: ({ context }, { callIds }) => of(context.sessionId).recordAborted(callIds),
        recordInput: ({ context }, { items }) => of(context.sessionId).recordInput(context.turnId, items),
        accountUsage: ({ context }, { usage }) => of(context.sessionId).accountUsage(context.turnId, context.turn, usage),
        rememberRateLimits: ({ context }, { snapshot }) => of(context.sessionId).rememberRateLimits(snapshot),
        reportFailure: ({ context }, { failure }) => of(context.sessionId).reportFailure(context.turnId, context.turn, failure),
        interruptAgents: ({ context }) => of(context.sessionId).interruptAgents(),
      },
    });
    this.machine = sessionMachine.provide({
      actors: {
        turn,
        review: fromPromise<void, TaskInput>(({ input, signal }) => of(input.sessionId).review(input, signal)),
        compact: fromPromise<void, TaskInput>(({ input, signal }) => of(input.sessionId).compact(input, signal)),
        undo: fromPromise<void, TaskInput>(({ input }) => of(input.sessionId).undo(input)),
        userShell: fromPromise<void, TaskInput>(({ input, signal }) => of(input.sessionId).userShell(input, signal)),
        close: fromPromise<void, { sessionId: string }>(({ input }) => of(input.sessionId).close()),
      },
      actions: {
        emitEvent: ({ context }, { id, msg }) => of(context.sessionId).emit(id, msg),
        rollback: ({ context }, { submissionId, numTurns }) => of(context.sessionId).rollback(submissionId, numTurns),
      },
    });
  }

  /** Serve `sessionId` with `bindings`; the returned function ends that. */
  bind(sessionId: string, bindings: SessionBindings): () => void {
    if (this.#bindings.has(sessionId)) throw new Error(`session ${sessionId} is already bound on this host`);
    this.#bindings.set(sessionId, bindings);
    return () => this.#bindings.delete(sessionId);
  }
}
