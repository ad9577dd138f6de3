/**
 * A spare shell: a `/bin/sh` the launcher forks ahead of time, with its pipes in place, that
 * waits on stdin for the one program it will become. Handing it a command costs a pipe write
 * and an `exec`; spawning costs a fork of the launcher, pipe and stream setup, and a wait for
 * the child's exec, which on a small VM is most of what running a short program takes. The
 * launcher forks the next spare only when nothing of its own is running, so that cost falls
 * where no command waits for it.
 *
 * A hand-off must give the program exactly what a spawn would: the same environment, working
 * directory, argv, stdin (/dev/null), process group and exit status, and the same
 * `not_started` answer for a program or directory that does not exist. So a command goes to
 * the spare only when that is certain, and is spawned otherwise:
 *
 * - the spare was started with the request's environment, every name of which a shell can
 *   carry (dash drops names such as `a.b` or `x-y`);
 * - the program is found the way exec finds it (an executable regular file, on `PATH` unless
 *   the name has a slash) and the working directory exists, both checked here first, so the
 *   shell never has to report a failure of its own;
 * - nothing contains a NUL byte, which spawn rejects with an error of its own.
 *
 * The shell manages PWD, OLDPWD and SHLVL itself; the script puts them back as the request's
 * environment has them before it execs. Shells also reset variables of their own when they
 * find them in the environment (dash: IFS, PPID, OPTIND; bash more), and which ones depends on
 * the shell /bin/sh is. So before the first spare for an environment, a probe shell execs
 * `env` to print the environment it was given, and spares serve that environment only if it
 * came through exactly.
 *
 * Node built-ins only: this runs in the launcher process.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { isDirectory } from '../child-process.js';

export type SpareChild = ChildProcessByStdio<Writable, Readable, Readable>;

/** Variables a POSIX shell sets or changes on its own, restored before the exec. */
const SHELL_MANAGED = ['PWD', 'OLDPWD', 'SHLVL'] as const;

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Env = Readonly<Record<string, string>>;

/** Per environment: whether a shell passes it on intact, or the probe still running. */
const verdicts = new WeakMap<Env, boolean | 'probing'>();

export class SpareShell {
  readonly #child: SpareChild;
  readonly #env: Env;
  #taken = false;

  private constructor(child: SpareChild, env: Env) {
    this.#child = child;
    this.#env = env;
    // A spare nobody takes only ever ends by being discarded or by losing its launcher; one
    // killed from outside just before a hand-off fails the write, and its exit says the rest.
    child.on('error', () => undefined);
    child.stdin.on('error', () => undefined);
  }

  /**
   * A spare for programs that get `env`; null when a shell cannot pass `env` on intact, or
   * while that is being found out, in which case `probed` is called once it is known.
   */
  static start(env: Env, probed: () => void): SpareShell | null {
    const verdict = verdicts.get(env);
    if (verdict === undefined) {
      const carried = Object.entries(env).every(([name, value]) => SHELL_NAME.test(name) && !value.includes('\0'));
      verdicts.set(env, carried ? 'probing' : false);
      if (carried) {
        void passesOnIntact(env).then((intact) => {
          verdicts.set(env, intact);
          probed();
        });
      }
      return null;
    }
    if (verdict !== true) return null;
    const child = spawn('/bin/sh', ['-s'], { cwd: '/', env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    return new SpareShell(child, env);
  }

  /** Whether it was started for programs that get `env` (the very object: requests reuse it). */
  serves(env: Env): boolean {
    return env === this.#env;
  }

  /** Whether it can still take a program: started, alive, not yet taken. */
  get alive(): boolean {
    const child = this.#child;
    return !this.#taken && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Make the spare run `file` with `args` in `cwd`, when it was started with `env` and can run
   * it exactly as a spawn would; otherwise null, and the spare stays as it was. The returned
   * child is the program from here on: its pid, group, pipes and exit are the program's.
   */
  handOff(file: string, args: readonly string[], cwd: string, env: Env): SpareChild | null {
    if (!this.alive || !this.serves(env)) return null;
    if (!path.isAbsolute(cwd) || [file, cwd, ...args].some((text) => text.includes('\0'))) return null;
    if (!isDirectory(cwd) || !findsProgram(file, cwd, env.PATH)) return null;
    this.#taken = true;
    this.#child.stdin.end(`cd ${quote(cwd)} || exit\n${execScript(env, [file, ...args])}`);
    return this.#child;
  }

  /** End an untaken spare (its environment is stale, or the launcher is going away). */
  discard(): void {
    if (this.#taken) return;
    this.#taken = true;
    this.#child.kill('SIGKILL');
    this.#child.stdin.destroy();
    this.#child.stdout.destroy();
    this.#child.stderr.destroy();
  }
}

/** Put back what the shell manages as `env` has it, then become `argv`. */
function execScript(env: Env, argv: readonly string[]): string {
  const restore = SHELL_MANAGED.map((name) => (env[name] === undefined ? `unset ${name}\n` : `export ${name}=${quote(env[name])}\n`));
  return `${restore.join('')}exec ${argv.map(quote).join(' ')} </dev/null\n`;
}

/**
 * Whether a program the shell execs sees exactly `env`: a probe shell execs `env`, which prints
 * it. (`env` rather than Node, which would act on NODE_OPTIONS.) Its lines are compared as a
 * multiset, since a shell may reorder the environment and a value may hold newlines.
 */
function passesOnIntact(env: Env): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn('/bin/sh', ['-s', 'probe'], { cwd: '/', env, stdio: ['pipe', 'pipe', 'ignore'] });
    let printed = '';
    probe.on('error', () => resolve(false));
    probe.stdin.on('error', () => undefined);
    probe.stdout.setEncoding('utf8').on('data', (chunk: string) => (printed += chunk));
    probe.on('close', (code) => {
      const expected = Object.entries(env).flatMap(([name, value]) => `${name}=${value}`.split('\n'));
      const seen = printed.endsWith('\n') ? printed.slice(0, -1).split('\n') : [printed];
      resolve(code === 0 && sameLines(expected, seen));
    });
    probe.stdin.end(execScript(env, ['env']));
  });
}

function sameLines(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const sortedB = [...b].sort();
  return [...a].sort().every((line, i) => line === sortedB[i]);
}

/** Single-quoted for sh: nothing inside single quotes is special except the quote itself. */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
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
