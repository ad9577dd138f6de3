import { errorEvent, TroupeError, type EventMsg, type RateLimitSnapshot, type ResponseItem, type TokenUsage } from '../../protocol/index.js';
import type { ToolOutput } from '../../machines/tool-plan.js';
import type { ModelFailure } from '../../machines/turn.js';
import type { SessionSettings, TurnContext } from '../../machines/turn-context.js';
import type { RolloutSink } from '../../lib/durable/session-durability.js';
import { abortedOutput, addUsage, ConversationHistory, emptyUsage } from '../../lib/history/conversation-history.js';
import type { ModelClient } from '../../lib/model/types.js';
import { environmentContext, environmentMessage, sameEnvironment, type EnvironmentContext } from '../../lib/prompts/environment-context.js';
import { approxItemsTokens } from '../tasks/compact/trim.js';
import { dropLastUserTurns } from '../tasks/rollback.js';
import { messageText } from '../tasks/user-turns.js';

export interface SessionStateOptions {
  readonly history: readonly ResponseItem[];
  readonly rollout: RolloutSink;
  readonly model: ModelClient;
  emit(id: string | null, msg: EventMsg): void;
}

/**
 * What a session knows besides its settings (which the SessionMachine holds): the history and
 * its rollout, the turn under way, and what the model has used. This is the only writer of the
 * session's history: every item goes to the history and the rollout together.
 */
export class SessionState {
  readonly #history: ConversationHistory;
  readonly #rollout: RolloutSink;
  readonly #model: ModelClient;
  readonly #emit: SessionStateOptions['emit'];
  /** Turn contexts by turn id, so tool calls can find the context of the turn they belong to. */
  readonly #turnContexts = new Map<string, TurnContext>();
  /** Where the latest turn's items begin in the history (what a compaction during it keeps). */
  #turnStart: { turnId: string; index: number } | undefined;
  #lastEnvironment: EnvironmentContext | null = null;
  /** Tokens of the last request, as the provider counted them: what auto-compaction watches. */
  #tokensInUse = 0;
  #totalUsage: TokenUsage = emptyUsage();
  #rateLimits: RateLimitSnapshot | null = null;

  constructor(options: SessionStateOptions) {
    this.#history = new ConversationHistory(options.history);
    this.#rollout = options.rollout;
    this.#model = options.model;
    this.#emit = options.emit;
  }

  get length(): number {
    return this.#history.length;
  }

  items(): readonly ResponseItem[] {
    return this.#history.items();
  }

  /** The history as the next request sends it, repaired where it must be (see ConversationHistory). */
  forPrompt(onRepair: (detail: string) => void): ResponseItem[] {
    return this.#history.forPrompt(onRepair);
  }

  /** Add items to the history and the rollout, in that order, as one step. */
  record(...items: ResponseItem[]): void {
    this.#history.record(...items);
    this.#rollout.record(...items.map((payload) => ({ type: 'response_item' as const, payload })));
  }

  /** Replace the whole history, written to the rollout as a `compacted` record; during a turn, `turnStart` moves. */
  replaceHistory(items: readonly ResponseItem[], note: string, turnStart?: { turnId: string; index: number }): void {
    this.#history.replace(items);
    if (turnStart !== undefined) this.#turnStart = turnStart;
    this.#rollout.record({ type: 'compacted', payload: { message: note, replacement_history: [...items] } });
  }

  /** The environment message, recorded when it differs from the last one the model was told. */
  announceEnvironment(settings: SessionSettings): void {
    const env = environmentContext(settings);
    if (sameEnvironment(this.#lastEnvironment, env)) return;
    this.#lastEnvironment = env;
    this.record(environmentMessage(env));
  }

  /** A turn begins: what earlier turns kept is dropped, its context and user input are recorded. */
  beginTurn(turnId: string, turn: TurnContext, input: readonly ResponseItem[]): void {
    this.#turnContexts.clear();
    this.#turnContexts.set(turnId, turn);
    this.#turnStart = { turnId, index: this.#history.length };
    this.#rollout.record({
      type: 'turn_context',
      payload: {
        turn_id: turnId,
        cwd: turn.cwd,
        model: turn.model,
        approval_policy: turn.approval_policy,
        sandbox_policy: turn.sandbox_policy,
        ...(turn.effort ? { effort: turn.effort } : {}),
      },
    });
    this.announceEnvironment(turn);
    this.recordInput(turnId, [...input]);
  }

