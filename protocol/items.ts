import { z } from 'zod';

/**
 * History items: what the model is sent and what it returns, in the shape of the Responses
 * API. The conversation history, the rollout and the model clients all speak this type; the
 * Chat Completions client converts at its own edge.
 */
export const ContentItem = z.discriminatedUnion('type', [
  z.object({ type: z.literal('input_text'), text: z.string() }),
  z.object({ type: z.literal('input_image'), image_url: z.string() }),
  z.object({ type: z.literal('output_text'), text: z.string() }),
]);
export type ContentItem = z.infer<typeof ContentItem>;

export const MessageItem = z.object({
  type: z.literal('message'),
  id: z.string().optional(),
  role: z.enum(['user', 'assistant', 'developer', 'system']),
  content: z.array(ContentItem),
});
export type MessageItem = z.infer<typeof MessageItem>;

export const ReasoningItem = z.object({
  type: z.literal('reasoning'),
  id: z.string().optional(),
  summary: z.array(z.object({ type: z.literal('summary_text'), text: z.string() })),
  content: z.array(z.object({ type: z.literal('reasoning_text'), text: z.string() })).optional(),
  encrypted_content: z.string().nullable().optional(),
});
export type ReasoningItem = z.infer<typeof ReasoningItem>;

export const FunctionCallItem = z.object({
  type: z.literal('function_call'),
  id: z.string().optional(),
  call_id: z.string(),
  name: z.string(),
  arguments: z.string(),
});
export type FunctionCallItem = z.infer<typeof FunctionCallItem>;

export const FunctionCallOutputItem = z.object({
  type: z.literal('function_call_output'),
  call_id: z.string(),
  output: z.string(),
});
export type FunctionCallOutputItem = z.infer<typeof FunctionCallOutputItem>;

export const ResponseItem = z.discriminatedUnion('type', [MessageItem, ReasoningItem, FunctionCallItem, FunctionCallOutputItem]);
export type ResponseItem = z.infer<typeof ResponseItem>;
