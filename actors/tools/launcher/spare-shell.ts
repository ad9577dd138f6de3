/**
 * A spare shell: a `/bin/sh` the launcher forks ahead of time, with its pipes in place, that
 * waits on stdin for the one program it will become. Handing it a command costs a pipe write
 * and an `exec`; spawning costs a fork of the launcher, pipe and stream setup, and a wait for
 * the child's exec, which on a small VM is most of what running a short program takes. The
 * launcher forks the next spare only when no command of its own is running, so that cost falls
 * where no command waits for it.
 *
 * A hand-off must give the program exactly what a spawn would: the same environment, working
 * directory, argv, stdin, process group and exit status, and the same `not_started` answer for
 * a program or directory that does not exist. Its stdin is /dev/null, or for a program that
 * takes input (an exec session on pipes) a pipe the spare holds ready as its fd 3, of the same
 * kind a spawn makes; the shell reads its script from its own stdin, which it would read ahead
 * of the program (dash reads in blocks), so the program's input cannot come that way. So a
 * command goes to the spare only when all that is certain, and is spawned otherwise:
 *
 * - the spare's environment, and the request's, have only names a shell can carry (dash drops
 *   names such as `a.b` or `x-y`), and a probe saw the request's come through (below);
 * - the program is found the way exec finds it (an executable regular file, on `PATH` unless
 *   the name has a slash) and the working directory exists, both checked here first, so the
 *   shell never has to report a failure of its own;
 * - nothing contains a NUL byte, which spawn rejects with an error of its own.
 *
 * The script turns the spare's environment into the request's before it execs: it unsets and
 * exports what differs (a host's sessions mostly use two environments, `shell`'s and
 * `exec_command`'s, and a spare serves both), and puts back PWD, OLDPWD and SHLVL, which the
 * shell manages itself. Shells also reset variables of their own when they find them in the
 * environment (dash: IFS, PPID, OPTIND; bash more), or refuse to change some, and which ones
 * depends on the shell /bin/sh is. So before a spare started with one environment serves a
 * program with another (or the same), a probe shell started the same way runs the same script
 * and execs `env` to print what it got, and only an environment that came through exactly is
 * served.
 *
 * Node built-ins only: this runs in the launcher process.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Duplex, Readable, Writable } from 'node:stream';
import { isDirectory } from '../child-process.js';
import { shellQuote } from '../shell-quote.js';

export type SpareChild = ChildProcessByStdio<Writable, Readable, Readable>;

/** Where a handed-off program's stdin comes from. */
export type SpareInput = 'null' | 'pipe';

/** The program a spare became, and its stdin when it takes input. */
export interface HandedOff {
  readonly child: SpareChild;
  readonly stdin: Writable | null;
}

/** Variables a POSIX shell sets or changes on its own, restored before the exec. */
const SHELL_MANAGED = ['PWD', 'OLDPWD', 'SHLVL'] as const;

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Env = Readonly<Record<string, string>>;

/**
 * Per pair of environments: whether a shell started with the first, running the script that
 * turns it into the second, execs a program with exactly the second; or the probe still running.
 */
const verdicts = new WeakMap<Env, WeakMap<Env, boolean | 'probing'>>();

/**
 * Whether a spare started with `from` may serve a program that gets `to`. Unknown: the probe
 * starts, this answers false, and `probed` is called once the answer is known.
 */
function passes(from: Env, to: Env, probed: () => void): boolean {
  let byTarget = verdicts.get(from);
  if (!byTarget) {
    byTarget = new WeakMap();
    verdicts.set(from, byTarget);
  }
  const known = byTarget.get(to);
  if (known !== undefined) return known === true;
  const carried = carries(from) && carries(to);
  byTarget.set(to, carried ? 'probing' : false);
  if (carried) {
    const settle = (intact: boolean): void => {
      byTarget.set(to, intact);
      probed();
    };
    // A probe that could not even start (spawn threw) proves nothing: the spare shell is not used.
    execsWith(from, to).then(settle, () => settle(false));
  }
  return false;
}

function carries(env: Env): boolean {
  return Object.entries(env).every(([name, value]) => SHELL_NAME.test(name) && !value.includes('\0'));
}

export class SpareShell {
  readonly #child: SpareChild;
  /** Its fd 3: the stdin of a program that takes input. */
  readonly #input: Duplex;
  readonly #env: Env;
  #taken = false;

  private constructor(child: SpareChild, env: Env) {
    this.#child = child;
    this.#input = child.stdio[3] as Duplex;
    this.#env = env;
    // A spare nobody takes only ever ends by being discarded or by losing its launcher; one
    // killed from outside just before a hand-off fails the write, and its exit says the rest.
    child.on('error', () => undefined);
    child.stdin.on('error', () => undefined);
    this.#input.on('error', () => undefined);
  }

