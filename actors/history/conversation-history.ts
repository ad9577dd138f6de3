import type { FunctionCallItem, ResponseItem, TokenUsage } from '../../protocol/index.js';

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
  #items: ResponseItem[] = [];

  constructor(initial: readonly ResponseItem[] = []) {
    this.#items = structuredClone([...initial]);
  }

  /** A copy of the raw history, as recorded. */
  items(): ResponseItem[] {
    return structuredClone(this.#items);
  }

  get length(): number {
    return this.#items.length;
  }

  record(...items: ResponseItem[]): void {
    for (const item of items) this.#items.push(structuredClone(item));
  }

  /** Replace the whole history (compaction, rollback). */
  replace(items: readonly ResponseItem[]): void {
    this.#items = structuredClone([...items]);
  }

  /** Call ids that have a call but no output yet. */
  pendingCallIds(): string[] {
    const answered = new Set(this.#outputs().map((o) => o.call_id));
    return this.#calls()
      .map((c) => c.call_id)
      .filter((id) => !answered.has(id));
  }

  /**
   * The history as the model must see it: calls without an output get the aborted output
   * right after them, and outputs without a call are dropped. A well-behaved session never
   * needs either repair; when one happens it is a bug elsewhere, so it is reported.
   */
  forPrompt(onRepair?: (detail: string) => void): ResponseItem[] {
    const callIds = new Set(this.#calls().map((c) => c.call_id));
    const seenOutputs = new Set<string>();
    const outputFor = new Set(this.#outputs().map((o) => o.call_id));
    const result: ResponseItem[] = [];
    for (const item of this.#items) {
      if (item.type === 'function_call_output') {
        if (!callIds.has(item.call_id) || seenOutputs.has(item.call_id)) {
          onRepair?.(`dropped output without a matching call: ${item.call_id}`);
          continue;
        }
        seenOutputs.add(item.call_id);
      }
      result.push(structuredClone(item));
      if (item.type === 'function_call' && !outputFor.has(item.call_id)) {
        onRepair?.(`call without output: ${item.call_id}`);
        result.push(abortedOutput(item.call_id));
      }
    }
    return result;
  }

  /**
   * A rough token estimate of the history (4 bytes a token), for deciding when to compact
   * before the provider's count is known.
   */
  estimateTokens(): number {
    return Math.ceil(Buffer.byteLength(JSON.stringify(this.#items), 'utf8') / 4);
  }

  #calls(): FunctionCallItem[] {
    return this.#items.filter((i): i is FunctionCallItem => i.type === 'function_call');
  }

  #outputs() {
    return this.#items.filter((i) => i.type === 'function_call_output');
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
