import type { RateLimitSnapshot, ReasoningEffort, ReasoningSummary, ResponseItem, TokenUsage } from '../../protocol/index.js';

/** A function tool as the model is shown it. */
export interface ToolSpecJson {
  readonly type: 'function';
  readonly name: string;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
}

/** Everything one sampling request needs; built by the turn from its TurnContext and the history. */
export interface Prompt {
  readonly model: string;
  /** The base instructions (the system prompt). */
  readonly instructions: string;
  /** The whole conversation as history items, normalized: every call has exactly one output. */
  readonly input: readonly ResponseItem[];
  readonly tools: readonly ToolSpecJson[];
  readonly parallel_tool_calls: boolean;
  readonly effort?: ReasoningEffort | undefined;
  /** The Responses API's `reasoning.summary`; `none` sends none (the chat API has no such field). */
  readonly reasoning_summary?: ReasoningSummary | undefined;
  /** A JSON schema the final answer must follow (structured output). */
  readonly output_schema?: Record<string, unknown> | undefined;
}

/** What a model stream yields, the same for every wire API. */
export type ModelStreamEvent =
  | { readonly type: 'created' }
  | { readonly type: 'output_text_delta'; readonly delta: string }
  | { readonly type: 'reasoning_delta'; readonly delta: string }
  /** One finished output item. Tool calls start as soon as theirs arrives. */
  | { readonly type: 'output_item_done'; readonly item: ResponseItem }
  | { readonly type: 'rate_limits'; readonly snapshot: RateLimitSnapshot }
  | { readonly type: 'completed'; readonly response_id: string; readonly usage: TokenUsage | null };

/**
 * One sampling request, one attempt: no retries inside (the turn retries, so each attempt is
 * announced and can be aborted). Failures are thrown as ModelError.
 */
export interface ModelClient {
  stream(prompt: Prompt, signal: AbortSignal): AsyncIterable<ModelStreamEvent>;
  /** The context window of `model` in tokens, when known. */
  contextWindow(model: string): number | null;
}
