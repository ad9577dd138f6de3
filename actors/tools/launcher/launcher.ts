/**
 * The host's side of the launcher process (launcher-process.ts): `launch()` starts a program
 * there and gives back a handle with its pid, its output as it arrives, and its outcome.
 *
 * One launcher serves the whole host process, started on first use. It is unreferenced while
 * nothing runs, so it never keeps a host alive, and it exits when the host does. If it dies,
 * the programs it was relaying are killed and reported as failed, and the next launch starts a
 * new one.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { definedEnv } from '../child-process.js';
import { commandEnvironment } from '../environment-policy.js';
import { killProcessGroup } from '../process-group.js';
import type { LauncherReply, LauncherRequest, OutputStream } from './messages.js';

export type LaunchOutcome =
  | { readonly kind: 'exited'; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  /** The program never ran; `code` is the errno name when there is one (ENOENT, EACCES, …). */
  | { readonly kind: 'not_started'; readonly code: string | null; readonly message: string }
  /** The launcher died while the program ran; the program's process group was killed. */
  | { readonly kind: 'lost'; readonly message: string };

export interface LaunchedProcess {
  /** Known once the program has started. */
  readonly pid: number | undefined;
  /** Output as it arrives, decoded as UTF-8. */
  onOutput(listener: (stream: OutputStream, text: string) => void): void;
  /** Settles once the program has exited and its output is drained. Never rejects. */
  readonly outcome: Promise<LaunchOutcome>;
  /** Signal the program's whole process group, now or as soon as it has started. */
  kill(signal?: NodeJS.Signals): void;
}

export interface LaunchOptions {
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
}

class Running implements LaunchedProcess {
  pid: number | undefined;
  readonly outcome: Promise<LaunchOutcome>;
  readonly #listeners: ((stream: OutputStream, text: string) => void)[] = [];
  #pendingKill: NodeJS.Signals | null = null;
  #finished = false;
  #resolve!: (outcome: LaunchOutcome) => void;