  /** Remember the context of a turn that began elsewhere (a session adopted from another worker). */
  rememberTurn(turnId: string, turn: TurnContext): void {
    this.#turnContexts.set(turnId, turn);
  }

  turnContext(turnId: string): TurnContext | undefined {
    return this.#turnContexts.get(turnId);
  }

  /** Where turn `turnId` begins in the history, once it has begun. */
  turnStart(turnId: string): number | undefined {
    return this.#turnStart?.turnId === turnId ? this.#turnStart.index : undefined;
  }

  /** User input (a turn's, or steering): recorded, and each user message announced. */
  recordInput(turnId: string, items: ResponseItem[]): void {
    this.record(...items);
    for (const item of items) {
      if (item.type === 'message' && item.role === 'user') this.#emit(turnId, { type: 'user_message', message: messageText(item) });
    }
  }

  /** One finished model item: recorded, and announced when it is a message or reasoning. */
  recordItem(turnId: string, item: ResponseItem): void {
    this.record(item);
    if (item.type === 'message' && item.role === 'assistant') {
      this.#emit(turnId, { type: 'agent_message', message: messageText(item) });
    } else if (item.type === 'reasoning') {
      const text = item.summary.map((s) => s.text).join('\n');
      if (text) this.#emit(turnId, { type: 'agent_reasoning', text });
    }
  }

  recordOutputs(outputs: { callId: string; output: ToolOutput }[]): void {
    this.record(...outputs.map(({ callId, output }) => ({ type: 'function_call_output' as const, call_id: callId, output: output.text })));
  }

  recordAborted(callIds: string[]): void {
    this.record(...callIds.map(abortedOutput));
  }

  /** Tokens the conversation used in its last request (the provider's count). */
  get tokensInUse(): number {
    return this.#tokensInUse;
  }

  set tokensInUse(tokens: number) {
    this.#tokensInUse = tokens;
  }

  accountUsage(turnId: string, turn: TurnContext, usage: TokenUsage | null): void {
    if (usage) {
      this.#totalUsage = addUsage(this.#totalUsage, usage);
      this.#tokensInUse = usage.total_tokens;
    }
    this.#emit(turnId, this.#tokenCount(usage ?? emptyUsage(), turn.model));
  }

  rememberRateLimits(snapshot: RateLimitSnapshot): void {
    this.#rateLimits = snapshot;
  }

  reportFailure(turnId: string, turn: TurnContext, failure: ModelFailure): void {
    this.#emit(turnId, errorEvent(new TroupeError(failure.message, { code: failure.code })));
    if (failure.code === 'context_window_exceeded') {
      // Show the window as full, so a client can tell why nothing more fits.
      const window = this.#model.contextWindow(turn.model) ?? this.#totalUsage.total_tokens;
      const full: TokenUsage = { ...emptyUsage(), input_tokens: window, total_tokens: window };
      this.#totalUsage = { ...this.#totalUsage, total_tokens: Math.max(this.#totalUsage.total_tokens, window) };
      this.#emit(turnId, this.#tokenCount(full, turn.model));
    }
  }

  /** `thread_rollback`: drop the last user turns from the history (files are not touched). */
  rollback(submissionId: string, numTurns: number): void {
    const { history, dropped } = dropLastUserTurns(this.#history.items(), numTurns);
    if (dropped === 0) {
      this.#emit(submissionId, errorEvent(new TroupeError('there is no user turn to drop', { code: 'bad_request' }), 'thread_rollback'));
      return;
    }
    this.replaceHistory(history, `rolled back ${dropped} turn(s)`);
    this.#tokensInUse = approxItemsTokens(history);
    this.#emit(submissionId, { type: 'thread_rolled_back', num_turns: dropped });
  }

  #tokenCount(last: TokenUsage, model: string): EventMsg {
    return {
      type: 'token_count',
      info: { total_token_usage: this.#totalUsage, last_token_usage: last, model_context_window: this.#model.contextWindow(model) },
      rate_limits: this.#rateLimits,
    };
  }
}
