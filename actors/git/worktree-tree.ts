import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { headCommit, runGit, splitNul } from './git.js';
import { withTempIndex, type TempIndex } from './temp-index.js';

export type SkipReason = 'large_file' | 'large_directory' | 'nested_repository';

/** An untracked path left out of a snapshot, so the caller can warn about it. */
export interface SkippedPath {
  /** Relative to the repository root, `/`-separated; a directory has no trailing slash. */
  readonly path: string;
  readonly reason: SkipReason;
  /** Bytes for a large file, files for a large directory. */
  readonly size?: number;
}

export interface WorktreeTreeOptions {
  /** Untracked files larger than this are skipped. Default 10 MiB. */
  readonly maxUntrackedFileBytes?: number;
  /** Untracked directories holding more files than this are skipped whole. Default 1000. */
  readonly maxUntrackedDirFiles?: number;
}

export interface WorktreeTree {
  /** The tree object of the working tree as it is now. */
  readonly tree: string;
  /** HEAD when the tree was written, or null without commits. */
  readonly head: string | null;
  readonly skipped: readonly SkippedPath[];
}

export const DEFAULT_MAX_UNTRACKED_FILE_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_UNTRACKED_DIR_FILES = 1000;

/**
 * Writes the working tree (tracked files as they are on disk, plus untracked files that are
 * not ignored) as a tree object, through a private index. HEAD, branches and the user's index
 * are not touched; the only lasting effect is new objects in the object store, which git
 * collects unless something refers to them.
 */
export async function writeWorktreeTree(root: string, options: WorktreeTreeOptions = {}): Promise<WorktreeTree> {
  const head = await headCommit(root);
  return withTempIndex(root, head, async (index) => {
    // Tracked files: modifications, deletions, mode changes.
    await runGit(root, ['add', '-u', '--', ':/'], { env: index.env });
    const { add, skipped } = await untrackedToAdd(root, index, options);
    // Files the user force-added despite an ignore rule are tracked, so they belong in the
    // snapshot too, but the ignore rule hides them from `ls-files --others`.
    const forced = splitNul((await runGit(root, ['ls-files', '-z', '--cached', '--ignored', '--exclude-standard'])).stdout);
    for (const path of forced) if (await exists(join(root, path))) add.push(path);
    if (add.length > 0) {
      await runGit(root, ['--literal-pathspecs', 'add', '-f', '--pathspec-from-file=-', '--pathspec-file-nul'], {
        env: index.env,
        input: add.join('\0'),
      });
    }
    const tree = (await runGit(root, ['write-tree'], { env: index.env })).stdout.trim();
    return { tree, head, skipped };
  });
}

/**
 * Untracked, non-ignored paths relative to the index in `index`, split into what to add and
 * what to skip for size. Directories are judged by the topmost untracked directory git reports,
 * so one huge generated folder is skipped as a unit without statting each of its files.
 */
async function untrackedToAdd(
  root: string,
  index: TempIndex,
  options: WorktreeTreeOptions,
): Promise<{ add: string[]; skipped: SkippedPath[] }> {
  const maxFileBytes = options.maxUntrackedFileBytes ?? DEFAULT_MAX_UNTRACKED_FILE_BYTES;
  const maxDirFiles = options.maxUntrackedDirFiles ?? DEFAULT_MAX_UNTRACKED_DIR_FILES;
  const files = splitNul((await runGit(root, ['ls-files', '-z', '--others', '--exclude-standard'], { env: index.env })).stdout);
  const skipped: SkippedPath[] = [];
  if (files.length === 0) return { add: [], skipped };

  const collapsed = splitNul(
    (await runGit(root, ['ls-files', '-z', '--others', '--exclude-standard', '--directory', '--no-empty-directory'], { env: index.env }))
      .stdout,
  );
  const untrackedDirs = new Set(collapsed.filter((entry) => entry.endsWith('/')).map((entry) => entry.slice(0, -1)));
  const counts = new Map<string, number>();
  const dirOf = new Map<string, string>();
  for (const file of files) {
    if (file.endsWith('/')) continue;
    const dir = topUntrackedDir(file, untrackedDirs);
    if (dir === null) continue;
    dirOf.set(file, dir);
    counts.set(dir, (counts.get(dir) ?? 0) + 1);
  }
  const tooBig = new Set<string>();
  for (const [dir, count] of counts) {
    if (count > maxDirFiles) {
      tooBig.add(dir);
      skipped.push({ path: dir, reason: 'large_directory', size: count });
    }
  }

  const candidates: string[] = [];
  for (const file of files) {
    // Git lists a repository nested in the work tree as `dir/`: its content is not ours to copy.
    if (file.endsWith('/')) {
      skipped.push({ path: file.slice(0, -1), reason: 'nested_repository' });
      continue;
    }
    const dir = dirOf.get(file);
    if (dir !== undefined && tooBig.has(dir)) continue;
    candidates.push(file);
  }

  const add: string[] = [];
  const BATCH = 64;
  for (let start = 0; start < candidates.length; start += BATCH) {
    const batch = candidates.slice(start, start + BATCH);
    const sizes = await Promise.all(batch.map((file) => sizeOf(join(root, file))));
    batch.forEach((file, i) => {
      const size = sizes[i];
      if (size === undefined || size === null) return; // vanished since it was listed
      if (size > maxFileBytes) skipped.push({ path: file, reason: 'large_file', size });
      else add.push(file);
    });
  }
  return { add, skipped };
}

function topUntrackedDir(file: string, dirs: ReadonlySet<string>): string | null {
  let slash = file.indexOf('/');
  while (slash !== -1) {
    const prefix = file.slice(0, slash);
    if (dirs.has(prefix)) return prefix;
    slash = file.indexOf('/', slash + 1);
  }
  return null;
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await lstat(path)).size;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await sizeOf(path)) !== null;
}

/** Whether `path` is one of the skipped paths or lies under a skipped directory. */
export function isUnderSkipped(path: string, skipped: readonly SkippedPath[]): boolean {
  return skipped.some((entry) => path === entry.path || path.startsWith(`${entry.path}/`));
}
