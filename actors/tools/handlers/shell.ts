/**
 * `shell`: run a program (an argv, no shell in between) to its end, within a timeout, and give
 * the model its exit code and output. Planned, confined and escalated by the orchestrator
 * (orchestrator.ts); started in the launcher process with stdin on /dev/null.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ShellArgs } from '../../../protocol/index.js';
import { missingProgramInSandbox } from '../../../lib/sandbox/index.js';
import { isDirectory } from '../child-process.js';
import type { ExecEvents, ExecStream } from '../exec-events.js';
import { processLauncher } from '../launcher/launcher.js';
import { commandHandler, planCommandTool, runCommandTool, type AttemptResult, type CommandAttempt, type CommandTool } from '../orchestrator.js';
import { exitCodeForSignal } from '../process-group.js';
import { defineTool, type ApprovalMemory, type RunPlan, type ToolContext, type ToolHandler, type ToolOutput, type ToolPlan } from '../tool.js';
import { HeadTailBuffer, truncateMiddle } from '../../../lib/truncate.js';

export const DEFAULT_SHELL_TIMEOUT_MS = 10_000;

/** Exit codes of the shell convention, so the model reads them as it would in a terminal. */
const EXIT_TIMED_OUT = 124;
const EXIT_NOT_EXECUTABLE = 126;
const EXIT_CANNOT_START = 127;

/** Memory bound per collected stream; the model sees far less (truncateMiddle) anyway. */
const MAX_RETAINED_BYTES = 1024 * 1024;
/** If even SIGKILL does not end the wait (a process stuck in the kernel), give up after this. */
const KILL_GIVE_UP_MS = 5_000;

const DESCRIPTION =
  'Run a program and return its exit code and combined stdout/stderr. `command` is an argv ' +
  'array run without a shell: for pipes, redirections or `&&`, pass ["bash", "-lc", "<script>"]. ' +
  'Set `workdir` rather than using `cd`. Long output is shortened in the middle. ' +
  'Commands are killed after `timeout_ms` (default 10 s).';

/** Where the command runs: relative workdirs are taken from the turn's cwd. */
export function resolveWorkdir(workdir: string | undefined, turnCwd: string): string {
  return workdir === undefined ? turnCwd : path.resolve(turnCwd, workdir);
}

interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly aggregated: string;
  readonly durationMs: number;
  readonly timedOut: boolean;
  readonly aborted: boolean;
}

/** One attempt: run the program to its end (or timeout, or interrupt), collecting its output. */
async function attemptShell(args: ShellArgs, attempt: CommandAttempt): Promise<AttemptResult> {
  const timeoutMs = args.timeout_ms ?? DEFAULT_SHELL_TIMEOUT_MS;
  attempt.events.begin();
  let result = await execute(attempt, timeoutMs);
  if (attempt.sandboxed) result = explainSandboxStartFailure(result);
  attempt.events.end(result);
  return {
    output: { text: formatForModel(result, timeoutMs), success: result.exitCode === 0 },
    finished: { exitCode: result.exitCode, output: result.aggregated, timedOut: result.timedOut, aborted: result.aborted },
  };
}

/** A missing program reported by the sandbox gets the exit code it has outside (not a denial). */
function explainSandboxStartFailure(result: ExecResult): ExecResult {
  const missing = missingProgramInSandbox(result.exitCode, result.stderr);
  if (missing === undefined) return result;
  const message = `command not found: ${missing}\n`;
  return { ...result, exitCode: EXIT_CANNOT_START, stderr: message, aggregated: message };
}

function formatForModel(result: ExecResult, timeoutMs: number): string {
  let text = `Exit code: ${result.exitCode}\nWall time: ${(result.durationMs / 1000).toFixed(1)} seconds\n`;
  if (result.timedOut) text += `Command timed out after ${timeoutMs} ms\n`;
  if (result.aborted) text += 'Command was interrupted\n';
  return `${text}Output:\n${truncateMiddle(result.aggregated)}`;
}

/** Output collected in the order it arrived, plus each stream on its own. */
class OutputCollector {
  readonly stdout = new HeadTailBuffer(MAX_RETAINED_BYTES);
  readonly stderr = new HeadTailBuffer(MAX_RETAINED_BYTES);
  readonly aggregated = new HeadTailBuffer(MAX_RETAINED_BYTES);

  constructor(private readonly events: ExecEvents) {}

  /** Program output, also streamed as deltas; `emit: false` for troupe's own notes. */
  add(stream: ExecStream, chunk: string, emit = true): void {
    if (chunk.length === 0) return;
    this[stream].append(chunk);
    this.aggregated.append(chunk);
    if (emit) this.events.output(stream, chunk);
  }

