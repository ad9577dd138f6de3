import type { ResponseItem } from '../../../protocol/index.js';
import { SUMMARY_BRIDGE_PREFIX } from '../user-turns.js';

/**
 * The request that ends the summarization fork: the model reads the whole history and writes
 * the note a successor needs to carry on. Written for troupe.
 */
export const SUMMARY_PROMPT = `Stop working on the task for a moment. The conversation so far is about to be replaced by a summary, and whoever continues the work (you, without this history) will only have that summary, the user's most recent messages and the files on disk. Write that summary now, as a handoff note to a colleague taking over.

Cover, in this order and only as far as they apply:
1. The goal: what the user wants, in their terms, with every requirement, constraint and preference they stated (including ones from early in the conversation).
2. What has been done: the files created, changed or deleted and what changed in them; commands run that matter, and what they showed (tests passing or failing, errors).
3. Where things stand: what works now, what is half done, what is known to be broken.
4. Decisions made and why, and approaches tried that did not work, so they are not tried again.
5. What remains, as concrete next steps, starting with the very next one.

Be specific: exact file paths, function names, commands, error messages. Leave out pleasantries, the history of how you found things, and anything that can be read back from the files cheaply. Do not call any tool; answer with the summary only, as plain text.`;

/** The message that stands for the summarized part of the conversation in the new history. */
export function summaryBridgeMessage(summary: string): ResponseItem {
  const body = summary.trim() || '(The summary came back empty: re-read the files and ask the user if the task is unclear.)';
  const text = [
    SUMMARY_BRIDGE_PREFIX,
    'An earlier part of this conversation was summarized to free up context. The user messages just before this one are the most recent ones the user wrote (long ones may be shortened). The summary below is a handoff note about the work done so far, written by the model that did it. Continue from it; where it lacks detail, check the files rather than guessing.',
    '',
    body,
    '</conversation_summary>',
  ].join('\n');
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}
