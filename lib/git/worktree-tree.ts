import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { headCommit, splitNul, type Repo } from './git.js';
import { withView, type GitView } from './view.js';

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
  /**
   * Store files that have a filter attribute (LFS, for instance) as they are on disk, even when
   * the user's index holds their cleaned form. A snapshot needs this: the view runs no smudge
   * filter, so restoring a cleaned blob would write it out as is. A diff wants the opposite,
   * the user's blobs for files that did not change.
   */
  readonly rawFiltered?: boolean;
  /** Stops the work: the git command running is killed and the call rejects with the reason. */
  readonly signal?: AbortSignal;
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
export async function writeWorktreeTree(repo: Repo, options: WorktreeTreeOptions = {}): Promise<WorktreeTree> {
  const root = repo.root;
  const head = await headCommit(repo, options.signal);
  return withView(
    repo,
    head,
    async (view) => {
      if (options.rawFiltered === true) await renormalizeFiltered(view);
      // Tracked files: modifications, deletions, mode changes. Submodules are left out: git would
      // ask each one whether it is dirty by running `git status` inside it, under its own config.
      const submodules = (await gitlinks(view)).map((path) => `:(top,literal,exclude)${path}`);
      await view.run(['add', '-u', '--', ':/', ...submodules]);
      const { add, skipped } = await untrackedToAdd(view, options);
      // Files the user force-added despite an ignore rule are tracked, so they belong in the
      // snapshot too, but the ignore rule hides them from `ls-files --others`.
      const forced = splitNul((await view.run(['ls-files', '-z', '--cached', '--ignored', '--exclude-standard'], { index: repo.indexFile })).stdout);
      for (const path of forced) if (await exists(join(root, path))) add.push(path);
      if (add.length > 0) {
        await view.run(['--literal-pathspecs', 'add', '-f', '--pathspec-from-file=-', '--pathspec-file-nul'], { input: add.join('\0') });
      }
      const tree = (await view.run(['write-tree'])).stdout.trim();
      return { tree, head, skipped };
    },
    options.signal,
  );
}

/** Paths of the submodules (gitlinks) in the view's index. */
async function gitlinks(view: GitView): Promise<string[]> {
  const paths: string[] = [];
  for (const entry of splitNul((await view.run(['ls-files', '-z', '--stage'])).stdout)) {
    if (entry.startsWith('160000 ')) paths.push(entry.slice(entry.indexOf('\t') + 1));
  }
  return paths;
}

/**
 * Hashes again, as they are on disk, the tracked files whose attributes name a filter. Only
 * looked for when the repository has attribute files at all.
 */
async function renormalizeFiltered(view: GitView): Promise<void> {
  const attributeFiles = splitNul((await view.run(['ls-files', '-z', '--', ':(glob,top)**/.gitattributes'])).stdout);
  const infoAttributes = await exists(join(view.repo.commonDir, 'info', 'attributes'));
  if (attributeFiles.length === 0 && !infoAttributes) return;
  const tracked = splitNul((await view.run(['ls-files', '-z'])).stdout);
  if (tracked.length === 0) return;
  const answers = splitNul((await view.run(['check-attr', '-z', '--stdin', 'filter'], { input: tracked.join('\0') })).stdout);
  const filtered: string[] = [];
  for (let i = 0; i + 2 < answers.length; i += 3) {
    const path = answers[i];
    const value = answers[i + 2];
    if (path !== undefined && value !== undefined && value !== 'unspecified' && value !== 'unset') filtered.push(path);
  }
  if (filtered.length === 0) return;
  await view.run(['--literal-pathspecs', 'add', '-u', '--renormalize', '--pathspec-from-file=-', '--pathspec-file-nul'], {
    input: filtered.join('\0'),
  });
}

/**
 * Untracked, non-ignored paths relative to the view's index, split into what to add and
 * what to skip for size. Directories are judged by the topmost untracked directory git reports,
 * so one huge generated folder is skipped as a unit without statting each of its files.
 */
async function untrackedToAdd(view: GitView, options: WorktreeTreeOptions): Promise<{ add: string[]; skipped: SkippedPath[] }> {
  const root = view.repo.root;
  const maxFileBytes = options.maxUntrackedFileBytes ?? DEFAULT_MAX_UNTRACKED_FILE_BYTES;
  const maxDirFiles = options.maxUntrackedDirFiles ?? DEFAULT_MAX_UNTRACKED_DIR_FILES;
  const files = splitNul((await view.run(['ls-files', '-z', '--others', '--exclude-standard'])).stdout);
  const skipped: SkippedPath[] = [];
  if (files.length === 0) return { add: [], skipped };

  const collapsed = splitNul((await view.run(['ls-files', '-z', '--others', '--exclude-standard', '--directory', '--no-empty-directory'])).stdout);
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
