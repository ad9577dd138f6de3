import { randomUUID } from 'node:crypto';
import type {
  ChatCompletionChunk,
  ChatCompletionContentPart,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionFunctionTool,
} from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { ResponseItem, TokenUsage } from '../../protocol/index.js';
import { memoizeFrozen } from '../freeze.js';
import { ModelError } from './errors.js';
import { encodedBody, SdkModelClient, type OpenedStream } from './sdk-client.js';
import type { StreamGuard } from './stream-guard.js';
import type { ModelStreamEvent, Prompt, ToolSpecJson } from './types.js';

const OUTPUT_SCHEMA_NAME = 'final_output';

/** A tool call being assembled from streamed fragments. */
interface PendingCall {
  id: string | null;
  name: string;
  arguments: string;
}

/**
 * A ModelClient on Chat Completions, for providers without the Responses API. History is
 * converted to chat messages at this edge, and the streamed answer back into history items, so
 * nothing else in troupe knows which wire API is in use.
 */
export class ChatModelClient extends SdkModelClient<ChatCompletionChunk> {
  protected open(prompt: Prompt): (signal: AbortSignal) => Promise<OpenedStream<ChatCompletionChunk>> {
    const body = encodeChatRequest(prompt);
    return (signal) => this.options.client.chat.completions.create(STREAMING, encodedBody(body, signal)).withResponse();
  }

  protected async *read(next: () => Promise<IteratorResult<ChatCompletionChunk, unknown>>, guard: StreamGuard): AsyncGenerator<ModelStreamEvent> {
    let responseId = '';
    let text = '';
    const calls = new Map<number, PendingCall>();
    let finishReason: string | null = null;
    let usage: TokenUsage | null = null;
    for (;;) {
      const { done, value: chunk } = await next();
      if (done === true) {
        guard.ended();
        break;
      }
      if (responseId === '') {
        responseId = chunk.id;
        yield { type: 'created' };
      }
      if (chunk.usage) usage = fromUsage(chunk.usage);
      const choice = chunk.choices[0];
      if (choice === undefined) continue;
      const delta = choice.delta;
      if (typeof delta.content === 'string' && delta.content !== '') {
        text += delta.content;
        yield { type: 'output_text_delta', delta: delta.content };
      }
      const reasoning = reasoningDelta(delta);
      if (reasoning !== null) yield { type: 'reasoning_delta', delta: reasoning };
      for (const [position, fragment] of (delta.tool_calls ?? []).entries()) {
        const index = typeof fragment.index === 'number' ? fragment.index : position;
        const call = calls.get(index) ?? { id: null, name: '', arguments: '' };
        calls.set(index, call);
        if (fragment.id) call.id ??= fragment.id;
        // Providers differ: most send the name once, some repeat it in every fragment.
        if (fragment.function?.name && call.name === '') call.name = fragment.function.name;
        if (fragment.function?.arguments) call.arguments += fragment.function.arguments;
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }

    if (finishReason === null) throw guard.endedEarly('a finish_reason');
    if (finishReason === 'length') {
      throw new ModelError(
        'Model output was cut off at the length limit (finish_reason "length"): the context window is full',
        'context_window_exceeded',
        false,
      );
    }
    if (finishReason === 'content_filter') {
      throw new ModelError('Model output was withheld by the provider\'s content filter (finish_reason "content_filter")', 'bad_request', false);
    }
    if (text !== '') {
      yield { type: 'output_item_done', item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] } };
    }
    for (const index of [...calls.keys()].sort((a, b) => a - b)) {
      const call = calls.get(index);
      if (call === undefined) continue;
      yield {
        type: 'output_item_done',
        item: { type: 'function_call', call_id: call.id ?? `call_${randomUUID()}`, name: call.name, arguments: call.arguments },
      };
    }
    yield { type: 'completed', response_id: responseId, usage };
  }
}

/** What the SDK is given as parameters: it reads only `stream` from them (see `encodedBody`). */
const STREAMING: ChatCompletionCreateParamsStreaming = { stream: true, model: '', messages: [] };

/**
 * The Chat Completions request body for one sampling request, as JSON. History items are
 * converted to chat messages here. Each item's part of the JSON is made once (items are frozen
 * and live as long as the session), so a request costs the joining of the parts, not the
 * serializing of the whole history again.
 */
