import type { TaskInput, TaskRequest } from '../../../machines/session.js';
import type { TaskOutput } from '../../../machines/task.js';
import { shellEnvironmentPolicyConfig, type SessionSettings, type TurnContext } from '../../../machines/turn-context.js';
import { runChildTurn } from '../../agents/child-session.js';
import { initialContextOf } from '../user-turns.js';
import { childOf, completed, FAILED, INTERRUPTED, type Task, type TaskHost } from '../task.js';
import { buildCompactedHistory, keepTurnItems } from './history.js';
import { SUMMARY_PROMPT } from './prompt.js';
import { approxItemsTokens, trimForSummarization } from './trim.js';
import { errorEvent, TroupeError, type ResponseItem } from '../../../protocol/index.js';

type CompactRequest = Extract<TaskRequest, { type: 'COMPACT' }>;

/** Real user messages kept, verbatim or shortened, in a compacted history. */
const USER_MESSAGE_TOKEN_BUDGET = 20_000;
/** Of the current turn's calls and outputs, at most this much (or half the limit) survives a compaction. */
const TURN_ITEMS_TOKEN_BUDGET = 20_000;
const AUTO_COMPACT_FRACTION = 0.9;

class CompactionError extends TroupeError {
  override readonly name = 'CompactionError';
}

/**
 * `compact`, and the automatic compaction a turn runs before a request once the history has
 * grown past its limit. A child session with no tools summarizes a copy of the history; the
 * history is replaced by the initial context, the user's recent messages and the summary.
 */
export class CompactTask implements Task<CompactRequest> {
  readonly #host: TaskHost;

  constructor(host: TaskHost) {
    this.#host = host;
  }

  async run({ request, settings }: TaskInput<CompactRequest>, signal: AbortSignal): Promise<TaskOutput> {
    const id = request.submissionId;
    try {
      await this.#compactHistory(id, settings, signal);
      return completed();
    } catch (error) {
      if (signal.aborted) return INTERRUPTED;
      this.#host.emit(id, errorEvent(error));
      return FAILED;
    }
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
        ...childOf(host, id, signal),
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

  #autoCompactLimit(turn: TurnContext): number | null {
    if (turn.auto_compact_token_limit !== undefined) return turn.auto_compact_token_limit;
    const window = this.#host.model.contextWindow(turn.model);
    return window === null ? null : Math.floor(window * AUTO_COMPACT_FRACTION);
  }
}
