import type { RecordedRequest } from './fake-model-server.js';

type Item = Record<string, unknown> & { type?: string };

/** The `input` items of a Responses request. */
export function inputItems(request: RecordedRequest): Item[] {
  return (request.body.input as Item[] | undefined) ?? [];
}

/** Every text the request carries in its input messages, in order. */
export function inputTexts(request: RecordedRequest): string[] {
  return inputItems(request).flatMap((item) =>
    item.type === 'message' ? ((item.content as { text?: string }[]).map((c) => c.text).filter((t): t is string => t !== undefined)) : [],
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
