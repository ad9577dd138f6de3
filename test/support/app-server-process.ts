import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Event, type EventMsg } from '../../protocol/index.js';

const BIN = fileURLToPath(new URL('../../bin/troupe.js', import.meta.url).href.replace('/dist/', '/'));

/** `bin/troupe.js` of this checkout, whether this file runs from source or from dist/. */
export function troupeBin(): string {
  return BIN;
}

export interface AppServerProcessOptions {
  /** The fake (or real) model's base URL. */
  readonly modelUrl: string;
  /** TROUPE_HOME; a fresh temporary directory when absent (removed by `dispose`). */
  readonly home?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly args?: readonly string[];
}

/**
 * `troupe app-server` in a child process, driven over stdio as a client would: write
 * submissions, read events. Every event line is validated against the protocol schema, and
 * anything on stdout that is not an event fails the test that reads it.
 */
export class AppServerProcess {
  readonly events: Event[] = [];
  /** Lines on stdout that were not valid events (there must be none). */
  readonly junk: string[] = [];
  stderr = '';
  readonly home: string;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #ownsHome: boolean;
  readonly #exit: Promise<number | null>;
  #waiters: (() => void)[] = [];
  #counter = 0;

  private constructor(child: ChildProcessWithoutNullStreams, home: string, ownsHome: boolean) {
    this.#child = child;
    this.home = home;
    this.#ownsHome = ownsHome;
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
    this.#lines = lines;
    lines.on('line', (line) => {
      try {
        this.events.push(Event.parse(JSON.parse(line)));
      } catch {
        this.junk.push(line);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
    this.#exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  static async start(options: AppServerProcessOptions): Promise<AppServerProcess> {
    const home = options.home ?? (await mkdtemp(join(tmpdir(), 'troupe-home-')));
    const child = spawn(process.execPath, ['--conditions=development', BIN, 'app-server', ...(options.args ?? [])], {
      env: {
        ...process.env,
        OPENAI_BASE_URL: options.modelUrl,
        OPENAI_API_KEY: 'test-key',
        TROUPE_HOME: home,
        TROUPE_MODEL: 'test-model',
        TROUPE_RETRY_BASE_MS: '1',
        TROUPE_LOG: process.env.TROUPE_LOG ?? 'warn',
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new AppServerProcess(child, home, options.home === undefined);
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /**
   * Stop reading stdout, as a stuck client does: what the process writes piles up in the pipe,
   * then in the process. Lines already read are still taken.
   */
  pauseReading(): void {
    this.#lines.pause();
  }

  /** Read stdout again after `pauseReading`. */
  resumeReading(): void {
    this.#lines.resume();
  }

  /** Bytes written to stdin that the process has not taken yet (the pipe is full). */
  get unreadInput(): number {
    return this.#child.stdin.writableLength;
  }

  /** Write raw text to stdin (several lines, or part of one). */
  write(text: string): void {
    this.#child.stdin.write(text);
  }

  /** Write one raw line to stdin. */
  writeLine(line: string): void {
    this.#child.stdin.write(`${line}\n`);
  }

  /** Submit an op; returns its submission id. */
  submit(op: Record<string, unknown>, sessionId?: string, id = `sub-${++this.#counter}`): string {
    this.writeLine(JSON.stringify({ id, ...(sessionId ? { session_id: sessionId } : {}), op }));
    return id;
  }

  /** Wait for the first event (from `from` on) that matches. */
  async waitFor(predicate: (event: Event) => boolean, what = 'an event', timeoutMs = 20_000, from = 0): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    // Each wake looks only at the events that came since the last look.
    let next = from;
    for (;;) {
      for (; next < this.events.length; next++) {
        const event = this.events[next]!;
        if (predicate(event)) return event;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; events so far:\n${this.events.map((e) => JSON.stringify(e)).join('\n')}\nstderr:\n${this.stderr}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Wait for an event of `type` (optionally in one session and matching more conditions). */
  waitForMsg<T extends EventMsg['type']>(
    type: T,
    options: { session?: string; id?: string; where?: (msg: Extract<EventMsg, { type: T }>) => boolean; from?: number } = {},
  ): Promise<Event & { msg: Extract<EventMsg, { type: T }> }> {
    return this.waitFor(
      (e) =>
        e.msg.type === type &&
        (options.session === undefined || e.session_id === options.session) &&
        (options.id === undefined || e.id === options.id) &&
        (options.where === undefined || options.where(e.msg as Extract<EventMsg, { type: T }>)),
      `${type}${options.id ? ` for ${options.id}` : ''}`,
      20_000,
      options.from ?? 0,
    ) as Promise<Event & { msg: Extract<EventMsg, { type: T }> }>;
  }

  /** Open a session and return its id. */
  async newSession(config: Record<string, unknown> = {}): Promise<string> {
    const id = this.submit({ type: 'new_session', config });
    const configured = await this.waitForMsg('session_configured', { id });
    return configured.msg.session_id;
  }

  /** Run a user turn to its end (`task_complete` or `turn_aborted`); returns the closing event. */
  async turn(sessionId: string, text: string, extra: Record<string, unknown> = {}): Promise<Event> {
    const id = this.submit({ type: 'user_turn', items: [{ type: 'text', text }], ...extra }, sessionId);
    return this.waitFor(
      (e) => e.session_id === sessionId && e.id === id && (e.msg.type === 'task_complete' || e.msg.type === 'turn_aborted'),
      `the end of turn ${id}`,
    );
  }

  ofSession(sessionId: string): Event[] {
    return this.events.filter((e) => e.session_id === sessionId && e.seq !== null);
  }

  /** Close stdin and wait for the process to exit; returns its exit code. */
  async end(): Promise<number | null> {
    this.#child.stdin.end();
    return this.#exit;
  }

  /** Kill the process if still running and remove the home directory this harness made. */
  async dispose(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGKILL');
      await this.#exit;
    }
    if (this.#ownsHome) await rm(this.home, { recursive: true, force: true });
  }
}

/**
 * Every session's `seq` runs on without a gap or a repeat: from 1, or, for a session this
 * stream resumed, from `starts` (the seq after the last one the previous process kept).
 */
export function seqProblems(events: readonly Event[], starts: ReadonlyMap<string, number> = new Map()): string[] {
  const bySession = new Map<string, number[]>();
  for (const e of events) {
    if (e.session_id === null || e.seq === null) continue;
    const list = bySession.get(e.session_id) ?? [];
    list.push(e.seq);
    bySession.set(e.session_id, list);
  }
  const problems: string[] = [];
  for (const [session, seqs] of bySession) {
    const first = starts.get(session) ?? 1;
    seqs.forEach((seq, i) => {
      if (seq !== first + i) problems.push(`session ${session}: event ${i + 1} has seq ${seq}, expected ${first + i}`);
    });
  }
  return problems;
}
