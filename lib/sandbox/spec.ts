/**
 * What a sandbox must allow for one command, computed from the turn's policy when the command
 * starts (never cached: a `.git` an earlier command created is protected from the next one on).
 * Paths are real (symlinks resolved) because both bubblewrap and Seatbelt act on the real file
 * system: a writable root given through a symlink must be bound at its target.
 */
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { TurnContext } from '../../machines/turn-context.js';
import { isWithin, writableRoots } from './paths.js';

/** Names that stay read-only inside every writable root: history and our own rules. */
const PROTECTED_NAMES: readonly string[] = ['.git', '.troupe'];

/** Defaults of the per-command limits (see SandboxLimits). */
export const DEFAULT_MAX_PROCESSES = 2048;
export const DEFAULT_MAX_FILE_SIZE_BYTES = 4 * 1024 ** 3;

/** Resource limits of one sandboxed command and everything it starts. */
export interface SandboxLimits {
  /** Tasks (processes and threads) alive at once; a fork past it fails with EAGAIN. */
  readonly maxProcesses: number;
  /** Largest file a write may make; a write past it fails (SIGXFSZ, then EFBIG). */
  readonly maxFileSizeBytes: number;
}

export interface SandboxSpec {
  readonly mode: 'read-only' | 'workspace-write';
  /** Existing directories the command may write, real paths. Empty for read-only. */
  readonly writableRoots: readonly string[];
  /** Existing paths inside writable roots that must stay read-only, real paths. */
  readonly readOnlyPaths: readonly string[];
  /**
   * Where a protected name would be if it were created now (the writable roots and every
   * directory from a root down to cwd). A backend that can refuse to create a path (Seatbelt)
   * refuses these; bubblewrap can only bind what exists, and protects them from the next
   * command on.
   */
  readonly protectedSpots: readonly string[];
  readonly networkAccess: boolean;
  readonly cwd: string;
  readonly limits: SandboxLimits;
}

/** The sandbox for a turn; undefined under danger-full-access, which has none. */
export function sandboxSpecFor(
  turn: Pick<TurnContext, 'cwd' | 'sandbox_policy'>,
  options: { home?: string | undefined; readOnly?: readonly string[] | undefined } = {},
): SandboxSpec | undefined {
  const policy = turn.sandbox_policy;
  const mode = policy.mode;
  if (mode === 'danger-full-access') return undefined;
  const roots = writableRoots(turn);
  const real = roots === 'all' || roots === 'none' ? [] : unique(roots.map(realOrUndefined).filter((p): p is string => p !== undefined));
  const cwd = realOrUndefined(turn.cwd) ?? path.resolve(turn.cwd);
  const readOnly = new Set<string>();
  const spots = new Set<string>();
  for (const root of real) {
    for (const dir of directoriesDown(root, cwd)) {
      for (const name of PROTECTED_NAMES) {
        const candidate = path.join(dir, name);
        spots.add(candidate);
        for (const p of protectedTargets(candidate)) readOnly.add(p);
      }
    }
  }
  // The rules file decides what runs without asking: a sandboxed command must not rewrite it.
  const home = options.home !== undefined ? realOrUndefined(options.home) : undefined;
  if (home !== undefined && real.some((root) => isWithin(root, home))) readOnly.add(home);
  for (const p of options.readOnly ?? []) {
    const target = realOrUndefined(p);
    if (target !== undefined) readOnly.add(target);
  }
  return {
    mode,
    writableRoots: real,
    readOnlyPaths: [...readOnly].filter((p) => real.some((root) => isWithin(root, p))),
    protectedSpots: [...spots],
    networkAccess: policy.network_access === true,
    cwd: turn.cwd,
    limits: {
      maxProcesses: policy.max_processes ?? DEFAULT_MAX_PROCESSES,
      maxFileSizeBytes: policy.max_file_size_bytes ?? DEFAULT_MAX_FILE_SIZE_BYTES,
    },
  };
}

/** `root`, and when cwd lies below it, every directory from root down to cwd. */
function directoriesDown(root: string, cwd: string): string[] {
  if (!isWithin(root, cwd)) return [root];
  const dirs = [root];
  let dir = root;
  for (const part of path
    .relative(root, cwd)
    .split(path.sep)
    .filter((p) => p !== '')) {
    dir = path.join(dir, part);
    dirs.push(dir);
  }
  return dirs;
}

/**
 * The real paths to keep read-only for a protected name: the entry itself and, when it is a
 * gitfile (`gitdir: …`, as in linked worktrees and submodules), the git directory it names and
 * that directory's common directory, where config and hooks live.
 */
function protectedTargets(candidate: string): string[] {
  const real = realOrUndefined(candidate);
  if (real === undefined) return [];
  const targets = [real];
  if (path.basename(candidate) !== '.git' || !lstatSync(real).isFile()) return targets;
  const gitDir = pointedAt(real, /^gitdir:\s*(.+?)\s*$/m);
  if (gitDir === undefined) return targets;
  targets.push(gitDir);
  const common = pointedAt(path.join(gitDir, 'commondir'), /^(.+?)\s*$/m, gitDir);
  if (common !== undefined) targets.push(common);
  return targets;
}

/** The real path a pointer file names (relative to `base`, by default the file's directory). */
function pointedAt(file: string, pattern: RegExp, base = path.dirname(file)): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const named = pattern.exec(text)?.[1];
  return named === undefined ? undefined : realOrUndefined(path.resolve(base, named));
}

function realOrUndefined(p: string): string | undefined {
  if (!existsSync(p)) return undefined;
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

function unique(paths: string[]): string[] {
  return [...new Set(paths)];
}
