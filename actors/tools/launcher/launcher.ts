/**
 * The host's side of the launcher process (launcher-process.ts): `launch()` starts a program
 * there and gives back a handle with its pid, its output as it arrives, its input, and its
 * outcome. Every program a tool runs starts here: `shell`'s commands and `exec_command`'s
 * sessions, on pipes or a terminal.
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
import { coreEnvironment } from '../environment-policy.js';
import { killProcessGroup } from '../process-group.js';
import { MAX_ENVIRONMENTS, type LaunchStdio, type LauncherReply, type LauncherRequest, type OutputStream } from './messages.js';

export type LaunchOutcome =
  | { readonly kind: 'exited'; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  /** The program never ran; `code` is the errno name when there is one (ENOENT, EACCES, …). */
  | { readonly kind: 'not_started'; readonly code: string | null; readonly message: string }
  /** The launcher died while the program ran; the program's process group was killed. */
  | { readonly kind: 'lost'; readonly message: string };

export interface LaunchedProcess {
  /** Known once the program has started. */
  readonly pid: number | undefined;
  /** True once the program has started; false if it never did (the outcome says why). */
  readonly started: Promise<boolean>;
  /** Output as it arrives, decoded as UTF-8. Listeners added later miss what came before. */
  onOutput(listener: (stream: OutputStream, text: string) => void): void;
  /** Settles once the program has exited and its output is drained. Never rejects. */
  readonly outcome: Promise<LaunchOutcome>;
  /** Input for a program launched with `stdio: 'pipe'` or `'tty'`; dropped once it has ended. */
  write(data: string): void;
  /** Signal the program's whole process group, now or as soon as it has started. */
  kill(signal?: NodeJS.Signals): void;
}

export interface LaunchOptions {
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
  /** How its input and output are connected (messages.ts); default `null`: stdin is /dev/null. */
  readonly stdio?: LaunchStdio;
}

class Running implements LaunchedProcess {
  pid: number | undefined;
  readonly started: Promise<boolean>;
  readonly outcome: Promise<LaunchOutcome>;
  readonly #listeners: ((stream: OutputStream, text: string) => void)[] = [];
  #pendingKill: NodeJS.Signals | null = null;
  #finished = false;
  #resolveStarted!: (started: boolean) => void;
  #resolve!: (outcome: LaunchOutcome) => void;

  constructor(private readonly input: (data: string) => void) {
    this.started = new Promise((resolve) => {
      this.#resolveStarted = resolve;
    });
    this.outcome = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  write(data: string): void {
    if (!this.#finished) this.input(data);
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

  spawned(pid: number): void {
    this.pid = pid;
    this.#resolveStarted(true);
    if (this.#pendingKill !== null) killProcessGroup(pid, this.#pendingKill);
  }

  output(stream: OutputStream, text: string): void {
    for (const listener of this.#listeners) listener(stream, text);
  }

  finish(outcome: LaunchOutcome): void {
    this.#finished = true;
    this.#resolveStarted(this.pid !== undefined);
    this.#resolve(outcome);
  }
}

/** An environment as the launcher knows it: by a number, sent once. */
interface NumberedEnv {
  readonly id: number;
  readonly env: Readonly<Record<string, string>>;
}

export class ProcessLauncher {
  readonly #script: string;
  #child: ChildProcess | null = null;
  /** Requests written before the launcher said it listens. */
  #queued: LauncherRequest[] | null = null;
  readonly #running = new Map<number, Running>();
  #nextId = 1;
  /**
   * Environments by the frozen object they were given as, found without comparing: the common
   * case (environment-policy.ts hands out one frozen object per policy).
   */
  readonly #byObject = new WeakMap<object, NumberedEnv>();
  /** The environments used last, least recently first: one given as another object is found here. */
  readonly #recent: NumberedEnv[] = [];
  #nextEnvId = 1;
  /** The numbers of the environments the current launcher process holds, oldest first, as it keeps them. */
  #held: number[] = [];

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
    const child = this.#ensureStarted();
    const running = new Running((data) => this.#send(child, { type: 'stdin', id, data }));
    this.#running.set(id, running);
    const { id: envId, env } = this.#numbered(options.env ?? process.env);
    const held = this.#held.includes(envId);
    if (!held) {
      this.#held.push(envId);
      if (this.#held.length > MAX_ENVIRONMENTS) this.#held.shift();
    }
    const stdio = options.stdio ?? 'null';
    const request: LauncherRequest = {
      type: 'spawn',
      id,
      file,
      args,
      cwd: options.cwd,
      envId,
      ...(held ? {} : { env }),
      ...(stdio === 'null' ? {} : { stdio }),
    };
    child.channel?.ref();
    this.#send(child, request);
    return running;
  }

  /** The number of `given`'s environment: the same for the same variables, while it is in use. */
  #numbered(given: NodeJS.ProcessEnv | Readonly<Record<string, string>>): NumberedEnv {
    const frozen = Object.isFrozen(given);
    let numbered = frozen ? this.#byObject.get(given) : undefined;
    if (numbered === undefined) {
      const env = definedEnv(given);
      const index = this.#recent.findIndex((candidate) => sameEnv(env, candidate.env));
      numbered = index === -1 ? { id: this.#nextEnvId++, env } : this.#recent.splice(index, 1)[0]!;
      if (frozen) this.#byObject.set(given, numbered);
    } else {
      const index = this.#recent.indexOf(numbered);
      if (index !== -1) this.#recent.splice(index, 1);
    }
    this.#recent.push(numbered);
    if (this.#recent.length > MAX_ENVIRONMENTS) this.#recent.shift();
    return numbered;
  }

  /** Send to `child`, after the requests queued before it was ready; nothing once it is gone. */
  #send(child: ChildProcess, request: LauncherRequest): void {
    if (this.#child !== child) return;
    if (this.#queued) this.#queued.push(request);
    else child.send(request);
  }

  /** Stop the launcher (programs it started keep their own fate: they are killed as lost). */
  close(): void {
    this.#child?.kill('SIGKILL');
  }

  #ensureStarted(): ChildProcess {
    if (this.#child) return this.#child;
    const child = fork(this.#script, [], {
      serialization: 'json',
      // Only the core variables: a command outside the sandbox can read its parent's
      // environment in /proc, and a session's policy may withhold more than the default one
      // does. (Each program gets the environment its request names.)
      env: coreEnvironment(),
      // Not the host's flags: no inspector, profiler or loader conditions in the launcher.
      execArgv: [],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.#child = child;
    this.#queued = [];
    this.#held = [];
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
        running.spawned(reply.pid);
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

function sameEnv(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && b[key] === a[key]);
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
