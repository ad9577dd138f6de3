/**
 * How troupe runs git itself (snapshots, undo, review targets) without ever running a program
 * that the repository names. A repository is untrusted input: its `.git/config`, attributes
 * and hooks may have been written by the model, or may have come with the project. Git runs
 * programs from all three (fsmonitor, hooks, filter and diff drivers, pagers, credential
 * helpers, transports), so troupe keeps git away from every such source by construction:
 *
 * - The environment is built from nothing: no inherited GIT_* variable, no system or global
 *   config, a HOME with nothing in it, no terminal to page to or prompt on.
 * - Commands that read the work tree, an index or attributes never see the repository's
 *   config at all. They run in a view (view.ts): a private git directory whose config holds
 *   only settings on an allow-list of inert ones, copied from the repository's config as data,
 *   pointed at the repository's objects and work tree. A driver or hook that config names does
 *   not exist there, and neither does any knob a future git adds.
 * - Commands that need the repository's refs run against the repository itself, but only
 *   subcommands on a short list that read no work tree, index or attributes, and with
 *   overrides for what those can still reach (hooks, signatures, transports, maintenance).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { GitCommandError, NotAGitRepoError, UntrustedGitError } from './errors.js';

export interface GitRunOptions {
  /** Extra environment for this command (the view's GIT_DIR, GIT_INDEX_FILE, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** Written to the command's stdin. */
  readonly input?: string;
  /** Exit codes that are not failures (`git diff --no-index` exits 1 when files differ). */
  readonly okExitCodes?: readonly number[];
  /**
   * Keep at most this many characters of stdout; git is stopped once it has written more and
   * the result says `truncated`. This is how a huge diff stays out of memory.
   */
  readonly maxOutput?: number;
  /** Stops git (SIGTERM: git removes its lock files) and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface GitRunResult {
  readonly stdout: string;
  readonly exitCode: number;
  readonly truncated: boolean;
}

/** A repository as troupe found it from a directory inside its work tree. Paths are absolute. */
export interface Repo {
  /** Top of the work tree. */
  readonly root: string;
  /** This work tree's git directory (a linked worktree has its own). */
  readonly gitDir: string;
  /** Where config, objects and refs live (the main repository's git directory). */
  readonly commonDir: string;
  readonly objectsDir: string;
  /** The user's index of this work tree. */
  readonly indexFile: string;
}

/**
 * An empty directory of our own, for HOME and XDG_CONFIG_HOME: git finds no global config,
 * global attributes or global ignore file there, whatever the user's real HOME holds (and
 * when the session's cwd is HOME, the model can write it).
 */
let emptyHome: string | undefined;
function privateHome(): string {
  if (emptyHome === undefined) {
    emptyHome = mkdtempSync(join(tmpdir(), 'troupe-git-home-'));
    mkdirSync(join(emptyHome, 'config'));
  }
  return emptyHome;
}

/** The whole environment of every git troupe runs; nothing else is inherited. */
function gitEnv(): Record<string, string> {
  const home = privateHome();
  const env: Record<string, string> = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, 'config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ATTR_NOSYSTEM: '1',
    // Read-only commands may otherwise refresh and rewrite the user's index.
    GIT_OPTIONAL_LOCKS: '0',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    // Replacement refs could make a snapshot restore something other than what it saved.
    GIT_NO_REPLACE_OBJECTS: '1',
    // A partial clone fetches missing objects on demand, through a remote the repository names.
    GIT_NO_LAZY_FETCH: '1',
    // Messages we match on (and show to users) stay in one language.
    LC_ALL: 'C',
  };
  if (process.env.PATH !== undefined) env.PATH = process.env.PATH;
  return env;
}

/**
 * Overrides on every command. Command-line config wins over every file, and git hands it on
 * to any git it starts itself (a submodule's, for instance).
 */
const HARDENING: readonly string[] = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.pager=cat',
  'core.sshCommand=false',
  'core.askPass=',
  'credential.helper=',
  'protocol.allow=never',
  'diff.external=',
  'gc.auto=0',
  'maintenance.auto=false',
  'log.showSignature=false',
  'commit.gpgSign=false',
  'submodule.recurse=false',
  'diff.ignoreSubmodules=all',
].flatMap((setting) => ['-c', setting]);

/**
 * Runs git in `cwd` with the closed environment and the overrides; internal to this folder.
 * Plain `child_process`: a turn's undo snapshot starts git beside the first model request,
 * and a process library's modules would load on that path.
 */
