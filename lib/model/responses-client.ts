import type { FunctionTool, ResponseCreateParamsStreaming, ResponseOutputItem, ResponseStreamEvent, ResponseUsage } from 'openai/resources/responses/responses';
import { ResponseItem, type TokenUsage } from '../../protocol/index.js';
import { memoizeFrozen } from '../freeze.js';
import { log } from '../log.js';
import { classifyProviderFailure } from './classify.js';
import { ModelError } from './errors.js';
import { encodedBody, SdkModelClient, type OpenedStream } from './sdk-client.js';
import type { StreamGuard } from './stream-guard.js';
import type { ModelStreamEvent, Prompt, ToolSpecJson } from './types.js';

/** The name the structured-output schema is sent under; the API requires one. */
const OUTPUT_SCHEMA_NAME = 'final_output';

/** A ModelClient on the OpenAI Responses API (streaming, stateless: `store: false`). */
export class ResponsesModelClient extends SdkModelClient<ResponseStreamEvent> {
  protected open(prompt: Prompt): (signal: AbortSignal) => Promise<OpenedStream<ResponseStreamEvent>> {
    const body = encodeResponsesRequest(prompt);
    return (signal) => this.options.client.responses.create(STREAMING, encodedBody(body, signal)).withResponse();
  }

  protected async *read(
    next: () => Promise<IteratorResult<ResponseStreamEvent, unknown>>,
    guard: StreamGuard,
    headers: Headers,
  ): AsyncGenerator<ModelStreamEvent> {
    for (;;) {
      const { done, value: event } = await next();
      if (done === true) throw guard.endedEarly('response.completed');
      switch (event.type) {
        case 'response.created':
          yield { type: 'created' };
          break;
        case 'response.output_text.delta':
          yield { type: 'output_text_delta', delta: event.delta };
          break;
        case 'response.reasoning_summary_text.delta':
          yield { type: 'reasoning_delta', delta: event.delta };
          break;
        case 'response.output_item.done': {
          const item = fromOutputItem(event.item);
          if (item !== null) yield { type: 'output_item_done', item };
          break;
        }
        case 'response.completed': {
          yield { type: 'completed', response_id: event.response.id, usage: fromUsage(event.response.usage) };
          // A consumer that asks for more reads the body to its end, which leaves the
          // connection free for the next request; one that stops here has it cancelled.
          let rest = await next();
          while (rest.done !== true) rest = await next();
          guard.ended();
          return;
        }
        case 'response.failed': {
          const error = event.response.error;
          throw classifyProviderFailure({
            status: null,
            code: error?.code ?? null,
            type: null,
            message: error?.message ?? 'the response failed without details',
            headers,
          });
        }
        case 'response.incomplete': {
          const reason = event.response.incomplete_details?.reason ?? 'unknown';
          throw new ModelError(`Model returned an incomplete response (reason: ${reason})`, 'stream_failed', true);
        }
        case 'error':
          throw classifyProviderFailure({ status: null, code: event.code, type: null, message: event.message, headers });
        default:
          break;
      }
    }
  }
}

/** What the SDK is given as parameters: it reads only `stream` from them (see `encodedBody`). */
const STREAMING: ResponseCreateParamsStreaming = { stream: true };

/**
 * The Responses API request body for one sampling request, as JSON.
 *
 * Every request carries the whole history again, and serializing all of it each time makes a
 * session's requests cost more the longer it runs. History items are frozen and live as long
 * as the session, so the JSON of a history's input is kept from one request to the next, and
 * the tool list's is made once: a request costs what was added since the last one.
 */
export function encodeResponsesRequest(prompt: Prompt): string {
  const reasoning = reasoningParams(prompt);
  const head = JSON.stringify({ model: prompt.model, instructions: prompt.instructions });
  const tail = JSON.stringify({
    tool_choice: 'auto',
    parallel_tool_calls: prompt.parallel_tool_calls,
    store: false,
    stream: true,
    // Without storage, reasoning can only be carried to the next request in encrypted form.
    ...(reasoning !== null ? { reasoning, include: ['reasoning.encrypted_content'] } : {}),
    ...(prompt.output_schema !== undefined
      ? { text: { format: { type: 'json_schema', name: OUTPUT_SCHEMA_NAME, schema: prompt.output_schema, strict: true } } }
      : {}),
  });
  return `${head.slice(0, -1)},"input":[${inputJson(prompt.input)}],"tools":${toolsJson(prompt.tools)},${tail.slice(1)}`;
}

/** The request's `reasoning`: the effort and summary the turn asks for, or null for neither. */
function reasoningParams(prompt: Prompt): { effort?: string; summary?: string } | null {
  const summary = prompt.reasoning_summary === 'none' ? undefined : prompt.reasoning_summary;
  if (prompt.effort === undefined && summary === undefined) return null;
  return { ...(prompt.effort !== undefined ? { effort: prompt.effort } : {}), ...(summary !== undefined ? { summary } : {}) };
}

