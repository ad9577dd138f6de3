import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { EventMsg, ResponseItem, ReviewTarget } from '../../protocol/index.js';
import type { TaskInput } from '../../machines/session.js';
import { buildTurnContext, shellEnvironmentPolicyConfig, type SessionSettings, type TurnContext } from '../../machines/turn-context.js';
import { runChildTurn, type ChildTurnResult } from '../agents/child-session.js';
import type { Bus } from '../bus/bus.js';
import { deleteSnapshot, listSnapshots, NotAGitRepoError, restoreSnapshot, takeSnapshot } from '../git/index.js';
import type { ModelClient } from '../model/types.js';
import {
  approxItemsTokens,
  buildCompactedHistory,
  dropLastUserTurns,
  keepTurnItems,
  formatReviewOutput,
  initialContextOf,
  parseReviewOutput,
  resolveReviewTarget,
  REVIEW_INSTRUCTIONS,
  REVIEW_OUTPUT_JSON_SCHEMA,
  reviewFindingsMessage,
  ReviewTargetError,
  SUMMARY_PROMPT,
  trimForSummarization,
  undoNoticeMessage,
  userShellRecord,
} from '../tasks/index.js';
import { runShell } from '../tools/handlers/shell.js';
import type { ToolContext } from '../tools/tool.js';

/** What the tasks need of their session. */
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
}

/** Snapshots kept per session for `undo`; older ones are deleted as new turns start. */
const KEPT_SNAPSHOTS = 20;
/** Real user messages kept, verbatim or shortened, in a compacted history. */
const USER_MESSAGE_TOKEN_BUDGET = 20_000;
/** Of the current turn's calls and outputs, at most this much (or half the limit) survives a compaction. */
const TURN_ITEMS_TOKEN_BUDGET = 20_000;
const AUTO_COMPACT_FRACTION = 0.9;

export class CompactionError extends Error {
  override readonly name = 'CompactionError';
}

/**
 * The tasks a session runs besides regular turns: review, compaction (manual and automatic),
 * undo and its snapshots, rollback, and commands the user runs. Review and compaction each run
 * in a child session placed through the bus; the rest happen here.
 */
export class SessionTasks {
  readonly #host: TaskHost;

  constructor(host: TaskHost) {
    this.#host = host;
  }

  async review({ request, settings }: TaskInput, signal: AbortSignal): Promise<void> {
    if (request.type !== 'REVIEW') return;
    const id = request.submissionId;
    const host = this.#host;
    let resolved;
    try {
      resolved = await resolveReviewTarget(settings.cwd, request.target);
    } catch (error) {
      if (!(error instanceof ReviewTargetError)) throw error;
      host.emit(id, { type: 'error', code: 'bad_request', message: `cannot review: ${error.message}` });
      return;
    }
    const hint = request.hint ?? resolved.user_facing_hint;
    host.emit(id, { type: 'task_started', turn_id: id, model_context_window: host.model.contextWindow(settings.review_model ?? settings.model) });
    host.emit(id, { type: 'entered_review_mode', target: request.target, user_facing_hint: hint });
    let result: ChildTurnResult;
    try {
      result = await runChildTurn({
        ...this.#childBase(id, signal),
        purpose: 'review',
        config: {
          model: settings.review_model ?? settings.model,
          cwd: settings.cwd,
          approval_policy: 'never',
          sandbox_policy: 'read-only',
          base_instructions: REVIEW_INSTRUCTIONS,
          shell_environment_policy: shellEnvironmentPolicyConfig(settings.shell_environment_policy),
        },
        prompt: resolved.prompt_context,
        outputSchema: REVIEW_OUTPUT_JSON_SCHEMA,
      });
    } catch (error) {
      host.emit(id, { type: 'error', code: 'internal', message: `the review could not start: ${(error as Error).message}` });
      host.emit(id, { type: 'exited_review_mode', review_output: null });
      host.emit(id, { type: 'task_complete', turn_id: id, last_agent_message: null });
      return;
    }
    if (result.aborted) {
      host.emit(id, { type: 'exited_review_mode', review_output: null });
      host.emit(id, { type: 'turn_aborted', turn_id: id, reason: 'interrupted' });
      return;
    }
    if (result.lastMessage === null) {
      if (result.error) host.emit(id, { type: 'error', code: result.error.code, message: `the review failed: ${result.error.message}` });
      host.emit(id, { type: 'exited_review_mode', review_output: null });
      host.emit(id, { type: 'task_complete', turn_id: id, last_agent_message: null });
      return;
    }
    const output = parseReviewOutput(result.lastMessage);
    host.emit(id, { type: 'exited_review_mode', review_output: output });
    // The parent keeps the findings, not the reviewer's exploration.
    host.record(reviewFindingsMessage(output, { hint: hintOf(request.target, hint) }));
    host.emit(id, { type: 'task_complete', turn_id: id, last_agent_message: formatReviewOutput(output) });
  }

