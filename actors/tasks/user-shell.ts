import type { EventOf, ResponseItem } from '../../protocol/index.js';
import type { TaskInput, TaskRequest } from '../../machines/session.js';
import type { TaskOutput } from '../../machines/task.js';
import { buildTurnContext } from '../../machines/turn-context.js';
import { runShell } from '../tools/handlers/shell.js';
import type { ToolContext } from '../tools/tool.js';
import { DEFAULT_OUTPUT_LIMITS, truncateMiddle } from '../../lib/truncate.js';
import { completed, INTERRUPTED, type Task, type TaskHost } from './task.js';
import { USER_SHELL_PREFIX } from './user-turns.js';

type UserShellRequest = Extract<TaskRequest, { type: 'USER_SHELL' }>;

/**
 * `run_user_shell_command`: the user's command runs outside the sandbox with the user's whole
 * environment, streamed like a tool call's (`exec_command_begin` … `exec_command_end`); the
 * history gets a record of it for the model's next turn. An interrupt kills it; what it printed
 * until then is still recorded.
 */
export class UserShellTask implements Task<UserShellRequest> {
  readonly #host: TaskHost;

  constructor(host: TaskHost) {
    this.#host = host;
  }

  async run({ request, settings }: TaskInput<UserShellRequest>, signal: AbortSignal): Promise<TaskOutput> {
    const id = request.submissionId;
    const turn = buildTurnContext(settings, id, {});
    const base = this.#host.toolContext(id, turn, signal);
    let end: EventOf<'exec_command_end'> | null = null;
    const ctx: ToolContext = {
      ...base,
      emit: (msg) => {
        if (msg.type === 'exec_command_end') end = msg;
        base.emit(msg);
      },
    };
    // The user's own command: their whole environment, not the one the model's commands get.
    await runShell(
      { command: [process.env.SHELL ?? '/bin/sh', '-lc', request.command], timeout_ms: 600_000 },
      ctx,
      { sandboxed: false, userApproved: true },
      process.env,
    );
    const finished = end as EventOf<'exec_command_end'> | null;
    this.#host.record(
      ...userShellRecord(request.command, {
        exitCode: finished?.exit_code ?? null,
        output: finished?.aggregated_output ?? '',
        durationMs: finished?.duration_ms,
        cwd: settings.cwd,
      }),
    );
    return signal.aborted ? INTERRUPTED : completed();
  }
}

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