/** The items of the last input encoded for a history, and their JSON (without the brackets). */
interface EncodedInput {
  readonly items: readonly ResponseItem[];
  readonly json: string;
}

/**
 * The last encoded input of each history, under the history's first item: a history's items
 * belong to it alone, and between two requests it usually only grows, so the next request
 * starts from this JSON and adds the new items' to it. A history that was rolled back or
 * rewritten no longer starts with the same items and is encoded item by item.
 */
const encodedInputs = new WeakMap<ResponseItem, EncodedInput>();

function inputJson(input: readonly ResponseItem[]): string {
  const first = input[0];
  if (first === undefined) return '';
  const previous = encodedInputs.get(first);
  const reused = previous !== undefined && startsWith(input, previous.items);
  let json = reused ? previous.json : '';
  for (let i = reused ? previous.items.length : 0; i < input.length; i++) {
    const item = wireJson(input[i]!);
    if (item !== null) json = json === '' ? item : `${json},${item}`;
  }
  if (Object.isFrozen(first)) encodedInputs.set(first, { items: [...input], json });
  return json;
}

function startsWith(items: readonly ResponseItem[], prefix: readonly ResponseItem[]): boolean {
  if (prefix.length > items.length) return false;
  for (let i = 0; i < prefix.length; i++) if (items[i] !== prefix[i]) return false;
  return true;
}

/** A registry's spec list is the same array until its tools change: encode it once. */
const toolsJson = memoizeFrozen((tools: readonly ToolSpecJson[]): string =>
  JSON.stringify(
    tools.map((tool): FunctionTool => ({ type: 'function', name: tool.name, description: tool.description, parameters: tool.parameters, strict: false })),
  ),
);

/**
 * Each history item's JSON as the request carries it (null: the item is not sent), for the
 * items a request cannot take from its history's last encoding.
 */
const wireJson = memoizeFrozen((item: ResponseItem): string | null => {
  const wire = toWire(item);
  return wire === null ? null : JSON.stringify(wire);
});

/**
 * Our history is already Responses-shaped; what must go is what refers to server-side storage,
 * which `store: false` does not have: item ids, and reasoning items that carry no encrypted
 * content (the API could only resolve them by id).
 */
function toWire(item: ResponseItem): object | null {
  switch (item.type) {
    case 'message':
      return {
        type: 'message',
        role: item.role,
        content: item.content.map((part) => {
          if (part.type === 'input_image') return { type: 'input_image', image_url: part.image_url, detail: 'auto' };
          // The API only accepts output_text in assistant messages and input_text elsewhere.
          return { type: item.role === 'assistant' ? 'output_text' : 'input_text', text: part.text };
        }),
      };
    case 'reasoning':
      if (item.encrypted_content === undefined || item.encrypted_content === null) return null;
      return {
        type: 'reasoning',
        summary: item.summary,
        encrypted_content: item.encrypted_content,
        ...(item.content !== undefined ? { content: item.content } : {}),
      };
    case 'function_call':
      return { type: 'function_call', call_id: item.call_id, name: item.name, arguments: item.arguments };
    case 'function_call_output':
      return { type: 'function_call_output', call_id: item.call_id, output: item.output };
    default:
      return null;
  }
}

/** Our ResponseItem for an output item, or null for item types troupe does not use. */
export function fromOutputItem(item: ResponseOutputItem): ResponseItem | null {
  let candidate: unknown;
  switch (item.type) {
    case 'message':
      candidate = {
        type: 'message',
        id: item.id,
        role: item.role,
        content: item.content.map((part) =>
          part.type === 'output_text' ? { type: 'output_text', text: part.text } : { type: 'output_text', text: part.refusal },
        ),
      };
      break;
    case 'reasoning':
      candidate = {
        type: 'reasoning',
        id: item.id,
        summary: item.summary,
        ...(item.content ? { content: item.content } : {}),
        encrypted_content: item.encrypted_content ?? null,
      };
      break;
    case 'function_call':
      candidate = { type: 'function_call', id: item.id, call_id: item.call_id, name: item.name, arguments: item.arguments };
      break;
    default:
      log.debug({ item_type: item.type }, 'skipping an output item type troupe does not handle');
      return null;
  }
  const parsed = ResponseItem.safeParse(candidate);
  if (!parsed.success) {
    log.warn({ item_type: item.type, issues: parsed.error.issues }, 'model returned an output item that does not match our schema; skipped');
    return null;
  }
  return parsed.data;
}

function fromUsage(usage: ResponseUsage | undefined | null): TokenUsage | null {
  if (usage === undefined || usage === null) return null;
  return {
    input_tokens: usage.input_tokens,
    cached_input_tokens: usage.input_tokens_details?.cached_tokens ?? 0,
    output_tokens: usage.output_tokens,
    reasoning_output_tokens: usage.output_tokens_details?.reasoning_tokens ?? 0,
    total_tokens: usage.total_tokens,
  };
}
