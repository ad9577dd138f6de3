/**
 * `exec_command`: run a shell command that may keep running, on a PTY (`tty: true`) or pipes.
 * The call returns after `yield_time_ms` with the output so far and a `session_id` for
 * `write_stdin`, or earlier with the `exit_code` once the program ended. Planned and sandboxed
 * like `shell` (orchestrator.ts); the approval request shows the command as the user's shell
 * will run it.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { ExecCommandArgs } from '../../../protocol/index.js';
import { isDirectory } from '../child-process.js';
import type { Environment } from '../environment-policy.js';
import { commandHandler, planCommandTool, runCommandTool, type AttemptResult, type CommandAttempt, type CommandTool } from '../orchestrator.js';
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

/**
 * One attempt: start the program as an exec session and wait for it to end or for the yield
 * time. Its end event comes whenever it ends, possibly long after this call returned.
 */
async function attemptExec(args: ExecCommandArgs, attempt: CommandAttempt): Promise<AttemptResult> {
  const started = performance.now();
  const { ctx, command, events } = attempt;
  if (ctx.signal.aborted) return { output: { text: 'exec_command was not started: the turn was interrupted', success: false } };
  if (!isDirectory(command.cwd)) return { output: { text: `working directory does not exist: ${command.cwd}`, success: false } };

  const manager = sessionsOf(ctx, () => new PtySessionManager(MAX_EXEC_SESSIONS, ctx.treeSlots));
  let session;
  try {
    session = await manager.start(
      attempt.argv,
      command.argv,
      { cwd: command.cwd, env: attempt.env, tty: command.tty === true },
      {
        onStart: () => events.begin(),
        // One stream, as on a terminal. Deltas are skipped while the client is behind: the
        // output stays in the session's buffers for write_stdin and the end event.
        onOutput: (chunk) => events.output('stdout', chunk),
        onExit: (exitCode, output, durationMs) => events.end({ exitCode, stdout: output, stderr: '', aggregated: output, durationMs }),
      },
    );
  } catch (error) {
    if (error instanceof TooManyExecSessionsError || error instanceof PtyUnavailableError) return { output: { text: error.message, success: false } };
    throw error;
  }

  const result = await session.collect(clampYield(args.yield_time_ms, DEFAULT_EXEC_YIELD_MS), ctx.signal);
  const output = execOutput(manager, session, result, Math.round(performance.now() - started), args.max_output_tokens);
  if (result.exitCode === null) return { output };
  return { output, finished: { exitCode: result.exitCode, output: result.output, aborted: result.interrupted } };
}

const execCommand: CommandTool<ExecCommandArgs> = {
  name: 'exec_command',
  description: DESCRIPTION,
  args: ExecCommandArgs,
  environment: EXEC_DEFAULTS,
  describe: (args, ctx) => ({
    argv: userShellArgv(args.cmd),
    cwd: resolveWorkdir(args.workdir, ctx.turn.cwd),
    escalationRequested: args.with_escalated_permissions === true,
    justification: args.justification,
    tty: args.tty === true,
  }),
  attempt: attemptExec,
};

/** The plan of an `exec_command` call (orchestrator.ts). */
export function planExecCommand(args: ExecCommandArgs, ctx: ToolContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  return planCommandTool(execCommand, args, ctx, approvals);
}

export function runExecCommand(args: ExecCommandArgs, ctx: ToolContext, plan: RunPlan): Promise<ToolOutput> {
  return runCommandTool(execCommand, args, ctx, plan);
}

export const execCommandTool = defineTool(commandHandler(execCommand));