export async function runGit(cwd: string, args: readonly string[], options: GitRunOptions = {}): Promise<GitRunResult> {
  const { signal, input, maxOutput } = options;
  signal?.throwIfAborted();
  return new Promise<GitRunResult>((resolve, reject) => {
    const child = spawn('git', [...HARDENING, ...args], {
      cwd,
      env: { ...gitEnv(), ...options.env },
      stdio: [input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      ...(signal ? { signal } : {}),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let stdoutBytes = 0;
    let truncated = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (truncated) return;
      stdout.push(chunk);
      stdoutBytes += chunk.length;
      if (maxOutput !== undefined && stdoutBytes > maxOutput) {
        // Enough: git is stopped, and the caller is told the output was cut.
        truncated = true;
        child.kill();
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    if (child.stdin) {
      // git may exit without reading all of its input (EPIPE): its exit status says how it went.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
    child.on('error', (error) => {
      if (signal?.aborted) reject(signal.reason as Error);
      // Spawning failed: git is not installed, or cwd does not exist.
      else reject(new GitCommandError(args, null, error.message || 'git could not be started', { cause: error }));
    });
    child.on('close', (code) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const text = Buffer.concat(stdout).toString('utf8');
      if (truncated) return resolve({ stdout: text.slice(0, maxOutput), exitCode: code ?? -1, truncated: true });
      const exitCode = code ?? -1;
      if (exitCode !== 0 && !(options.okExitCodes ?? []).includes(exitCode)) {
        return reject(new GitCommandError(args, exitCode, Buffer.concat(stderr).toString('utf8')));
      }
      resolve({ stdout: text, exitCode, truncated: false });
    });
  });
}

/**
 * Subcommands that may run against the repository itself: they read or write refs and objects
 * only, never the work tree, an index or attributes, so no filter, diff driver or fsmonitor is
 * consulted (hooks and signing, which some of them could reach, are overridden above).
 * Everything else runs in a view.
 */
const REPOSITORY_COMMANDS = new Set(['rev-parse', 'for-each-ref', 'update-ref', 'merge-base', 'commit-tree']);

/** Runs one of REPOSITORY_COMMANDS in the repository; any other subcommand is a bug. */
export async function repoGit(repo: Pick<Repo, 'root'>, args: readonly string[], options: GitRunOptions = {}): Promise<GitRunResult> {
  const command = args[0];
  if (command === undefined || !REPOSITORY_COMMANDS.has(command)) {
    throw new Error(`git ${command ?? '(nothing)'} must run in a view, not against the repository's own config`);
  }
  return runGit(repo.root, args, options);
}

/** NUL-separated git output (`-z`) as a list, without the empty tail. */
export function splitNul(text: string): string[] {
  return text.split('\0').filter((part) => part !== '');
}

/**
 * The repository whose work tree contains `dir`; NotAGitRepoError when there is none. A work
 * tree that does not contain `dir` (a `core.worktree` pointing elsewhere) is refused: undo
 * deletes files in the work tree, and must never be steered at another directory.
 */
export async function openRepo(dir: string, signal?: AbortSignal): Promise<Repo> {
  let stdout: string;
  try {
    ({ stdout } = await runGit(
      dir,
      ['rev-parse', '--show-toplevel', '--absolute-git-dir', '--git-common-dir', '--git-path', 'objects', '--git-path', 'index'],
      signal ? { signal } : {},
    ));
  } catch (cause) {
    signal?.throwIfAborted();
    throw new NotAGitRepoError(dir, { cause });
  }
  const [top, gitDir, commonDir, objectsDir, indexFile] = stdout.split('\n').map((line) => line.trim());
  if (!top || !gitDir || !commonDir || !objectsDir || !indexFile) throw new NotAGitRepoError(dir);
  const at = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const root = at(top);
  if (!isWithin(root, resolve(dir))) {
    throw new UntrustedGitError(`the repository at ${at(gitDir)} names ${root} as its work tree, which does not contain ${dir}`);
  }
  return { root, gitDir: at(gitDir), commonDir: at(commonDir), objectsDir: at(objectsDir), indexFile: at(indexFile) };
}

function isWithin(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** The top of the work tree that contains `dir`; NotAGitRepoError when there is none. */
export async function repoRoot(dir: string): Promise<string> {
  return (await openRepo(dir)).root;
}

/** The commit HEAD points at, or null in a repository without commits. */
export async function headCommit(repo: Pick<Repo, 'root'>, signal?: AbortSignal): Promise<string | null> {
  const { stdout, exitCode } = await repoGit(repo, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1], ...(signal ? { signal } : {}) });
  return exitCode === 0 ? stdout.trim() : null;
}

/** Resolves a revision to a commit id, or null when it names no commit. */
export async function resolveCommit(repo: Pick<Repo, 'root'>, revision: string): Promise<string | null> {
  // A name starting with '-' would be read as an option.
  if (revision.startsWith('-')) return null;
  const { stdout, exitCode } = await repoGit(repo, ['rev-parse', '--verify', '--quiet', `${revision}^{commit}`], {
    okExitCodes: [1, 128],
  });
  return exitCode === 0 ? stdout.trim() : null;
}
