/**
 * Exec sessions: programs that outlive the tool call that started them (a dev server, a
 * REPL), addressed by a session id across calls and turns. The manager is a session resource:
 * when the troupe session closes, every program is killed with everything it started.
 */
import { performance } from 'node:perf_hooks';
import { HeadTailBuffer } from '../../../lib/truncate.js';
import { spawnExecProcess, type ExecProcess, type SpawnOptions } from './exec-process.js';
import type { TreeSlots } from '../tool.js';
import { TroupeError } from '../../../protocol/index.js';

export const MAX_EXEC_SESSIONS = 16;
/** What one call may return at most; the middle of anything larger is dropped. */
export const MAX_CALL_OUTPUT_BYTES = 128 * 1024;
/** What the final `exec_command_end` event keeps of the whole output. */
const MAX_RECORDED_BYTES = 1024 * 1024;
/** How long dispose waits for killed programs to be reaped. */
const DISPOSE_WAIT_MS = 2_000;

export class TooManyExecSessionsError extends TroupeError {
  override readonly name = 'TooManyExecSessionsError';
  override readonly code = 'bad_request';
}

export interface ExecSessionHooks {
  /** The program started; called before any of its output. */
  onStart?(): void;
  /** Every chunk of output, as it arrives. */
  onOutput?(chunk: string): void;
  /** The program ended: exit code, whole output (bounded) and how long it ran. */
  onExit?(exitCode: number, output: string, durationMs: number): void;
}

export interface CollectResult {
  /** Output since the previous collect, at most MAX_CALL_OUTPUT_BYTES (middle-truncated). */
  readonly output: string;
  /** Set once the program ended. */
  readonly exitCode: number | null;
  readonly interrupted: boolean;
}

export class ExecSession {
  #pending = new HeadTailBuffer(MAX_CALL_OUTPUT_BYTES);
  readonly #recorded = new HeadTailBuffer(MAX_RECORDED_BYTES);
  #exitCode: number | null = null;
  readonly #ended: Promise<number>;
  #hooks: ExecSessionHooks;

  constructor(
    readonly id: number,
    readonly command: readonly string[],
    readonly cwd: string,
    private readonly process: ExecProcess,
    hooks: ExecSessionHooks,
  ) {
    this.#hooks = hooks;
    const started = performance.now();
    this.#hooks.onStart?.();
    process.onData((chunk) => {
      this.#pending.append(chunk);
      this.#recorded.append(chunk);
      this.#hooks.onOutput?.(chunk);
    });
    this.#ended = process.exited.then((code) => {
      this.#exitCode = code;
      this.#hooks.onExit?.(code, this.#recorded.toString(), Math.round(performance.now() - started));
      return code;
    });
  }

  get pid(): number {
    return this.process.pid;
  }

  get exitCode(): number | null {
    return this.#exitCode;
  }

  get ended(): Promise<number> {
    return this.#ended;
  }

  write(chars: string): void {
    if (this.#exitCode === null) this.process.write(chars);
  }

  kill(): void {
    this.process.kill();
  }

  /** No more events: the troupe session that would carry them is closing. */
  silence(): void {
    this.#hooks = {};
  }

  /** Waits until the program ends or `yieldMs` passes (or `signal` aborts), then takes the new output. */
  async collect(yieldMs: number, signal: AbortSignal): Promise<CollectResult> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const waited = await Promise.race([
      this.#ended.then(() => 'ended' as const),
      new Promise<'yield'>((resolve) => {
        timer = setTimeout(() => resolve('yield'), yieldMs);
      }),
      new Promise<'aborted'>((resolve) => {
        if (signal.aborted) resolve('aborted');
        onAbort = () => resolve('aborted');
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    if (waited === 'aborted') {
      this.kill();
      await Promise.race([this.#ended, delay(DISPOSE_WAIT_MS)]);
    }
    const output = this.#pending.toString();
    this.#pending = new HeadTailBuffer(MAX_CALL_OUTPUT_BYTES);
    return { output, exitCode: this.#exitCode, interrupted: waited === 'aborted' };
  }
}

export class PtySessionManager {
  readonly #sessions = new Map<number, ExecSession>();
  #nextId = 1;
  #disposed = false;

  constructor(
    readonly maxSessions: number = MAX_EXEC_SESSIONS,
    /** The session tree's shared budget of live programs, when the session belongs to one. */
    private readonly treeSlots?: TreeSlots,
  ) {}

  /** Programs still running. */
  get live(): number {
    return [...this.#sessions.values()].filter((s) => s.exitCode === null).length;
  }

  async start(argv: readonly string[], display: readonly string[], options: SpawnOptions, hooks: ExecSessionHooks = {}): Promise<ExecSession> {
    if (this.#disposed) throw new Error('the session is closing: no new exec sessions');
    if (this.live >= this.maxSessions) {
      throw new TooManyExecSessionsError(
        `too many exec sessions: ${this.maxSessions} are still running. End one first (write_stdin with Ctrl-C "\\u0003" or Ctrl-D "\\u0004", or let it exit), then try again.`,
      );
    }
    if (this.treeSlots && !(await this.treeSlots.acquire('exec'))) {
      throw new TooManyExecSessionsError(
        'too many exec sessions in this session tree: its agents together run as many programs as allowed. End one first, then try again.',
      );
    }
    let process;
    try {
      process = await spawnExecProcess(argv, options);
    } catch (error) {
      this.treeSlots?.release('exec');
      throw error;
    }
    const session = new ExecSession(this.#nextId++, display, options.cwd, process, hooks);
    this.#sessions.set(session.id, session);
    const release = (): void => this.treeSlots?.release('exec');
    session.ended.then(release, release);
    return session;
  }

  get(id: number): ExecSession | undefined {
    return this.#sessions.get(id);
  }

  /** Forget a session whose end has been reported. */
  forget(id: number): void {
    this.#sessions.delete(id);
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const session of sessions) {
      session.silence();
      session.kill();
    }
    await Promise.race([Promise.allSettled(sessions.map((s) => s.ended)), delay(DISPOSE_WAIT_MS)]);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