  async compact({ request, settings }: TaskInput, signal: AbortSignal): Promise<void> {
    const id = request.submissionId;
    this.#host.emit(id, { type: 'task_started', turn_id: id, model_context_window: this.#host.model.contextWindow(settings.model) });
    try {
      await this.#compactHistory(id, settings, signal);
    } catch (error) {
      if (signal.aborted) {
        this.#host.emit(id, { type: 'turn_aborted', turn_id: id, reason: 'interrupted' });
        return;
      }
      this.#host.emit(id, { type: 'error', code: 'internal', message: (error as Error).message });
    }
    this.#host.emit(id, { type: 'task_complete', turn_id: id, last_agent_message: null });
  }

  /** Asked before each sampling request: has the history grown past the auto-compaction limit? */
  wantsCompaction(turn: TurnContext): boolean {
    const limit = this.#autoCompactLimit(turn);
    return limit !== null && this.#host.tokensInUse() >= limit;
  }

  /**
   * Compact during turn `turnId` (before its first request or between two), because the
   * history has grown past the limit. The turn goes on after the summary with its own input
   * and, as far as they fit, its calls and outputs so far.
   */
  autoCompact(turnId: string, turn: TurnContext, signal: AbortSignal): Promise<void> {
    const limit = this.#autoCompactLimit(turn);
    const budget = limit === null ? TURN_ITEMS_TOKEN_BUDGET : Math.min(TURN_ITEMS_TOKEN_BUDGET, Math.floor(limit / 2));
    return this.#compactHistory(turnId, turn, signal, { turnId, budget });
  }

