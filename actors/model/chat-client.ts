import { randomUUID } from 'node:crypto';
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionChunk,
  ChatCompletionContentPart,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionFunctionTool,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { ResponseItem, TokenUsage } from '../../protocol/index.js';
import { ModelError } from './errors.js';
import { SdkModelClient, type OpenedStream } from './sdk-client.js';
import type { StreamGuard } from './stream-guard.js';
import type { ModelStreamEvent, Prompt } from './types.js';

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
    const request = chatRequest(prompt);
    return (signal) => this.options.client.chat.completions.create(request, { signal }).withResponse();
  }

  protected async *read(next: () => Promise<IteratorResult<ChatCompletionChunk>>, guard: StreamGuard): AsyncGenerator<ModelStreamEvent> {
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
      throw new ModelError('Model output was cut off at the length limit (finish_reason "length"): the context window is full', 'context_window_exceeded', false);
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

/** The Chat Completions request body for one sampling request. */
export function chatRequest(prompt: Prompt): ChatCompletionCreateParamsStreaming {
  const tools: ChatCompletionFunctionTool[] = prompt.tools.map((tool) => ({
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: tool.parameters },
  }));
  return {
    model: prompt.model,
    messages: toChatMessages(prompt.instructions, prompt.input),
    stream: true,
    stream_options: { include_usage: true },
    // OpenAI rejects tool options on a request without tools.
    ...(tools.length > 0 ? { tools, tool_choice: 'auto' as const, parallel_tool_calls: prompt.parallel_tool_calls } : {}),
    ...(prompt.effort !== undefined ? { reasoning_effort: prompt.effort } : {}),
    ...(prompt.output_schema !== undefined
      ? { response_format: { type: 'json_schema' as const, json_schema: { name: OUTPUT_SCHEMA_NAME, schema: prompt.output_schema, strict: true } } }
      : {}),
  };
}

/**
 * History items as chat messages. Function calls that follow an assistant message (or each
 * other) join that message's `tool_calls`, as the model produced them; reasoning items have no
 * chat form and are dropped.
 */
export function toChatMessages(instructions: string, items: readonly ResponseItem[]): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [];
  if (instructions !== '') messages.push({ role: 'system', content: instructions });
  // The assistant message function calls may still join; any other message closes it.
  let openAssistant: ChatCompletionAssistantMessageParam | null = null;
  for (const item of items) {
    switch (item.type) {
      case 'message': {
        const text = item.content.flatMap((part) => (part.type === 'input_image' ? [] : [part.text])).join('');
        if (item.role === 'assistant') {
          openAssistant = { role: 'assistant', content: text };
          messages.push(openAssistant);
          break;
        }
        openAssistant = null;
        if (item.role === 'user') {
          const hasImage = item.content.some((part) => part.type === 'input_image');
          const content: string | ChatCompletionContentPart[] = hasImage
            ? item.content.map((part): ChatCompletionContentPart =>
                part.type === 'input_image' ? { type: 'image_url', image_url: { url: part.image_url } } : { type: 'text', text: part.text },
              )
            : text;
          messages.push({ role: 'user', content });
        } else {
          messages.push({ role: 'system', content: text });
        }
        break;
      }
      case 'function_call': {
        if (openAssistant === null) {
          openAssistant = { role: 'assistant', content: null };
          messages.push(openAssistant);
        }
        openAssistant.tool_calls = [
          ...(openAssistant.tool_calls ?? []),
          { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } },
        ];
        break;
      }
      case 'function_call_output':
        openAssistant = null;
        messages.push({ role: 'tool', tool_call_id: item.call_id, content: item.output });
        break;
      case 'reasoning':
        break;
    }
  }
  return messages;
}

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
