import type { ResponseItem } from '../../protocol/index.js';
import { DEFAULT_OUTPUT_LIMITS, truncateMiddle } from '../tools/truncate.js';
import { USER_SHELL_PREFIX } from './user-turns.js';

export interface UserShellResult {
  /** Null when the command was killed by a signal or never started. */
  readonly exitCode: number | null;
  /** stdout and stderr as the user saw them, interleaved. */
  readonly output: string;
  readonly durationMs?: number;
  readonly cwd?: string;
}

/**
 * What the history records after the user ran a command of their own (`run_user_shell_command`):
 * one user-role message saying what ran and what it printed, so the model knows on its next
 * turn. It is context rather than a request, so it starts with USER_SHELL_PREFIX and does not
 * count as a user turn (rollback and fork step over it; compaction leaves it to the summary).
 * The output is bounded like a tool output: head and tail kept, middle cut.
 */
export function userShellRecord(command: string, result: UserShellResult): ResponseItem[] {
  const lines = [
    USER_SHELL_PREFIX,
    'The user ran this command in their own shell (not a tool call of yours).',
    ...(result.cwd ? [`<cwd>${result.cwd}</cwd>`] : []),
    '<command>',
    command,
    '</command>',
    '<result>',
    `exit code: ${result.exitCode === null ? 'none (killed or not started)' : result.exitCode}`,
    ...(result.durationMs !== undefined ? [`duration: ${(result.durationMs / 1000).toFixed(1)} s`] : []),
    'output:',
    truncateMiddle(result.output, DEFAULT_OUTPUT_LIMITS).trimEnd(),
    '</result>',
    '</user_shell_command>',
  ];
  return [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: lines.join('\n') }] }];
}
