/**
 * Whether our own process may write a path for a turn (apply_patch writes files itself, so the
 * sandbox cannot stop it: this check must). It holds to what a sandboxed command may write,
 * from the same spec (spec.ts): the writable roots, less every path the sandbox keeps read-only
 * (`.git` and `.troupe` in each directory from a root down to cwd, the git directory a gitfile
 * names, troupe's home, and `readOnly`: the session's shell snapshots). Symlinks are resolved,
 * so a link inside the workspace that points outside does not make its target writable.
 */
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { TurnContext } from '../../machines/turn-context.js';
import { isWithin, writableRoots } from './paths.js';
import { sandboxSpecFor } from './spec.js';

export type WriteVerdict = { readonly ok: true } | { readonly ok: false; readonly why: string };

export function checkWritable(
  turn: Pick<TurnContext, 'cwd' | 'sandbox_policy'>,
  target: string,
  options: { home?: string | undefined; readOnly?: readonly string[] | undefined } = {},
): WriteVerdict {
  const roots = writableRoots(turn);
  if (roots === 'all') return { ok: true };
  if (roots === 'none') return { ok: false, why: `the read-only sandbox does not let ${target} be written` };
  const real = realPathOf(target);
  if (!roots.map(realPathOf).some((root) => isWithin(root, real))) {
    const via = real === path.resolve(target) ? '' : ` (it resolves to ${real})`;
    return { ok: false, why: `${target}${via} is outside the writable roots of the sandbox` };
  }
  const home = options.home !== undefined ? realPathOf(options.home) : undefined;
  if (home !== undefined && isWithin(home, real)) return { ok: false, why: `${target} is inside troupe's home ${home}, which the sandbox keeps read-only` };
  const spec = sandboxSpecFor(turn, options);
  const kept = [...(spec?.protectedSpots ?? []), ...(spec?.readOnlyPaths ?? [])].find((p) => isWithin(p, real));
  if (kept !== undefined) return { ok: false, why: `${target} is inside ${kept}, which the sandbox keeps read-only` };
  return { ok: true };
}

/**
 * The real path of `p`: its deepest existing ancestor resolved, the rest appended. A dangling
 * symlink counts as existing and is followed to where a write through it would land.
 */
export function realPathOf(p: string, depth = 0): string {
  let existing = path.resolve(p);
  const rest: string[] = [];
  while (!lexists(existing)) {
    const parent = path.dirname(existing);
    if (parent === existing) break;
    rest.unshift(path.basename(existing));
    existing = parent;
  }
  let base = existing;
  try {
    base = realpathSync(existing);
  } catch {
    // Dangling: follow the link by hand (bounded, like the kernel's own limit on link chains).
    if (depth < 40 && lstatSync(existing, { throwIfNoEntry: false })?.isSymbolicLink()) {
      base = realPathOf(path.resolve(path.dirname(existing), readlinkSync(existing)), depth + 1);
    }
  }
  return path.join(base, ...rest);
}

function lexists(p: string): boolean {
  return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}
