import type { CallToolResult, ContentBlock } from '@modelcontextprotocol/sdk/types.js';
import { truncateMiddle } from '../../../lib/truncate.js';

/**
 * What the model reads of an MCP tool result. Tool outputs reach the model as text, so text
 * blocks pass through and everything else (images, audio, resources) is described in a line
 * the model can reason about. Structured content is shown as JSON when the server sent no
 * content blocks (servers are asked to mirror it in text, and most do). Long output is
 * middle-truncated like every other tool's.
 */
export function resultText(result: CallToolResult): string {
  const parts = result.content.map(describeBlock);
  if (parts.length === 0 && result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent));
  const text = parts.join('\n');
  return truncateMiddle(text === '' ? (result.isError ? 'the tool failed without saying why' : '(no output)') : text);
}

function describeBlock(block: ContentBlock): string {
  switch (block.type) {
    case 'text':
      return block.text;
    case 'image':
      return `[image: ${block.mimeType}, ${base64Bytes(block.data)} bytes]`;
    case 'audio':
      return `[audio: ${block.mimeType}, ${base64Bytes(block.data)} bytes]`;
    case 'resource_link':
      return `[resource link: ${block.name} <${block.uri}>${block.mimeType ? ` (${block.mimeType})` : ''}]`;
    case 'resource': {
      const resource = block.resource;
      if ('text' in resource) return `[resource <${resource.uri}>]\n${resource.text}`;
      return `[resource <${resource.uri}>: ${resource.mimeType ?? 'binary'}, ${base64Bytes(resource.blob)} bytes]`;
    }
    default:
      return `[${(block as { type: string }).type} content]`;
  }
}

function base64Bytes(data: string): number {
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return Math.max(0, Math.floor((data.length * 3) / 4) - padding);
}

/**
 * The result an `mcp_tool_call_end` event carries, read back as an MCP tool result, or null when
 * it is not one (the event's `result` is untyped on the wire).
 */
export function asToolResult(result: unknown): CallToolResult | null {
  if (typeof result !== 'object' || result === null || !Array.isArray((result as { content?: unknown }).content)) return null;
  return result as CallToolResult;
}