  /**
   * A spare started with `env`; null when a shell cannot pass `env` on intact, or while that is
   * being found out, in which case `probed` is called once it is known.
   */
  static start(env: Env, probed: () => void): SpareShell | null {
    if (!passes(env, env, probed)) return null;
    const child = spawn('/bin/sh', ['-s'], { cwd: '/', env, detached: true, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    return new SpareShell(child as ChildProcess as SpareChild, env);
  }

  /**
   * Whether it can give a program exactly `env` (environments are compared as the very
   * objects: the launcher keeps one per environment). Not known yet: false, and the probe that
   * finds out starts, calling `probed` when done.
   */
  serves(env: Env, probed: () => void): boolean {
    return passes(this.#env, env, probed);
  }

  /** Whether it can still take a program: started, alive, not yet taken. */
  get alive(): boolean {
    const child = this.#child;
    return !this.#taken && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Make the spare run `file` with `args` in `cwd` and `env`, when it can run it exactly as a
   * spawn would; otherwise null, and the spare stays as it was (`probed` as for `serves`). The
   * returned child is the program from here on: its pid, group, pipes and exit are the program's.
   */
  handOff(file: string, args: readonly string[], cwd: string, env: Env, input: SpareInput, probed: () => void): HandedOff | null {
    if (!this.alive || !this.serves(env, probed)) return null;
    if (!path.isAbsolute(cwd) || [file, cwd, ...args].some((text) => text.includes('\0'))) return null;
    if (!isDirectory(cwd) || !findsProgram(file, cwd, env.PATH)) return null;
    this.#taken = true;
    const stdin = input === 'pipe' ? '<&3 3<&-' : '</dev/null 3<&-';
    this.#child.stdin.end(`cd ${shellQuote(cwd)} || exit\n${execScript(this.#env, env, [file, ...args], stdin)}`);
    if (input === 'null') {
      this.#input.destroy();
      return { child: this.#child, stdin: null };
    }
    // Read it, though nothing is expected: its end is how the child's 'close' comes.
    this.#input.resume();
    return { child: this.#child, stdin: this.#input };
  }

  /** End an untaken spare (its environment is stale, or the launcher is going away). */
  discard(): void {
    if (this.#taken) return;
    this.#taken = true;
    this.#child.kill('SIGKILL');
    this.#child.stdin.destroy();
    this.#input.destroy();
    this.#child.stdout.destroy();
    this.#child.stderr.destroy();
  }
}

/**
 * In a shell started with `from`: turn its environment into `to` (what differs, and what the
 * shell manages itself), then become `argv` with `stdin` (redirections).
 */
function execScript(from: Env, to: Env, argv: readonly string[], stdin: string): string {
  const managed: readonly string[] = SHELL_MANAGED;
  const lines: string[] = [];
  for (const name of Object.keys(from)) if (!managed.includes(name) && !Object.hasOwn(to, name)) lines.push(`unset ${name}\n`);
  for (const [name, value] of Object.entries(to)) if (!managed.includes(name) && from[name] !== value) lines.push(`export ${name}=${shellQuote(value)}\n`);
  for (const name of managed) lines.push(to[name] === undefined ? `unset ${name}\n` : `export ${name}=${shellQuote(to[name])}\n`);
  return `${lines.join('')}exec ${argv.map(shellQuote).join(' ')} ${stdin}\n`;
}

/**
 * Whether a program a shell started with `from` execs sees exactly `to`: a probe shell runs the
 * spare's script and execs `env`, which prints it. (`env` rather than Node, which would act on
 * NODE_OPTIONS.) Its lines are compared as a multiset, since a shell may reorder the
 * environment and a value may hold newlines.
 */
function execsWith(from: Env, to: Env): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn('/bin/sh', ['-s', 'probe'], { cwd: '/', env: from, stdio: ['pipe', 'pipe', 'ignore'] });
    let printed = '';
    probe.on('error', () => resolve(false));
    probe.stdin.on('error', () => undefined);
    probe.stdout.setEncoding('utf8').on('data', (chunk: string) => (printed += chunk));
    probe.on('close', (code) => {
      const expected = Object.entries(to).flatMap(([name, value]) => `${name}=${value}`.split('\n'));
      const seen = printed.endsWith('\n') ? printed.slice(0, -1).split('\n') : [printed];
      resolve(code === 0 && sameLines(expected, seen));
    });
    probe.stdin.end(execScript(from, to, ['env'], '</dev/null'));
  });
}

function sameLines(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const sortedB = [...b].sort();
  return [...a].sort().every((line, i) => line === sortedB[i]);
}

function isExecutableFile(file: string): boolean {
  if (!(statSync(file, { throwIfNoEntry: false })?.isFile() ?? false)) return false;
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether exec would find `file` from `cwd`: a name with a slash is a path; any other is looked
 * up on PATH, an empty entry meaning the working directory. Without PATH, spawn and the shell
 * each fall back to a default list of their own, and the two differ: no hand-off then.
 */
function findsProgram(file: string, cwd: string, searchPath: string | undefined): boolean {
  if (file === '') return false;
  if (file.includes('/')) return isExecutableFile(path.resolve(cwd, file));
  if (searchPath === undefined) return false;
  return searchPath.split(':').some((dir) => isExecutableFile(path.resolve(cwd, dir, file)));
}