  constructor() {
    this.outcome = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  onOutput(listener: (stream: OutputStream, text: string) => void): void {
    this.#listeners.push(listener);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    // Once it has ended, its pid may already belong to someone else.
    if (this.#finished) return;
    if (this.pid === undefined) this.#pendingKill = signal;
    else killProcessGroup(this.pid, signal);
  }

  started(pid: number): void {
    this.pid = pid;
    if (this.#pendingKill !== null) killProcessGroup(pid, this.#pendingKill);
  }

  output(stream: OutputStream, text: string): void {
    for (const listener of this.#listeners) listener(stream, text);
  }

  finish(outcome: LaunchOutcome): void {
    this.#finished = true;
    this.#resolve(outcome);
  }
}

export class ProcessLauncher {
  readonly #script: string;
  #child: ChildProcess | null = null;
  /** Requests written before the launcher said it listens. */
  #queued: LauncherRequest[] | null = null;
  readonly #running = new Map<number, Running>();
  #nextId = 1;
  /** The environment the current launcher process was last sent. */
  #sentEnv: Readonly<Record<string, string>> | null = null;
  /** The object `#sentEnv` was made from. */
  #sentSource: NodeJS.ProcessEnv | Readonly<Record<string, string>> | null = null;

  constructor(script: string = launcherScript()) {
    this.#script = script;
  }

  /** The launcher process, while one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  launch(argv: readonly string[], options: LaunchOptions): LaunchedProcess {
    const [file, ...args] = argv;
    if (file === undefined) throw new TypeError('launch needs a program to run');
    const id = this.#nextId++;
    const running = new Running();
    this.#running.set(id, running);
    const child = this.#ensureStarted();
    const given = options.env ?? process.env;
    let unchanged: boolean;
    let env: Readonly<Record<string, string>>;
    if (this.#sentEnv !== null && given === this.#sentSource && Object.isFrozen(given)) {
      // The very object the last request came from, and it cannot have changed since: the
      // common case (environment-policy.ts hands out one frozen object per policy).
      unchanged = true;
      env = this.#sentEnv;
    } else {
      env = definedEnv(given);
      unchanged = sameEnv(env, this.#sentEnv);
    }
    const request: LauncherRequest = { type: 'spawn', id, file, args, cwd: options.cwd, ...(unchanged ? {} : { env }) };
    this.#sentEnv = env;
    this.#sentSource = given;
    child.channel?.ref();
    if (this.#queued) this.#queued.push(request);
    else child.send(request);
    return running;
  }

  /** Stop the launcher (programs it started keep their own fate: they are killed as lost). */
  close(): void {
    this.#child?.kill('SIGKILL');
  }

  #ensureStarted(): ChildProcess {
    if (this.#child) return this.#child;
    const child = fork(this.#script, [], {
      serialization: 'json',
      // Not the host's credentials either: a command outside the sandbox could read its
      // parent's environment in /proc. (Each program gets the environment its request names.)
      env: commandEnvironment(undefined),
      // Not the host's flags: no inspector, profiler or loader conditions in the launcher.
      execArgv: [],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.#child = child;
    this.#queued = [];
    this.#sentEnv = null;
    child.on('message', (reply: LauncherReply) => this.#onReply(reply));
    child.once('exit', (code, signal) => this.#onExit(child, code === null ? `was killed by ${signal}` : `exited with code ${code}`));
    // A launcher that could not even start gets no 'exit': its commands fail the same way.
    // `on`, not `once`: a send racing with the launcher's death errors too, and an 'error'
    // without a listener would take the host down.
    child.on('error', (error) => this.#onExit(child, `could not run (${error.message})`));
    child.unref();
    return child;
  }

  #onReply(reply: LauncherReply): void {
    if (reply.type === 'ready') {
      const queued = this.#queued ?? [];
      this.#queued = null;
      for (const request of queued) this.#child?.send(request);
      return;
    }
    const running = this.#running.get(reply.id);
    if (!running) return;
    switch (reply.type) {
      case 'spawned':
        running.started(reply.pid);
        return;
      case 'output':
        running.output(reply.stream, reply.text);
        return;
      case 'exited':
        this.#settle(reply.id, { kind: 'exited', code: reply.code, signal: reply.signal });
        return;
      case 'not_started':
        this.#settle(reply.id, { kind: 'not_started', code: reply.code, message: reply.message });
        return;
    }
  }

  #settle(id: number, outcome: LaunchOutcome): void {
    const running = this.#running.get(id);
    if (!running) return;
    this.#running.delete(id);
    running.finish(outcome);
    // Idle: the launcher must not keep the host process alive.
    if (this.#running.size === 0) this.#child?.channel?.unref();
  }

  #onExit(child: ChildProcess, how: string): void {
    if (this.#child !== child) return;
    this.#child = null;
    this.#queued = null;
    for (const [id, running] of [...this.#running]) {
      if (running.pid === undefined) {
        this.#settle(id, { kind: 'not_started', code: null, message: `the process launcher ${how} before the program started` });
      } else {
        // Nobody relays its output any more: end it rather than leave it running unobserved.
        running.kill('SIGKILL');
        this.#settle(id, { kind: 'lost', message: `the process launcher ${how} while the program ran; the program was killed` });
      }
    }
  }
}

function sameEnv(env: Readonly<Record<string, string>>, sent: Readonly<Record<string, string>> | null): boolean {
  if (sent === null) return false;
  const keys = Object.keys(env);
  return keys.length === Object.keys(sent).length && keys.every((key) => Object.hasOwn(sent, key) && sent[key] === env[key]);
}

/** The compiled launcher script; from the TypeScript sources (tests), the one in dist/. */
function launcherScript(): string {
  const here = fileURLToPath(new URL('./launcher-process.js', import.meta.url));
  if (existsSync(here)) return here;
  return here.replace(/\/actors\/tools\/launcher\/launcher-process\.js$/, '/dist/actors/tools/launcher/launcher-process.js');
}

let shared: ProcessLauncher | null = null;

/** The launcher every tool of this process uses. */
export function processLauncher(): ProcessLauncher {
  shared ??= new ProcessLauncher();
  return shared;
}