export function encodeChatRequest(prompt: Prompt): string {
  const messages: string[] = [];
  if (prompt.instructions !== '') messages.push(JSON.stringify({ role: 'system', content: prompt.instructions }));
  // Function calls that follow an assistant message (or each other) join that message's
  // `tool_calls`, as the model produced them; any other message closes it.
  let assistant: { content: string; calls: string[] } | null = null;
  const close = () => {
    if (assistant === null) return;
    const calls = assistant.calls.length > 0 ? `,"tool_calls":[${assistant.calls.join(',')}]` : '';
    messages.push(`{"role":"assistant","content":${assistant.content}${calls}}`);
    assistant = null;
  };
  for (const item of prompt.input) {
    const part = chatPart(item);
    switch (part.kind) {
      case 'assistant':
        close();
        assistant = { content: part.content, calls: [] };
        break;
      case 'call':
        assistant ??= { content: 'null', calls: [] };
        assistant.calls.push(part.json);
        break;
      case 'message':
        close();
        messages.push(part.json);
        break;
      case 'none':
        break;
    }
  }
  close();

  const tools = toolsJson(prompt.tools);
  const tail = JSON.stringify({
    stream: true,
    stream_options: { include_usage: true },
    // OpenAI rejects tool options on a request without tools.
    ...(tools !== null ? { tool_choice: 'auto', parallel_tool_calls: prompt.parallel_tool_calls } : {}),
    ...(prompt.effort !== undefined ? { reasoning_effort: prompt.effort } : {}),
    ...(prompt.output_schema !== undefined
      ? { response_format: { type: 'json_schema', json_schema: { name: OUTPUT_SCHEMA_NAME, schema: prompt.output_schema, strict: true } } }
      : {}),
  });
  const head = JSON.stringify({ model: prompt.model });
  return `${head.slice(0, -1)},"messages":[${messages.join(',')}]${tools !== null ? `,"tools":${tools}` : ''},${tail.slice(1)}`;
}

/** What one history item adds to the chat messages, as JSON. */
type ChatPart =
  /** An assistant message: the JSON of its content. Function calls may still join it. */
  | { readonly kind: 'assistant'; readonly content: string }
  /** A function call: the JSON of its entry in an assistant message's `tool_calls`. */
  | { readonly kind: 'call'; readonly json: string }
  /** A message of its own. */
  | { readonly kind: 'message'; readonly json: string }
  /** Nothing: reasoning has no chat form. */
  | { readonly kind: 'none' };

const chatPart = memoizeFrozen((item: ResponseItem): ChatPart => {
  switch (item.type) {
    case 'message': {
      const text = item.content.flatMap((part) => (part.type === 'input_image' ? [] : [part.text])).join('');
      if (item.role === 'assistant') return { kind: 'assistant', content: JSON.stringify(text) };
      if (item.role !== 'user') return { kind: 'message', json: JSON.stringify({ role: 'system', content: text }) };
      const hasImage = item.content.some((part) => part.type === 'input_image');
      const content: string | ChatCompletionContentPart[] = hasImage
        ? item.content.map((part): ChatCompletionContentPart =>
            part.type === 'input_image' ? { type: 'image_url', image_url: { url: part.image_url } } : { type: 'text', text: part.text },
          )
        : text;
      return { kind: 'message', json: JSON.stringify({ role: 'user', content }) };
    }
    case 'function_call':
      return { kind: 'call', json: JSON.stringify({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } }) };
    case 'function_call_output':
      return { kind: 'message', json: JSON.stringify({ role: 'tool', tool_call_id: item.call_id, content: item.output }) };
    default:
      return { kind: 'none' };
  }
});

/** The tool list as Chat Completions takes it, or null when there are no tools. */
const toolsJson = memoizeFrozen((tools: readonly ToolSpecJson[]): string | null =>
  tools.length === 0
    ? null
    : JSON.stringify(
        tools.map((tool): ChatCompletionFunctionTool => ({
          type: 'function',
          function: { name: tool.name, description: tool.description, parameters: tool.parameters },
        })),
      ),
);

/**
 * Reasoning text some OpenAI-compatible servers stream outside the official schema
 * (`reasoning_content` in vLLM and DeepSeek, `reasoning` in others).
 */
function reasoningDelta(delta: ChatCompletionChunk.Choice.Delta): string | null {
  const extra = delta as ChatCompletionChunk.Choice.Delta & { reasoning_content?: unknown; reasoning?: unknown };
  const value = extra.reasoning_content ?? extra.reasoning;
  return typeof value === 'string' && value !== '' ? value : null;
}

function fromUsage(usage: CompletionUsage): TokenUsage {
  return {
    input_tokens: usage.prompt_tokens,
    cached_input_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    output_tokens: usage.completion_tokens,
    reasoning_output_tokens: usage.completion_tokens_details?.reasoning_tokens ?? 0,
    total_tokens: usage.total_tokens,
  };
}
