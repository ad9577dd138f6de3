/**
 * What a sandbox must allow for one command, computed from the turn's policy. Paths are real
 * (symlinks resolved) because both bubblewrap and Seatbelt act on the real file system: a
 * writable root given through a symlink must be bound at its target.
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { TurnContext } from '../../machines/turn-context.js';
import { isWithin, writableRoots } from './paths.js';

/** Names that stay read-only inside every writable root: history and our own rules. */
export const PROTECTED_NAMES: readonly string[] = ['.git', '.troupe'];

export interface SandboxSpec {
  readonly mode: 'read-only' | 'workspace-write';
  /** Existing directories the command may write, real paths. Empty for read-only. */
  readonly writableRoots: readonly string[];
  /** Existing paths inside writable roots that must stay read-only, real paths. */
  readonly readOnlyPaths: readonly string[];
  readonly networkAccess: boolean;
  readonly cwd: string;
}

/** The sandbox for a turn; undefined under danger-full-access, which has none. */
export function sandboxSpecFor(turn: Pick<TurnContext, 'cwd' | 'sandbox_policy'>, options: { home?: string | undefined } = {}): SandboxSpec | undefined {
  const mode = turn.sandbox_policy.mode;
  if (mode === 'danger-full-access') return undefined;
  const roots = writableRoots(turn);
  const real = roots === 'all' || roots === 'none' ? [] : unique(roots.map(realOrUndefined).filter((p): p is string => p !== undefined));
  const readOnly = new Set<string>();
  for (const root of real) {
    for (const name of PROTECTED_NAMES) {
      const candidate = realOrUndefined(path.join(root, name));
      if (candidate !== undefined) readOnly.add(candidate);
    }
  }
  // The rules file decides what runs without asking: a sandboxed command must not rewrite it.
  const home = options.home !== undefined ? realOrUndefined(options.home) : undefined;
  if (home !== undefined && real.some((root) => isWithin(root, home))) readOnly.add(home);
  return {
    mode,
    writableRoots: real,
    readOnlyPaths: [...readOnly].filter((p) => real.some((root) => isWithin(root, p))),
    networkAccess: turn.sandbox_policy.network_access === true,
    cwd: turn.cwd,
  };
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
