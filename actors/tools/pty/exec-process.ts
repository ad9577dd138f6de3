/**
 * One running program of an exec session, on a PTY (node-pty) or on plain pipes, behind one
 * interface. Output arrives as text; stdout and stderr are one stream, as in a terminal.
 */
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { definedEnv, onExitDrained } from '../child-process.js';
import { exitCodeForSignal } from '../process-group.js';
import { killSession } from './kill.js';

export interface ExecProcess {
  readonly pid: number;
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

export class PtyUnavailableError extends Error {
  override readonly name = 'PtyUnavailableError';
}

/** After exit, output still in flight is awaited this long at most. */
const DRAIN_MS = 300;
/** A PTY's last output can trail its exit notice; it is done once quiet for this long. */
const QUIET_MS = 40;
const EXIT_CANNOT_START = 127;

export async function spawnExecProcess(argv: readonly string[], options: SpawnOptions): Promise<ExecProcess> {
  return options.tty ? spawnPty(argv, options) : spawnPipes(argv, options);
}

type PtyModule = typeof import('node-pty');

async function loadPty(): Promise<PtyModule> {
  try {
    return (await import('node-pty')) as PtyModule;
  } catch (error) {
    throw new PtyUnavailableError(`tty sessions are unavailable: node-pty could not be loaded (${(error as Error).message}); use tty: false`, {
      cause: error,
    });
  }
}

async function spawnPty(argv: readonly string[], options: SpawnOptions): Promise<ExecProcess> {
  const ptyModule = await loadPty();
  const [file, ...args] = argv as [string, ...string[]];
  const child = ptyModule.spawn(file, args, {
    name: 'xterm-256color',
    cols: 120,
    rows: 40,
    cwd: options.cwd,
    env: definedEnv(options.env),
  });
  const listeners: ((chunk: string) => void)[] = [];
  let lastData = Date.now();
  child.onData((chunk) => {
    lastData = Date.now();
    for (const listener of listeners) listener(chunk);
  });
  const exited = new Promise<number>((resolve) => {
    child.onExit(({ exitCode, signal }) => {
      const code = signal !== undefined && signal !== 0 ? 128 + signal : exitCode;
      const started = Date.now();
      const settle = () => {
        const now = Date.now();
        if (now - lastData >= QUIET_MS || now - started >= DRAIN_MS) resolve(code);
        else setTimeout(settle, QUIET_MS);
      };
      setTimeout(settle, QUIET_MS);
    });
  });
  return {
    pid: child.pid,
    onData: (listener) => listeners.push(listener),
    write: (data) => child.write(data),
    exited,
    kill: () => killSession(child.pid),
  };
}

function spawnPipes(argv: readonly string[], options: SpawnOptions): ExecProcess {
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const listeners: ((chunk: string) => void)[] = [];
  const emit = (chunk: string) => {
    if (chunk.length > 0) for (const listener of listeners) listener(chunk);
  };
  for (const stream of [child.stdout, child.stderr]) {
    const decoder = new StringDecoder('utf8');
    stream.on('data', (chunk: Buffer) => emit(decoder.write(chunk)));
    stream.on('end', () => emit(decoder.end()));
  }
  // Writing to a program that already ended is not an error worth crashing for.
  child.stdin.on('error', () => {});
  const exited = new Promise<number>((resolve) => {
    child.once('error', (error) => {
      emit(`failed to start ${file}: ${error.message}\n`);
      resolve(EXIT_CANNOT_START);
    });
    onExitDrained(child, DRAIN_MS, (code, signal) => resolve(code ?? exitCodeForSignal(signal ?? 'SIGKILL')));
  });
  return {
    pid: child.pid ?? -1,
    onData: (listener) => listeners.push(listener),
    write: (data) => {
      if (child.stdin.writable) child.stdin.write(data);
    },
    exited,
    kill: () => {
      if (child.pid !== undefined) killSession(child.pid);
    },
  };
}
