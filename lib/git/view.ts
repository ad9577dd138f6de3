/**
 * A view of a repository for the git commands that touch the work tree, an index or
 * attributes: a private git directory, made for one operation and removed after it, whose
 * objects and work tree are the repository's but whose config is ours. Settings on an
 * allow-list of inert ones (line endings, file modes, the object format) are copied from the
 * repository's config, read as data; everything else, includes among it, never reaches git.
 * So `.gitattributes` may say `filter=x` or `diff=x`, and `.git/config` may define `x`, name
 * an fsmonitor or a hooks directory: in the view there is no such driver, monitor or hook.
 */
import { copyFile, mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGit, splitNul, type GitRunOptions, type GitRunResult, type Repo } from './git.js';

export interface GitView {
  readonly repo: Repo;
  /** Runs git in the view: the private directory and config, the repository's objects and work tree. */
  run(args: readonly string[], options?: Omit<GitRunOptions, 'env'> & { readonly index?: string }): Promise<GitRunResult>;
}

/**
 * Settings copied from the repository's config into a view. They change how content is
 * stored and compared (so a snapshot stores what the user's own git would store) and name
 * no program or file. Keys are as git lists them (section and name in lower case).
 */
const INERT_SETTINGS = new Set([
  'core.repositoryformatversion',
  'extensions.objectformat',
  'core.autocrlf',
  'core.eol',
  'core.safecrlf',
  'core.symlinks',
  'core.filemode',
  'core.ignorecase',
  'core.precomposeunicode',
  'core.protecthfs',
  'core.protectntfs',
  'core.checkstat',
  'core.trustctime',
  'core.quotepath',
  'core.bigfilethreshold',
  'core.compression',
  'core.loosecompression',
  'core.checkroundtripencoding',
]);

/**
 * Runs `fn` in a view whose index holds `treeish` (a commit or tree), or nothing when
 * `treeish` is null. The user's index is only ever read: it is copied, and the copy is merged
 * with `treeish` so that entries whose content matches keep their stat data, which spares git
 * hashing every tracked file again. If the copy cannot be used (no index yet, unresolved
 * conflicts, a split index), a plain read of the tree gives the same content, only slower.
 * The private directory is removed afterwards, whatever happens. `signal` stops the view's git
 * commands (each then rejects with its reason).
 */
export async function withView<T>(repo: Repo, treeish: string | null, fn: (view: GitView) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-view-'));
  try {
    const gitDir = join(dir, 'git');
    await mkdir(join(gitDir, 'refs'), { recursive: true });
    await mkdir(join(gitDir, 'info'));
    await writeFile(join(gitDir, 'HEAD'), 'ref: refs/heads/troupe-view\n');
    await writeFile(join(gitDir, 'config'), await inertConfig(repo));
    // Ignore rules and attributes are data: copied, so the view ignores and converts what the
    // repository does. A driver the attributes name is simply not defined in the view.
    await copyIfPresent(join(repo.commonDir, 'info', 'exclude'), join(gitDir, 'info', 'exclude'));
    await copyIfPresent(join(repo.commonDir, 'info', 'attributes'), join(gitDir, 'info', 'attributes'));
    const ownIndex = join(dir, 'index');
    const env = { GIT_DIR: gitDir, GIT_WORK_TREE: repo.root, GIT_OBJECT_DIRECTORY: repo.objectsDir };
    const view: GitView = {
      repo,
      run: (args, options = {}) => {
        const { index, ...rest } = options;
        return runGit(repo.root, args, { ...rest, ...(signal ? { signal } : {}), env: { ...env, GIT_INDEX_FILE: index ?? ownIndex } });
      },
    };
    if (treeish === null) {
      await view.run(['read-tree', '--empty']);
    } else if (!(await seedFromUserIndex(view, treeish, ownIndex))) {
      await rm(ownIndex, { force: true });
      await view.run(['read-tree', treeish]);
    }
    return await fn(view);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function seedFromUserIndex(view: GitView, treeish: string, file: string): Promise<boolean> {
  try {
    const source = view.repo.indexFile;
    await copyFile(source, file);
    // Keep the index's own timestamp: git treats entries modified in the same instant as the
    // index as "racily clean" and re-reads them; a fresh mtime on the copy would hide those edits.
    const { atime, mtime } = await stat(source);
    await utimes(file, atime, mtime);
    // One-tree merge: the index becomes `treeish`, reusing stat data where contents agree.
    await view.run(['read-tree', '-m', treeish]);
    return true;
  } catch {
    return false;
  }
}

/** The view's config: the repository's inert settings, nothing else. */
async function inertConfig(repo: Repo): Promise<string> {
  const listed = await runGit(tmpdir(), ['config', '--file', join(repo.commonDir, 'config'), '--list', '-z'], { okExitCodes: [1] });
  const sections = new Map<string, string[]>();
  for (const entry of splitNul(listed.stdout)) {
    const newline = entry.indexOf('\n');
    if (newline === -1) continue;
    const key = entry.slice(0, newline);
    const value = entry.slice(newline + 1);
    if (!INERT_SETTINGS.has(key) || /[\n\r]/.test(value)) continue;
    const dot = key.indexOf('.');
    const section = key.slice(0, dot);
    const lines = sections.get(section) ?? [];
    lines.push(`\t${key.slice(dot + 1)} = "${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`);
    sections.set(section, lines);
  }
  return [...sections].map(([section, lines]) => `[${section}]\n${lines.join('\n')}\n`).join('');
}

async function copyIfPresent(from: string, to: string): Promise<void> {
  try {
    await copyFile(from, to);
  } catch {
    // Absent: nothing to copy.
  }
}