  /**
   * Summarize the history in a child session and replace it with the compacted history. Items
   * recorded while the summary was being made (a turn's input, recorded as the turn begins)
   * are kept after it, as is the current turn when there is one.
   */
  async #compactHistory(id: string, settings: SessionSettings, signal: AbortSignal, turn?: { turnId: string; budget: number }): Promise<void> {
    const host = this.#host;
    const history = host.history();
    let sent: readonly ResponseItem[] = history;
    let summary: string | null = null;
    for (;;) {
      const result = await runChildTurn({
        ...this.#childBase(id, signal),
        purpose: 'compact',
        config: {
          model: settings.model,
          cwd: settings.cwd,
          approval_policy: 'never',
          sandbox_policy: 'read-only',
          base_instructions: settings.base_instructions,
          shell_environment_policy: shellEnvironmentPolicyConfig(settings.shell_environment_policy),
        },
        initialHistory: sent,
        prompt: SUMMARY_PROMPT,
      });
      if (result.aborted) throw new CompactionError('compaction was interrupted');
      if (result.lastMessage) {
        summary = result.lastMessage;
        break;
      }
      if (result.error?.code !== 'context_window_exceeded') {
        throw new CompactionError(`the summary could not be made: ${result.error?.message ?? 'the model gave no answer'}`);
      }
      // Too big even to summarize: drop the oldest items and try again, until nothing is left to drop.
      const trimmed = trimForSummarization(sent, Math.floor(approxItemsTokens(sent) * 0.75));
      if (trimmed.dropped === 0) throw new CompactionError('the history is too large to summarize, even with the oldest items dropped');
      sent = trimmed.items;
    }
    const now = host.history();
    const untouched = history.length === 0 || now[history.length - 1] === history[history.length - 1];
    const since = untouched ? now.slice(history.length) : [];
    const start = turn === undefined ? undefined : host.turnStart(turn.turnId);
    const before = start === undefined ? history : history.slice(0, start);
    const past = buildCompactedHistory({
      initialContext: initialContextOf(history),
      history: before,
      summary,
      userMessageTokenBudget: USER_MESSAGE_TOKEN_BUDGET,
    });
    const ofTurn = turn !== undefined && start !== undefined ? keepTurnItems(history.slice(start), turn.budget) : [];
    const compacted = [...past, ...ofTurn, ...since];
    host.replaceHistory(compacted, summary, turn && { turnId: turn.turnId, index: past.length });
    host.setTokensInUse(approxItemsTokens(compacted));
    host.emit(id, { type: 'context_compacted' });
  }

  /**
   * Whether a turn takes an undo snapshot: not when it cannot change files, not in sub-agents
   * (they share their root's working tree, and undo belongs to the root), and not outside a
   * repository (which would otherwise cost starting git to learn).
   */
  wantsSnapshot(turn: TurnContext): boolean {
    return turn.sandbox_policy.mode !== 'read-only' && this.#host.depth === 0 && insideGitRepo(turn.cwd);
  }

  /** Take the snapshot `undo` goes back to. */
  async snapshot(turn: TurnContext): Promise<void> {
    const host = this.#host;
    try {
      const snapshot = await takeSnapshot(turn.cwd, host.sessionId);
      if (snapshot.skipped.length > 0) {
        const list = snapshot.skipped.map((s) => `${s.path} (${s.reason.replace('_', ' ')})`).join(', ');
        host.emit(turn.turn_id, { type: 'warning', message: `undo will not cover these large or nested paths: ${list}` });
      }
      const all = await listSnapshots(turn.cwd, host.sessionId);
      for (const old of all.slice(0, Math.max(0, all.length - KEPT_SNAPSHOTS))) await deleteSnapshot(turn.cwd, old);
    } catch (error) {
      if (error instanceof NotAGitRepoError) return;
      host.emit(turn.turn_id, { type: 'warning', message: `no undo snapshot for this turn: ${(error as Error).message}` });
    }
  }

  async undo({ request, settings }: TaskInput): Promise<void> {
    const id = request.submissionId;
    const host = this.#host;
    host.emit(id, { type: 'undo_started' });
    try {
      const snapshots = await listSnapshots(settings.cwd, host.sessionId);
      const last = snapshots.at(-1);
      if (!last) {
        host.emit(id, { type: 'undo_completed', success: false, message: 'there is no earlier turn to undo in this session' });
        return;
      }
      const restored = await restoreSnapshot(settings.cwd, last);
      await deleteSnapshot(settings.cwd, last);
      host.record(undoNoticeMessage());
      host.emit(id, {
        type: 'undo_completed',
        success: true,
        message: `restored ${restored.restored.length} file(s) and removed ${restored.removed.length} to the state before the last turn`,
      });
    } catch (error) {
      host.emit(id, { type: 'undo_completed', success: false, message: (error as Error).message });
    }
  }

  rollback(submissionId: string, numTurns: number): void {
    const host = this.#host;
    const { history, dropped } = dropLastUserTurns(host.history(), numTurns);
    if (dropped === 0) {
      host.emit(submissionId, { type: 'error', code: 'bad_request', message: 'thread_rollback: there is no user turn to drop' });
      return;
    }
    host.replaceHistory(history, `rolled back ${dropped} turn(s)`);
    host.setTokensInUse(approxItemsTokens(history));
    host.emit(submissionId, { type: 'thread_rolled_back', num_turns: dropped });
  }

  /** A command the user typed: it runs with the user's rights, and the model sees it next turn. */
  async userShell({ request, settings }: TaskInput, signal: AbortSignal): Promise<void> {
    if (request.type !== 'USER_SHELL') return;
    const id = request.submissionId;
    const turn = buildTurnContext(settings, id, {});
    const base = this.#host.toolContext(id, turn, signal);
    let end: Extract<EventMsg, { type: 'exec_command_end' }> | null = null;
    const ctx: ToolContext = {
      ...base,
      emit: (msg) => {
        if (msg.type === 'exec_command_end') end = msg;
        base.emit(msg);
      },
    };
    // The user's own command: their whole environment, not the one the model's commands get.
    await runShell({ command: [process.env.SHELL ?? '/bin/sh', '-lc', request.command], timeout_ms: 600_000 }, ctx, { sandboxed: false, userApproved: true }, process.env);
    const finished = end as Extract<EventMsg, { type: 'exec_command_end' }> | null;
    this.#host.record(
      ...userShellRecord(request.command, {
        exitCode: finished?.exit_code ?? null,
        output: finished?.aggregated_output ?? '',
        durationMs: finished?.duration_ms,
        cwd: settings.cwd,
      }),
    );
  }

  #childBase(submissionId: string, signal: AbortSignal) {
    const host = this.#host;
    return {
      bus: host.bus,
      namespace: host.namespace,
      parentSessionId: host.sessionId,
      rootId: host.rootId,
      depth: host.depth + 1,
      submissionId,
      signal,
    };
  }

  #autoCompactLimit(turn: TurnContext): number | null {
    if (turn.auto_compact_token_limit !== undefined) return turn.auto_compact_token_limit;
    const window = this.#host.model.contextWindow(turn.model);
    return window === null ? null : Math.floor(window * AUTO_COMPACT_FRACTION);
  }
}

/**
 * True when `dir` or one of its parents holds a `.git` (a directory, or a file for worktrees).
 * This runs before every turn and the answer is usually "no" at every level: a synchronous stat
 * that returns nothing for a missing path costs microseconds, where each failed async stat
 * builds an Error with a stack trace.
 */
function insideGitRepo(dir: string): boolean {
  for (let current = resolve(dir); ; current = dirname(current)) {
    if (statSync(join(current, '.git'), { throwIfNoEntry: false }) !== undefined) return true;
    if (dirname(current) === current) return false;
  }
}

function hintOf(target: ReviewTarget, hint: string): string {
  return hint || target.type;
}