  result(exitCode: number, started: number, flags: { timedOut: boolean; aborted: boolean }): ExecResult {
    return {
      exitCode,
      stdout: this.stdout.toString(),
      stderr: this.stderr.toString(),
      aggregated: this.aggregated.toString(),
      durationMs: Math.max(0, Math.round(performance.now() - started)),
      ...flags,
    };
  }
}

async function execute(attempt: CommandAttempt, timeoutMs: number): Promise<ExecResult> {
  const { ctx, argv, env, events } = attempt;
  const { cwd } = attempt.command;
  const started = performance.now();
  const output = new OutputCollector(events);
  const notStarted = (exitCode: number, message: string): ExecResult => {
    output.add('stderr', `${message}\n`, false);
    return output.result(exitCode, started, { timedOut: false, aborted: false });
  };

  if (ctx.signal.aborted) {
    return { ...notStarted(exitCodeForSignal('SIGKILL'), 'command not started: the turn was interrupted'), aborted: true };
  }
  const program = argv[0]!;
  const subprocess = processLauncher().launch(argv, { cwd, env });

  subprocess.onOutput((stream, text) => output.add(stream, text));

  let timedOut = false;
  let aborted = false;
  const timers: NodeJS.Timeout[] = [];
  let giveUp: (() => void) | undefined;
  const gaveUp = new Promise<'gave-up'>((resolve) => {
    giveUp = () => timers.push(setTimeout(() => resolve('gave-up'), KILL_GIVE_UP_MS));
  });
  const killAll = () => {
    subprocess.kill('SIGKILL');
    giveUp?.();
  };
  const onAbort = () => {
    aborted = true;
    killAll();
  };

  ctx.signal.addEventListener('abort', onAbort, { once: true });
  timers.push(
    setTimeout(() => {
      timedOut = true;
      killAll();
    }, timeoutMs),
  );

  try {
    const outcome = await Promise.race([subprocess.outcome, gaveUp]);
    const flags = { timedOut, aborted };
    if (outcome === 'gave-up') return output.result(exitCodeForSignal('SIGKILL'), started, flags);
    if (outcome.kind === 'not_started') {
      // The program never ran: say why in the output rather than throwing. Node reports a
      // missing cwd as ENOENT, like a missing program, so look at the cwd before blaming it.
      if (!isDirectory(cwd)) return notStarted(EXIT_CANNOT_START, `working directory does not exist: ${cwd}`);
      const code = outcome.code;
      const exitCode = code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' ? EXIT_NOT_EXECUTABLE : EXIT_CANNOT_START;
      const reason = code === 'ENOENT' ? `command not found: ${program}` : `failed to start ${program}: ${outcome.message}`;
      return notStarted(exitCode, reason);
    }
    if (outcome.kind === 'lost') {
      output.add('stderr', `${outcome.message}\n`, false);
      return output.result(exitCodeForSignal('SIGKILL'), started, flags);
    }
    if (timedOut) return output.result(EXIT_TIMED_OUT, started, flags);
    if (outcome.code !== null) return output.result(outcome.code, started, flags);
    return output.result(exitCodeForSignal(outcome.signal ?? 'SIGKILL'), started, flags);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

const shellCommand: CommandTool<ShellArgs> = {
  name: 'shell',
  description: DESCRIPTION,
  args: ShellArgs,
  describe: (args, ctx) => ({
    argv: args.command,
    cwd: resolveWorkdir(args.workdir, ctx.turn.cwd),
    escalationRequested: args.with_escalated_permissions === true,
    justification: args.justification,
  }),
  attempt: attemptShell,
};

/** The plan of a `shell` call (orchestrator.ts). */
export function planShell(args: ShellArgs, ctx: ToolContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  return planCommandTool(shellCommand, args, ctx, approvals);
}

/**
 * Run a `shell` call. `env` is the command's environment: by default what the turn's
 * `shell_environment_policy` leaves of troupe's own (the same in and out of the sandbox);
 * only the user's own commands (`run_user_shell_command`) pass another.
 */
export function runShell(args: ShellArgs, ctx: ToolContext, plan: RunPlan, env?: NodeJS.ProcessEnv): Promise<ToolOutput> {
  return runCommandTool(shellCommand, args, ctx, plan, env);
}

export const shellHandler: ToolHandler<ShellArgs> = commandHandler(shellCommand);

export const shellTool = defineTool(shellHandler);
