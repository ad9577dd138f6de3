import { copyFile, mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { indexPath, runGit } from './git.js';

/** The environment that points git at a private index instead of the user's. */
export interface TempIndex {
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Runs `fn` with a private index holding `treeish` (a commit or tree), or an empty index when
 * `treeish` is null. The user's index is only ever read: it is copied, and the copy is merged
 * with `treeish` so that entries whose content matches keep their stat data. That spares git
 * from hashing every tracked file again on the next refresh or `add`. If the copy cannot be
 * used (no index yet, unresolved conflicts, a split index), a plain read of the tree gives the
 * same content, only slower. The temporary directory is removed afterwards, whatever happens.
 */
export async function withTempIndex<T>(root: string, treeish: string | null, fn: (index: TempIndex) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-index-'));
  const file = join(dir, 'index');
  const index: TempIndex = { env: { GIT_INDEX_FILE: file } };
  try {
    if (treeish === null) {
      await runGit(root, ['read-tree', '--empty'], { env: index.env });
    } else if (!(await seedFromUserIndex(root, treeish, file, index))) {
      await rm(file, { force: true });
      await runGit(root, ['read-tree', treeish], { env: index.env });
    }
    return await fn(index);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function seedFromUserIndex(root: string, treeish: string, file: string, index: TempIndex): Promise<boolean> {
  try {
    const source = await indexPath(root);
    await copyFile(source, file);
    // Keep the index's own timestamp: git treats entries modified in the same instant as the
    // index as "racily clean" and re-reads them; a fresh mtime on the copy would hide those edits.
    const { atime, mtime } = await stat(source);
    await utimes(file, atime, mtime);
    // One-tree merge: the index becomes `treeish`, reusing stat data where contents agree.
    await runGit(root, ['read-tree', '-m', treeish], { env: index.env });
    return true;
  } catch {
    return false;
  }
}
