/**
 * `exec_command`: run a shell command that may keep running, on a PTY (`tty: true`) or pipes.
 * The call returns after `yield_time_ms` with the output so far and a `session_id` for
 * `write_stdin`, or earlier with the `exit_code` once the program ended. Planned and sandboxed
 * like `shell`; the approval request shows the command as the user's shell will run it.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { ExecCommandArgs } from '../../../protocol/index.js';
import {
  confineCommand,
  denialHint,
  escalationAfterDenial,
  isLikelySandboxDenial,
  planCommand,
  SandboxUnavailableError,
} from '../../sandbox/index.js';
import { isDirectory } from '../child-process.js';
import { commandEnvironment, type Environment } from '../environment-policy.js';
import { PtyUnavailableError } from '../pty/exec-process.js';
import { MAX_EXEC_SESSIONS, PtySessionManager, TooManyExecSessionsError } from '../pty/session-manager.js';
import { clampYield, execOutput, sessionsOf } from '../pty/tool-output.js';
import { defineTool, type ApprovalMemory, type RunPlan, type ToolContext, type ToolOutput, type ToolPlan } from '../tool.js';
import { resolveWorkdir } from './shell.js';

export const DEFAULT_EXEC_YIELD_MS = 10_000;

/**
 * Added to the policy's environment (a pager would wait for a key nobody presses); the
 * policy's `set` still wins. One object, so the environment is computed once per policy.
 */
const EXEC_DEFAULTS: Environment = Object.freeze({ PAGER: 'cat', GIT_PAGER: 'cat' });

const DESCRIPTION =
  "Run a command line in the user's shell and return after yield_time_ms with its output so far. " +
  'While the program runs the result has a session_id: send it input, or just collect more output, with write_stdin. ' +
  'Once it ended the result has its exit_code. Use tty: true for interactive programs (REPLs, prompts).';

/** The user's shell, as a login shell for bash/zsh so their PATH and tools are there. */
export function userShellArgv(cmd: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const shell = env.SHELL !== undefined && path.isAbsolute(env.SHELL) ? env.SHELL : '/bin/bash';
  const login = ['bash', 'zsh'].includes(path.basename(shell));
  return [shell, login ? '-lc' : '-c', cmd];
}

export function planExecCommand(args: ExecCommandArgs, ctx: ToolContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  return planCommand(
    {
      argv: userShellArgv(args.cmd),
      cwd: resolveWorkdir(args.workdir, ctx.turn.cwd),
      escalationRequested: args.with_escalated_permissions === true,
      justification: args.justification,
    },
    ctx,
    approvals,
  );
}

export async function runExecCommand(args: ExecCommandArgs, ctx: ToolContext, plan: RunPlan): Promise<ToolOutput> {
  const started = performance.now();
  const cwd = resolveWorkdir(args.workdir, ctx.turn.cwd);
  const command = userShellArgv(args.cmd);
  const tty = args.tty === true;
  if (ctx.signal.aborted) return { text: 'exec_command was not started: the turn was interrupted', success: false };
  if (!isDirectory(cwd)) return { text: `working directory does not exist: ${cwd}`, success: false };

  let confined;
  try {
    confined = await confineCommand(command, ctx, { sandboxed: plan.sandboxed, tty });
  } catch (error) {
    if (error instanceof SandboxUnavailableError) return { text: error.message, success: false };
    throw error;
  }

  const manager = sessionsOf(ctx, () => new PtySessionManager(MAX_EXEC_SESSIONS, ctx.treeSlots));
  const { callId, turn } = ctx;
  const emit = (msg: Parameters<ToolContext['emit']>[0]) => {
    try {
      ctx.emit(msg);
    } catch {
      // The session may be gone by the time a long-running program prints or ends.
    }
  };
  let session;
  try {
    session = await manager.start(confined.argv, command, { cwd, env: commandEnvironment(turn.shell_environment_policy, EXEC_DEFAULTS), tty }, {
      // Skipped while the client is behind on its events: the output stays in the session's
      // buffers for write_stdin and the end event.
      onOutput: (chunk) => {
        if (ctx.flow?.open !== false) emit({ type: 'exec_command_output_delta', call_id: callId, stream: 'stdout', chunk });
      },
      onExit: (exitCode, output, durationMs) =>
        emit({
          type: 'exec_command_end',
          call_id: callId,
          turn_id: turn.turn_id,
          exit_code: exitCode,
          stdout: output,
          stderr: '',
          aggregated_output: output,
          duration_ms: durationMs,
        }),
    });
  } catch (error) {
    if (error instanceof TooManyExecSessionsError || error instanceof PtyUnavailableError) return { text: error.message, success: false };
    throw error;
  }
  emit({ type: 'exec_command_begin', call_id: callId, turn_id: turn.turn_id, command, cwd });

  const result = await session.collect(clampYield(args.yield_time_ms, DEFAULT_EXEC_YIELD_MS), ctx.signal);
  const output = execOutput(manager, session, result, Math.round(performance.now() - started), args.max_output_tokens);
  if (
    confined.spec !== undefined &&
    result.exitCode !== null &&
    isLikelySandboxDenial({ exitCode: result.exitCode, output: result.output, aborted: result.interrupted }, confined.spec)
  ) {
    return { text: `${output.text}\n${denialHint(ctx)}`, success: false, escalate: escalationAfterDenial({ argv: command, cwd }, ctx) };
  }
  return output;
}

export const execCommandTool = defineTool<ExecCommandArgs>({
  name: 'exec_command',
  description: DESCRIPTION,
  args: ExecCommandArgs,
  plan: planExecCommand,
  run: runExecCommand,
});
