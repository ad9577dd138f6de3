import type { EventMsg, RateLimitSnapshot, ResponseItem, TokenUsage } from '../protocol/index.js';
import type { TaskInput } from './session.js';
import type { TaskOutput } from './task.js';
import type { ToolCallInput, ToolRunInput } from './tool-call.js';
import type { ToolOutput, ToolPlan } from './tool-plan.js';
import type { ModelFailure, TurnEvent, TurnStep } from './turn.js';
import type { TurnContext } from './turn-context.js';

/**
 * The port of the machines: what one session does for the actions, actors and guards the three
 * statecharts declare by name. The machines define it and do no IO; actors/ implements it for
 * each session (actors/host/session-port.ts) and binds it to the machines once per host
 * (actors/host/session-logic.ts). Each method is named after what it implements.
 */

/** Every machine emits events on its session's stream. */
export interface EventPort {
  emit(id: string | null, msg: EventMsg): void;
}

/** ToolCallMachine (tool-call.ts). */
export interface ToolCallPort extends EventPort {
  plan(input: ToolCallInput): Promise<ToolPlan>;
  execute(input: ToolRunInput, signal: AbortSignal): Promise<ToolOutput>;
  rememberApproval(key: string): void;
}

/** TurnMachine (turn.ts). */
export interface TurnPort extends EventPort {
  sample(step: TurnStep & { attempt: number }, sendBack: (event: TurnEvent) => void): () => void;
  wantsSnapshot(turn: TurnContext): boolean;
  /**
   * Start the turn's undo snapshot without waiting for it: `execute` (ToolCallPort) and the
   * session's other tasks wait until it has settled, the model request does not.
   */
  startSnapshot(step: TurnStep): void;
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
}

/** SessionMachine (session.ts). */
export interface SessionMachinePort extends EventPort {
  /** `task_started` for task `id`, with the context window of `model`. */
  startTask(id: string, model: string): void;
  /** Run a task other than a turn (review, compaction, undo, a user's command) to its end. */
  runTask(input: TaskInput, signal: AbortSignal): Promise<TaskOutput>;
  rollback(submissionId: string, numTurns: number): void;
  close(): Promise<void>;
}

/** The whole port of one session. */
export interface SessionPort extends ToolCallPort, TurnPort, SessionMachinePort {}
