import type { ResponseItem } from '../../protocol/index.js';

/**
 * The note the history records after a successful undo, so the model does not assume its last
 * changes are still on disk. Injected context (`<user_action>`), not a user turn.
 */
export function undoNoticeMessage(): ResponseItem {
  const text = [
    '<user_action>',
    'The user undid the previous turn: the files in the repository were put back as they were before it started, so the changes made in that turn are gone from disk. Do not assume they are there; read the files again before building on them.',
    '</user_action>',
  ].join('\n');
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}
