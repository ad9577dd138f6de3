import type { ResponseItem } from '../../../protocol/index.js';
import { initialContextOf } from '../user-turns.js';
import { approxTokens } from './tokens.js';

export interface TrimResult {
  /** The history to send, oldest items removed. */
  readonly items: ResponseItem[];
  /** How many items were removed by this call. */
  readonly dropped: number;
  /** Whether `items` is now within the limit (by the approximate count). */
  readonly fits: boolean;
}

/** Approximate tokens of items as they are serialized for a request. */
export function approxItemsTokens(items: readonly ResponseItem[]): number {
  return items.reduce((sum, item) => sum + approxTokens(JSON.stringify(item)), 0);
}

/**
 * Shrinks a history that is too large to be summarized, by dropping its oldest items until
 * the approximate count is at most `maxTokens`. The initial context (instructions,
 * environment) is kept; a function call and its output are always dropped together, so the
 * result still has exactly one output per call.
 *
 * Retry contract, so a compaction can never loop forever: send `items` (plus the summary
 * prompt); if the provider still says the context window is exceeded, call again on the
 * result with a limit strictly below what was just sent (e.g. 3/4 of `approxItemsTokens` of
 * it). Each call either drops at least one item or returns `dropped: 0`, and `dropped: 0`
 * (nothing left that may be dropped) means give up and report the error. So there are at most
 * as many retries as there are items.
 */
export function trimForSummarization(items: readonly ResponseItem[], maxTokens: number): TrimResult {
  const sizes = items.map((item) => approxTokens(JSON.stringify(item)));
  let total = sizes.reduce((a, b) => a + b, 0);
  const removed = new Set<number>();
  const keepFrom = initialContextOf(items).length;

  for (let i = keepFrom; i < items.length && total > maxTokens; i += 1) {
    if (removed.has(i)) continue;
    const item = items[i]!;
    const group = [i];
    if (item.type === 'function_call') {
      for (let j = i + 1; j < items.length; j += 1) {
        const other = items[j]!;
        if (other.type === 'function_call_output' && other.call_id === item.call_id) group.push(j);
      }
    }
    for (const index of group) {
      removed.add(index);
      total -= sizes[index]!;
    }
  }
  return {
    items: items.filter((_, index) => !removed.has(index)),
    dropped: removed.size,
    fits: total <= maxTokens,
  };
}
