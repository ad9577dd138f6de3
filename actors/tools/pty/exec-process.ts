/**
 * One running program of an exec session, on a PTY or on plain pipes, behind one interface.
 * It runs in the launcher process like every program a tool starts (launcher/); output
 * arrives as text, stdout and stderr as one stream, as in a terminal.
 */
import { processLauncher, type LaunchOutcome } from '../launcher/launcher.js';
import { NO_PTY } from '../launcher/messages.js';
import { exitCodeForSignal } from '../process-group.js';
import { killSession } from './kill.js';
import { TroupeError } from '../../../protocol/index.js';

export interface ExecProcess {
  readonly pid: number;
  /** Output from the start: a listener added later first gets what arrived before it. */
  onData(listener: (chunk: string) => void): void;
  write(data: string): void;
  /** Resolves with the exit code (128 + signal number when killed) once the output is drained. */
  readonly exited: Promise<number>;
  /** Kill the program and everything it started. */
  kill(): void;
}

export interface SpawnOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly tty: boolean;
}

export class PtyUnavailableError extends TroupeError {
  override readonly name = 'PtyUnavailableError';
}

const EXIT_CANNOT_START = 127;

/**
 * Start `argv`. A program that cannot start still makes a process, which prints why and exits
 * with 127, as a shell would; only a terminal that cannot be had throws (PtyUnavailableError).
 */
export async function spawnExecProcess(argv: readonly string[], options: SpawnOptions): Promise<ExecProcess> {
  const launched = processLauncher().launch(argv, { cwd: options.cwd, env: options.env, stdio: options.tty ? 'tty' : 'pipe' });
  const output = new Backlog();
  launched.onOutput((_stream, text) => output.push(text));
  if (!(await launched.started)) {
    const outcome = await launched.outcome;
    const message = outcome.kind === 'exited' ? 'it did not start' : outcome.message;
    if (outcome.kind === 'not_started' && outcome.code === NO_PTY) throw new PtyUnavailableError(message);
    output.push(`failed to start ${argv[0]}: ${message}\n`);
    return {
      pid: -1,
      onData: (listener) => output.listen(listener),
      write: () => undefined,
      exited: Promise.resolve(EXIT_CANNOT_START),
      kill: () => undefined,
    };
  }
  const pid = launched.pid!;
  const exitCode = (outcome: LaunchOutcome): number => {
    switch (outcome.kind) {
      case 'exited':
        return outcome.code ?? exitCodeForSignal(outcome.signal ?? 'SIGKILL');
      case 'lost':
        // The launcher died: the group is killed; the rest of the session goes too.
        killSession(pid);
        output.push(`${outcome.message}\n`);
        return exitCodeForSignal('SIGKILL');
      case 'not_started':
        return EXIT_CANNOT_START;
    }
  };
  return {
    pid,
    onData: (listener) => output.listen(listener),
    write: (data) => launched.write(data),
    exited: launched.outcome.then(exitCode),
    kill: () => killSession(pid),
  };
}

/** Output kept until its listener is there (the session attaches after the program started). */
class Backlog {
  #listener: ((chunk: string) => void) | null = null;
  #waiting: string[] = [];

  push(chunk: string): void {
    if (this.#listener) this.#listener(chunk);
    else this.#waiting.push(chunk);
  }

  listen(listener: (chunk: string) => void): void {
    this.#listener = listener;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const chunk of waiting) listener(chunk);
  }
}
