import type { ResponseItem } from '../../protocol/index.js';
import { isSummaryBridge, isUserTurnStart } from './user-turns.js';

export interface RollbackResult {
  readonly history: ResponseItem[];
  /** Turns actually dropped: at most the number asked for, fewer when there are not as many. */
  readonly dropped: number;
}

/**
 * The history without its last `n` user turns. A turn is a message the user typed and
 * everything after it up to the next one (the model's answers, tool calls and outputs, and
 * context injected meanwhile, such as review findings or user shell records). Asking for more
 * turns than there are drops them all and keeps what precedes the first: the initial context.
 *
 * A compaction is a floor: turns before the latest summary bridge live on only inside that
 * summary, so they cannot be dropped one by one, and the summary itself is never removed.
 * Right after a compaction there is nothing to roll back (`dropped: 0`).
 */
export function dropLastUserTurns(history: readonly ResponseItem[], n: number): RollbackResult {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`the number of turns must be a non-negative integer, got ${n}`);
  let floor = 0;
  history.forEach((item, index) => {
    if (isSummaryBridge(item)) floor = index + 1;
  });
  const starts: number[] = [];
  for (let index = floor; index < history.length; index += 1) {
    if (isUserTurnStart(history[index]!)) starts.push(index);
  }
  const dropped = Math.min(n, starts.length);
  if (dropped === 0) return { history: [...history], dropped: 0 };
  return { history: history.slice(0, starts[starts.length - dropped]), dropped };
}
