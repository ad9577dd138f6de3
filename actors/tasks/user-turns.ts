import type { MessageItem, ResponseItem } from '../../protocol/index.js';
import { isRealUserMessage } from '../../lib/rollout/reader.js';

/** Starts the bridge message that stands for a summarized part of the conversation. */
export const SUMMARY_BRIDGE_PREFIX = '<conversation_summary>';
/** Starts the record of a command the user ran themselves. */
export const USER_SHELL_PREFIX = '<user_shell_command>';

/** Prefixes of user-role messages that troupe injects at the start of a session. */
const INITIAL_CONTEXT_PREFIXES = ['<environment_context>', '<user_instructions>'];

/** The text of a message's parts, joined; images contribute nothing. */
export function messageText(item: MessageItem): string {
  return item.content
    .map((part) => (part.type === 'input_text' || part.type === 'output_text' ? part.text : ''))
    .filter((text) => text !== '')
    .join('\n');
}

function firstText(item: MessageItem): string {
  const part = item.content.find((p) => p.type === 'input_text' || p.type === 'output_text');
  return part && 'text' in part ? part.text.trimStart() : '';
}

export function isSummaryBridge(item: ResponseItem): item is MessageItem {
  return item.type === 'message' && item.role === 'user' && firstText(item).startsWith(SUMMARY_BRIDGE_PREFIX);
}

/**
 * A message that begins a user turn: something the user typed. This is `isRealUserMessage`
 * minus the two kinds of injected messages the task modules add (summary bridges and user
 * shell records), so these modules behave the same before and after those prefixes are
 * registered with `isRealUserMessage`.
 */
export function isUserTurnStart(item: ResponseItem): item is MessageItem {
  if (!isRealUserMessage(item)) return false;
  const text = firstText(item);
  return !text.startsWith(SUMMARY_BRIDGE_PREFIX) && !text.startsWith(USER_SHELL_PREFIX);
}

/**
 * The session's initial context: the developer/system messages and the injected environment
 * and user-instruction messages at the very start of the history, up to the first other item.
 */
export function initialContextOf(history: readonly ResponseItem[]): ResponseItem[] {
  const context: ResponseItem[] = [];
  for (const item of history) {
    if (item.type !== 'message') break;
    const injected = item.role === 'user' && INITIAL_CONTEXT_PREFIXES.some((prefix) => firstText(item).startsWith(prefix));
    if (item.role !== 'developer' && item.role !== 'system' && !injected) break;
    context.push(item);
  }
  return context;
}
