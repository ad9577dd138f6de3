/**
 * Where a turn may write, by its sandbox policy. Pure path arithmetic: no file system access,
 * so symlinks are not resolved here.
 */
import os from 'node:os';
import path from 'node:path';
import type { TurnContext } from '../../machines/turn-context.js';

/** `'all'`: anywhere (danger-full-access); `'none'`: nowhere (read-only); else these roots. */
export function writableRoots(turn: Pick<TurnContext, 'cwd' | 'sandbox_policy'>): string[] | 'all' | 'none' {
  const policy = turn.sandbox_policy;
  switch (policy.mode) {
    case 'danger-full-access':
      return 'all';
    case 'read-only':
      return 'none';
    case 'workspace-write': {
      const roots = [turn.cwd, ...(policy.writable_roots ?? []).map((root) => path.resolve(turn.cwd, root)), os.tmpdir()];
      return [...new Set(roots.map((root) => path.resolve(root)))];
    }
  }
}

/** True when `target` is `root` or lies below it. Both are taken as absolute (resolved). */
export function isWithin(root: string, target: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(target));
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/** True when `target` may be written under `roots`. */
export function isWritable(roots: string[] | 'all' | 'none', target: string): boolean {
  if (roots === 'all') return true;
  if (roots === 'none') return false;
  return roots.some((root) => isWithin(root, target));
}

/**
 * True when a path climbs out of cwd through `..` segments (a path without `..` is left to the
 * writable-roots check, even when absolute).
 */
export function escapesCwd(cwd: string, relPath: string): boolean {
  if (!relPath.split(/[\\/]/).includes('..')) return false;
  return !isWithin(cwd, path.resolve(cwd, relPath));
}
