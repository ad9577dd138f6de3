import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach } from 'vitest';
import { troupeBin } from './app-server-process.js';

/** What a `troupe` command printed, and how it exited (null: killed by a signal). */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A `troupe` command that was started. */
export interface CliRun {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
  /** What it has printed on stderr so far. */
  stderr(): string;
}

export interface CliOptions {
  readonly cwd?: string | undefined;
  /** Written to its stdin through a pipe, which then ends; without it stdin is empty. */
  readonly input?: string | undefined;
}

/** Start the built `troupe <args>` (under XState's development build) with no terminal. */
function startTroupe(args: readonly string[], env: NodeJS.ProcessEnv, options: CliOptions): CliRun {
  const child = spawn(process.execPath, ['--conditions=development', troupeBin(), ...args], {
    env,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    // 'close', not 'exit': a process can exit before what it printed has been read from its pipes.
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

/**
 * `troupe` commands for a test file, none left behind: what is still running is killed after
 * each test, or once the file's tests are done (`'file'`, for a file whose tests run side by
 * side, where one test's end must not kill another's commands).
 */
export function useTroupeCli(cleanup: 'test' | 'file' = 'test'): {
  start(args: readonly string[], env: NodeJS.ProcessEnv, options?: CliOptions): CliRun;
  run(args: readonly string[], env: NodeJS.ProcessEnv, options?: CliOptions): Promise<CliResult>;
} {
  const running = new Set<ChildProcess>();
  const killAll = async () => {
    const exits = [...running].map((child) => new Promise((resolve) => child.once('exit', resolve)));
    for (const child of running) child.kill('SIGKILL');
    await Promise.all(exits);
  };
  if (cleanup === 'test') afterEach(killAll);
  else afterAll(killAll);
  const start = (args: readonly string[], env: NodeJS.ProcessEnv, options: CliOptions = {}) => {
    const run = startTroupe(args, env, options);
    running.add(run.child);
    run.child.once('exit', () => running.delete(run.child));
    return run;
  };
  return { start, run: (args, env, options) => start(args, env, options).done };
}
