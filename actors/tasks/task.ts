import type { EventMsg, ResponseItem } from '../../protocol/index.js';
import type { TaskInput, TaskRequest } from '../../machines/session.js';
import type { TaskOutput } from '../../machines/task.js';
import type { TurnContext } from '../../machines/turn-context.js';
import type { Bus } from '../../lib/bus/bus.js';
import type { ModelClient } from '../../lib/model/types.js';
import type { ToolContext } from '../tools/tool.js';

/**
 * A task other than a regular turn (review, compaction, undo, a user's shell command), one
 * file each. The SessionMachine starts it, announces it and ends it from what `run` returns
 * (machines/task.ts); the task only does its work, on the events of its own kind. It watches
 * `signal`: once that is aborted (an interrupt), it stops what it started and returns
 * `INTERRUPTED`, or finishes when it cannot stop half-way. A regular turn is the TurnMachine
 * (machines/turn.ts), under the same contract.
 */
export interface Task<R extends TaskRequest> {
  run(input: TaskInput<R>, signal: AbortSignal): Promise<TaskOutput>;
}

/** One task for each kind of request. */
export type TaskSet = { readonly [K in TaskRequest['type']]: Task<Extract<TaskRequest, { type: K }>> };

/** Run the task `input` asks for. */
export function runTask(tasks: TaskSet, input: TaskInput, signal: AbortSignal): Promise<TaskOutput> {
  const { request } = input;
  switch (request.type) {
    case 'REVIEW':
      return tasks.REVIEW.run({ ...input, request }, signal);
    case 'COMPACT':
      return tasks.COMPACT.run({ ...input, request }, signal);
    case 'UNDO':
      return tasks.UNDO.run({ ...input, request }, signal);
    case 'USER_SHELL':
      return tasks.USER_SHELL.run({ ...input, request }, signal);
  }
}

/** The task did what it was asked; `task_complete` carries `lastAgentMessage`. */
export function completed(lastAgentMessage: string | null = null): TaskOutput {
  return { status: 'completed', lastAgentMessage, abortReason: null };
}

/** The task failed and said why with an `error` event; it still ends with `task_complete`. */
export const FAILED: TaskOutput = { status: 'failed', lastAgentMessage: null, abortReason: null };

/** The task stopped because it was interrupted: it ends with `turn_aborted`. */
export const INTERRUPTED: TaskOutput = { status: 'aborted', lastAgentMessage: null, abortReason: 'interrupted' };

/** What tasks need of their session. */
export interface TaskHost {
  readonly sessionId: string;
  readonly rootId: string;
  readonly depth: number;
  readonly bus: Bus;
  readonly namespace: string;
  readonly model: ModelClient;
  emit(id: string | null, msg: EventMsg): void;
  record(...items: ResponseItem[]): void;
  /**
   * Replace the whole history and write it to the rollout as a `compacted` record. During a
   * turn, `turnStart` says where that turn's items now begin.
   */
  replaceHistory(items: readonly ResponseItem[], note: string, turnStart?: { turnId: string; index: number }): void;
  history(): readonly ResponseItem[];
  /** Where turn `turnId` begins in the history (its first item), once it has begun. */
  turnStart(turnId: string): number | undefined;
  /** Tokens the conversation used in its last request (the provider's count). */
  tokensInUse(): number;
  setTokensInUse(tokens: number): void;
  /** A ToolContext for work the session does itself (the user's shell commands). */
  toolContext(callId: string, turn: TurnContext, signal: AbortSignal): ToolContext;
  /** The trace context a child session placed by task `id` is started under (telemetry on only). */
  readonly traceparent?: ((id: string) => string | undefined) | undefined;
}

/** How review and compaction place their child session: under this session, for submission `id`. */
export function childOf(host: TaskHost, id: string, signal: AbortSignal) {
  return {
    bus: host.bus,
    namespace: host.namespace,
    parentSessionId: host.sessionId,
    rootId: host.rootId,
    depth: host.depth + 1,
    submissionId: id,
    signal,
    traceparent: host.traceparent?.(id),
  };
}
