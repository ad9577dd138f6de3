import type { ResponseItem } from '../../../protocol/index.js';
import { isUserTurnStart, messageText } from '../user-turns.js';
import { summaryBridgeMessage } from './prompt.js';
import { approxTokens, truncateMiddleToTokens } from './tokens.js';

/** How much of the compacted history the user's own recent words may take, by default. */
export const DEFAULT_USER_MESSAGE_TOKEN_BUDGET = 20_000;

export interface CompactedHistoryInput {
  /**
   * What the new history starts with: the session's developer instructions and environment
   * context. Pass the current ones (not those at the start of the old history) if the settings
   * changed since the session started.
   */
  readonly initialContext: readonly ResponseItem[];
  /** The history being compacted. */
  readonly history: readonly ResponseItem[];
  /** The model's handoff summary of that history. */
  readonly summary: string;
  /** Budget for the kept user messages, in approximate tokens (see approxTokens). */
  readonly userMessageTokenBudget: number;
}

/**
 * The history that replaces `history` after a compaction: the initial context, then the most
 * recent messages the user typed, then the summary bridge.
 *
 * User messages are taken newest first while they fit the budget whole; the first one that
 * does not fit (necessarily a long one) is cut in the middle to what is left of the budget,
 * and older ones are left to the summary. They keep their original order and only their text
 * (images are dropped: the summary carries what they showed). Injected user-role messages,
 * earlier summary bridges included, are not kept: the new summary was written from them.
 */
export function buildCompactedHistory(input: CompactedHistoryInput): ResponseItem[] {
  const texts = input.history.filter(isUserTurnStart).map(messageText);
  const kept: string[] = [];
  let remaining = Math.max(0, Math.floor(input.userMessageTokenBudget));
  for (let i = texts.length - 1; i >= 0; i -= 1) {
    const text = texts[i]!;
    const tokens = approxTokens(text);
    if (tokens <= remaining) {
      kept.push(text);
      remaining -= tokens;
      continue;
    }
    const cut = truncateMiddleToTokens(text, remaining);
    if (cut !== null) kept.push(cut);
    break;
  }
  kept.reverse();
  return [
    ...input.initialContext,
    ...kept.map((text): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })),
    summaryBridgeMessage(input.summary),
  ];
}

/** The text of the model's last assistant message in `items` (the summary a fork produced). */
export function lastAssistantText(items: readonly ResponseItem[]): string {
  for (let i = items.length - 1; i >= 0; i -= 1) {
    const item = items[i]!;
    if (item.type === 'message' && item.role === 'assistant') return messageText(item);
  }
  return '';
}

/**
 * What a compaction during a turn keeps of that turn, placed after the summary so the model
 * goes on from where it was: every user-role message of the turn (its input and any steering)
 * verbatim, and of the rest (calls with their outputs, messages, reasoning) the most recent
 * that fit in `tokenBudget`. A call and its output are kept or dropped together; what is
 * dropped was in the history the summary was written from.
 */
export function keepTurnItems(turnItems: readonly ResponseItem[], tokenBudget: number): ResponseItem[] {
  const outputs = new Map<string, ResponseItem>();
  for (const item of turnItems) if (item.type === 'function_call_output') outputs.set(item.call_id, item);
  // Units, in order: a user message, a call with its output, or any other item on its own.
  const units: { items: ResponseItem[]; always: boolean }[] = [];
  for (const item of turnItems) {
    if (item.type === 'function_call_output') continue;
    if (item.type === 'function_call') {
      const output = outputs.get(item.call_id);
      units.push({ items: output ? [item, output] : [item], always: false });
    } else {
      units.push({ items: [item], always: item.type === 'message' && item.role === 'user' });
    }
  }
  let remaining = Math.max(0, tokenBudget);
  const kept = new Set<number>();
  for (let i = units.length - 1; i >= 0; i -= 1) {
    const unit = units[i]!;
    if (unit.always) {
      kept.add(i);
      continue;
    }
    const tokens = approxTokens(JSON.stringify(unit.items));
    if (tokens > remaining) continue;
    remaining -= tokens;
    kept.add(i);
  }
  return units.filter((_, i) => kept.has(i)).flatMap((unit) => unit.items);
}
