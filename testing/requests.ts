import type { RecordedRequest } from './fake-model-server.js';

/** One item of a recorded request's input, as sent. */
export type Item = Record<string, unknown> & { type?: string };

/** The `input` items of a Responses request. */
export function inputItems(request: RecordedRequest): Item[] {
  return (request.body.input as Item[] | undefined) ?? [];
}

/** Every text the request carries in its input messages, in order. */
export function inputTexts(request: RecordedRequest): string[] {
  return inputItems(request).flatMap((item) =>
    item.type === 'message' ? (item.content as { text?: string }[]).map((c) => c.text).filter((t): t is string => t !== undefined) : [],
  );
}

/** The output the request carries for `callId`, or undefined. */
export function outputFor(request: RecordedRequest, callId: string): string | undefined {
  const item = inputItems(request).find((i) => i.type === 'function_call_output' && i.call_id === callId);
  return item?.output as string | undefined;
}

/** Call ids of the function_call_output items, in input order. */
export function outputOrder(request: RecordedRequest): string[] {
  return inputItems(request)
    .filter((i) => i.type === 'function_call_output')
    .map((i) => i.call_id as string);
}

/** True when any input message of the request contains `text`. */
export function mentions(request: RecordedRequest, text: string): boolean {
  return inputTexts(request).some((t) => t.includes(text));
}

/** The agent ids returned by `spawn_agent` calls in the request's tool outputs, in call order. */
export function spawnedAgentIds(request: RecordedRequest): string[] {
  const spawnCalls = new Set(
    inputItems(request)
      .filter((i) => i.type === 'function_call' && i.name === 'spawn_agent')
      .map((i) => i.call_id as string),
  );
  return inputItems(request).flatMap((i) => {
    if (i.type !== 'function_call_output' || !spawnCalls.has(i.call_id as string)) return [];
    try {
      const parsed = JSON.parse(i.output as string) as { agent_id?: string };
      return parsed.agent_id ? [parsed.agent_id] : [];
    } catch {
      return [];
    }
  });
}
