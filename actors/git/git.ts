import { execa } from 'execa';
import { isAbsolute, resolve } from 'node:path';
import { GitCommandError, NotAGitRepoError } from './errors.js';

export interface GitRunOptions {
  /** Extra environment for this command (e.g. `GIT_INDEX_FILE` for a temporary index). */
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
}

export interface GitRunResult {
  readonly stdout: string;
  readonly exitCode: number;
  readonly truncated: boolean;
}

/**
 * Variables that would point git at another repository or index than the one we ask about;
 * troupe may itself run inside a git hook, where they are set.
 */
const INHERITED_GIT_VARIABLES = ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_PREFIX'];

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !INHERITED_GIT_VARIABLES.includes(key)) env[key] = value;
  }
  // Read-only commands (status, diff) may otherwise refresh and rewrite the user's index.
  env.GIT_OPTIONAL_LOCKS = '0';
  env.GIT_TERMINAL_PROMPT = '0';
  // Messages we match on (and show to users) stay in one language.
  env.LC_ALL = 'C';
  return env;
}

/** Runs git in `cwd`; a non-zero exit not listed in `okExitCodes` is a GitCommandError. */
export async function runGit(cwd: string, args: readonly string[], options: GitRunOptions = {}): Promise<GitRunResult> {
  const result = await execa('git', [...args], {
    cwd,
    env: { ...baseEnv(), ...options.env },
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
    ...(options.maxOutput !== undefined ? { maxBuffer: options.maxOutput } : {}),
  });
  const stdout = typeof result.stdout === 'string' ? result.stdout : '';
  const stderr = typeof result.stderr === 'string' ? result.stderr : '';
  if (result.isMaxBuffer) return { stdout, exitCode: result.exitCode ?? -1, truncated: true };
  if (result.failed && result.exitCode === undefined) {
    // Spawning failed: git is not installed, or cwd does not exist.
    throw new GitCommandError(args, null, result.shortMessage ?? 'git could not be started', { cause: result.cause });
  }
  const exitCode = result.exitCode ?? -1;
  if (exitCode !== 0 && !(options.okExitCodes ?? []).includes(exitCode)) {
    throw new GitCommandError(args, exitCode, stderr);
  }
  return { stdout, exitCode, truncated: false };
}

/** NUL-separated git output (`-z`) as a list, without the empty tail. */
export function splitNul(text: string): string[] {
  return text.split('\0').filter((part) => part !== '');
}

/** The top of the work tree that contains `dir`; NotAGitRepoError when there is none. */
export async function repoRoot(dir: string): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await runGit(dir, ['rev-parse', '--show-toplevel']));
  } catch (cause) {
    throw new NotAGitRepoError(dir, { cause });
  }
  const top = stdout.trim();
  if (top === '') throw new NotAGitRepoError(dir);
  return isAbsolute(top) ? top : resolve(dir, top);
}

/** The commit HEAD points at, or null in a repository without commits. */
export async function headCommit(root: string): Promise<string | null> {
  const { stdout, exitCode } = await runGit(root, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1] });
  return exitCode === 0 ? stdout.trim() : null;
}

/**
 * The id of the empty tree in this repository's hash format (sha1 or sha256). Git knows the
 * empty tree without it being stored, so diffing against it needs no write.
 */
export async function emptyTree(root: string): Promise<string> {
  const { stdout } = await runGit(root, ['hash-object', '-t', 'tree', '--stdin'], { input: '' });
  return stdout.trim();
}

/** Resolves a revision to a commit id, or null when it names no commit. */
export async function resolveCommit(root: string, revision: string): Promise<string | null> {
  // A name starting with '-' would be read as an option.
  if (revision.startsWith('-')) return null;
  const { stdout, exitCode } = await runGit(root, ['rev-parse', '--verify', '--quiet', `${revision}^{commit}`], {
    okExitCodes: [1, 128],
  });
  return exitCode === 0 ? stdout.trim() : null;
}

/** The path of the user's index file (honours worktrees), absolute. */
export async function indexPath(root: string): Promise<string> {
  const { stdout } = await runGit(root, ['rev-parse', '--git-path', 'index']);
  const path = stdout.trim();
  return isAbsolute(path) ? path : resolve(root, path);
}
