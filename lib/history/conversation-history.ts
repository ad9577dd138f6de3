import type { ResponseItem, TokenUsage } from '../../protocol/index.js';
import { frozenCopy } from '../freeze.js';

/** What a call that never finished is answered with, so the model knows it did not run to the end. */
export const ABORTED_OUTPUT = 'aborted: the turn was interrupted before this call finished';

/** The output recorded for a call that was stopped before it produced one. */
export function abortedOutput(callId: string): ResponseItem {
  return { type: 'function_call_output', call_id: callId, output: ABORTED_OUTPUT };
}

/**
 * The single owner of a session's history (DESIGN.md: history has one owner). Nothing else adds,
 * removes or rewrites items. Every request is built from `forPrompt()`, which guarantees the
 * invariant the model API requires: each function call has exactly one output after it.
 */
export class ConversationHistory {
  /** Items are frozen copies: they can be handed out without copying again. */
  #items: ResponseItem[] = [];
  /**
   * Kept as items are recorded, so that a well-formed history (the usual case) is sent without
   * rescanning it for every request: the calls still waiting for their output, and whether an
   * output ever came without a pending call (out of order, duplicated or orphaned).
   */
  #pendingCalls = new Set<string>();
  #strayOutput = false;

  constructor(initial: readonly ResponseItem[] = []) {
    this.replace(initial);
  }

  /** The raw history, as recorded. */
  items(): readonly ResponseItem[] {
    return [...this.#items];
  }

  get length(): number {
    return this.#items.length;
  }

  record(...items: ResponseItem[]): void {
    for (const item of items) this.#push(item);
  }

  /** Replace the whole history (compaction, rollback). */
  replace(items: readonly ResponseItem[]): void {
    this.#items = [];
    this.#pendingCalls.clear();
    this.#strayOutput = false;
    for (const item of items) this.#push(item);
  }

  #push(item: ResponseItem): void {
    this.#items.push(frozenCopy(item));
    if (item.type === 'function_call') this.#pendingCalls.add(item.call_id);
    else if (item.type === 'function_call_output' && !this.#pendingCalls.delete(item.call_id)) this.#strayOutput = true;
  }

  /**
   * The history as the model must see it: calls without an output get the aborted output
   * right after them, and outputs without a call are dropped. A well-behaved session never
   * needs either repair; when one happens it is a bug elsewhere, so it is reported.
   */
  forPrompt(onRepair?: (detail: string) => void): ResponseItem[] {
    if (this.#pendingCalls.size === 0 && !this.#strayOutput) return [...this.#items];
    const calls = new Set<string>();
    const outputs = new Set<string>();
    for (const item of this.#items) {
      if (item.type === 'function_call') calls.add(item.call_id);
      else if (item.type === 'function_call_output') outputs.add(item.call_id);
    }
    const seenOutputs = new Set<string>();
    const result: ResponseItem[] = [];
    for (const item of this.#items) {
      if (item.type === 'function_call_output') {
        if (!calls.has(item.call_id) || seenOutputs.has(item.call_id)) {
          onRepair?.(`dropped output without a matching call: ${item.call_id}`);
          continue;
        }
        seenOutputs.add(item.call_id);
      }
      result.push(item);
      if (item.type === 'function_call' && !outputs.has(item.call_id)) {
        onRepair?.(`call without output: ${item.call_id}`);
        result.push(abortedOutput(item.call_id));
      }
    }
    return result;
  }
}

export function emptyUsage(): TokenUsage {
  return { input_tokens: 0, cached_input_tokens: 0, output_tokens: 0, reasoning_output_tokens: 0, total_tokens: 0 };
}

export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    cached_input_tokens: a.cached_input_tokens + b.cached_input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    reasoning_output_tokens: a.reasoning_output_tokens + b.reasoning_output_tokens,
    total_tokens: a.total_tokens + b.total_tokens,
  };
}
