import { rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GhostSnapshotError } from './errors.js';
import { openRepo, repoGit, splitNul, type Repo } from './git.js';
import { withView } from './view.js';
import { isUnderSkipped, writeWorktreeTree, type SkippedPath, type WorktreeTreeOptions } from './worktree-tree.js';

/**
 * Ghost snapshots: the working tree saved as a commit that no branch points at, so a turn's
 * file changes can be undone. Each is kept alive by a ref under `refs/troupe/ghost/` (gc keeps
 * anything a ref reaches; branches, tags and `git log --all`'s usual namespaces stay clean).
 */
export const GHOST_REF_PREFIX = 'refs/troupe/ghost/';

export interface GhostSnapshot {
  readonly sessionId: string;
  /** Order within the session: 1 for the first snapshot, increasing. */
  readonly seq: number;
  /** `refs/troupe/ghost/<sessionId>/<seq>`. */
  readonly ref: string;
  readonly commit: string;
  /** HEAD when the snapshot was taken (the ghost commit's parent), or null without commits. */
  readonly parent: string | null;
  /** Untracked paths the snapshot left out; restore leaves them alone as well. */
  readonly skipped: readonly SkippedPath[];
}

export type TakeSnapshotOptions = WorktreeTreeOptions;

export interface RestoreResult {
  /** Files written back from the snapshot (they were modified or deleted since). */
  readonly restored: readonly string[];
  /** Untracked, non-ignored files created since the snapshot, removed. */
  readonly removed: readonly string[];
  /** Repositories created inside the work tree since the snapshot; left in place. */
  readonly keptNestedRepos: readonly string[];
  /** HEAD no longer is the snapshot's parent (something committed or switched branch since). */
  readonly headMoved: boolean;
}

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SKIPPED_TRAILER = 'troupe-skipped: ';

function sessionPrefix(sessionId: string): string {
  if (!SESSION_ID.test(sessionId) || sessionId.includes('..') || sessionId.endsWith('.lock') || sessionId.endsWith('.')) {
    throw new GhostSnapshotError(`session id ${JSON.stringify(sessionId)} cannot be used in a git ref name`);
  }
  return `${GHOST_REF_PREFIX}${sessionId}/`;
}

/**
 * Saves the whole working tree of the repository containing `dir` (tracked files as on disk,
 * untracked files that are not ignored, minus the large ones it reports in `skipped`). HEAD,
 * branches, the user's index and the files are left exactly as they were. `options.signal`
 * stops it before its ref is written: then no snapshot exists and the call rejects.
 */
export async function takeSnapshot(dir: string, sessionId: string, options: TakeSnapshotOptions = {}): Promise<GhostSnapshot> {
  const prefix = sessionPrefix(sessionId);
  const { signal } = options;
  const repo = await openRepo(dir, signal);
  const { tree, head, skipped } = await writeWorktreeTree(repo, { ...options, rawFiltered: true });
  const message = [
    'troupe ghost snapshot',
    '',
    `troupe-session: ${sessionId}`,
    ...skipped.map((entry) => `${SKIPPED_TRAILER}${JSON.stringify(entry)}`),
    '',
  ].join('\n');
  const commit = (
    await repoGit(repo, ['commit-tree', '--no-gpg-sign', tree, ...(head ? ['-p', head] : []), '-F', '-'], {
      input: message,
      ...(signal ? { signal } : {}),
      // A fixed identity: the user may have none configured, and this commit is not theirs.
      env: {
        GIT_AUTHOR_NAME: 'troupe',
        GIT_AUTHOR_EMAIL: 'troupe@localhost',
        GIT_COMMITTER_NAME: 'troupe',
        GIT_COMMITTER_EMAIL: 'troupe@localhost',
      },
    })
  ).stdout.trim();

  // The empty old value makes update-ref fail if the ref exists, so two snapshots racing for
  // the same number cannot overwrite each other; the loser takes the next number.
  let seq = (await listRepoSnapshots(repo, sessionId, signal)).reduce((max, s) => Math.max(max, s.seq), 0) + 1;
  // The last point at which a stop leaves nothing behind (the commit is garbage without a ref).
  signal?.throwIfAborted();
  for (let attempt = 0; ; attempt += 1) {
    const ref = `${prefix}${seq}`;
    try {
      await repoGit(repo, ['update-ref', '--no-deref', ref, commit, '']);
      return { sessionId, seq, ref, commit, parent: head, skipped };
    } catch (error) {
      if (attempt >= 5) throw new GhostSnapshotError(`cannot create ${ref}`, { cause: error });
      seq += 1;
    }
  }
}

/** The snapshots kept for a session (or for every session), oldest first. */
export async function listSnapshots(dir: string, sessionId?: string): Promise<GhostSnapshot[]> {
  return listRepoSnapshots(await openRepo(dir), sessionId);
}

async function listRepoSnapshots(repo: Repo, sessionId?: string, signal?: AbortSignal): Promise<GhostSnapshot[]> {
  const pattern = sessionId === undefined ? GHOST_REF_PREFIX : sessionPrefix(sessionId);
  const { stdout } = await repoGit(
    repo,
    ['for-each-ref', '--format=%(refname)%00%(objectname)%00%(parent)%00%(contents)%01', pattern],
    signal ? { signal } : {},
  );
  const snapshots: GhostSnapshot[] = [];
  for (const record of stdout.split('\x01\n')) {
    const [ref, commit, parent, contents] = record.split('\0');
    if (!ref || !commit || !ref.startsWith(GHOST_REF_PREFIX)) continue;
    const [session, seqText, ...rest] = ref.slice(GHOST_REF_PREFIX.length).split('/');
    const seq = Number(seqText);
    if (!session || rest.length > 0 || !Number.isInteger(seq)) continue;
    snapshots.push({
      sessionId: session,
      seq,
      ref,
      commit,
      parent: parent ? (parent.split(' ')[0] ?? null) : null,
      skipped: parseSkipped(contents ?? ''),
    });
  }
  return snapshots.sort((a, b) => (a.sessionId === b.sessionId ? a.seq - b.seq : a.sessionId < b.sessionId ? -1 : 1));
}

function parseSkipped(message: string): SkippedPath[] {
  const skipped: SkippedPath[] = [];
  for (const line of message.split('\n')) {
    if (!line.startsWith(SKIPPED_TRAILER)) continue;
    try {
      const entry = JSON.parse(line.slice(SKIPPED_TRAILER.length)) as SkippedPath;
      if (typeof entry.path === 'string' && typeof entry.reason === 'string') skipped.push(entry);
    } catch {
      // A damaged trailer only costs the protection of that one path.
    }
  }
  return skipped;
}

/** Removes one snapshot's ref (its commit becomes garbage git may collect). */
export async function deleteSnapshot(dir: string, snapshot: Pick<GhostSnapshot, 'ref'>): Promise<void> {
  if (!snapshot.ref.startsWith(GHOST_REF_PREFIX)) throw new GhostSnapshotError(`${snapshot.ref} is not a troupe snapshot ref`);
  await repoGit(await openRepo(dir), ['update-ref', '--no-deref', '-d', snapshot.ref]);
}

/** Removes every snapshot ref of a session; returns how many there were. */
export async function deleteSnapshots(dir: string, sessionId: string): Promise<number> {
  const repo = await openRepo(dir);
  const snapshots = await listRepoSnapshots(repo, sessionId);
  if (snapshots.length === 0) return 0;
  await repoGit(repo, ['update-ref', '--no-deref', '--stdin'], {
    input: snapshots.map((s) => `delete ${s.ref}\n`).join(''),
  });
  return snapshots.length;
}

/**
 * Makes the working tree match `snapshot` again: files modified or deleted since come back,
 * and untracked, non-ignored files created since are removed (with directories left empty by
 * that). Left alone: ignored files (node_modules, build output), the paths the snapshot
 * skipped, repositories nested in the work tree, HEAD and branches.
 *
 * The user's index is never written. Anything staged before the snapshot was on disk then and
 * is on disk again now, so it stays consistent; only if the undone turn itself staged files
 * (`git add` from a shell command) does the index keep those entries, which `git status` then
 * shows. Rewriting the index to hide that would risk losing the user's own staging.
 */
export async function restoreSnapshot(dir: string, snapshot: Pick<GhostSnapshot, 'commit' | 'parent' | 'skipped'>): Promise<RestoreResult> {
  const repo = await openRepo(dir);
  const root = repo.root;
  const found = await repoGit(repo, ['rev-parse', '--verify', '--quiet', `${snapshot.commit}^{commit}`], { okExitCodes: [1, 128] });
  if (found.exitCode !== 0) throw new GhostSnapshotError(`snapshot ${snapshot.commit} does not exist in ${root}`);

  return withView(repo, snapshot.commit, async (view) => {
    // Stat data lets diff-files tell which files really differ without us reading any.
    await view.run(['update-index', '-q', '--refresh'], { okExitCodes: [1] });
    // Without --ignore-submodules, diff-files asks each submodule whether it is dirty by
    // starting `git status` inside it, under that submodule's own config.
    const changed = splitNul((await view.run(['diff-files', '--ignore-submodules=all', '--name-only', '-z'])).stdout);
    if (changed.length > 0) {
      await view.run(['checkout-index', '-f', '-z', '--stdin'], { input: changed.join('\0') });
    }

    // After the checkout, so the ignore rules are the snapshot's own .gitignore files. A
    // .gitignore the turn created is itself removed, and what it hid shows up only then: hence
    // another pass whenever one goes (bounded, one pass per directory level in practice).
    const removed: string[] = [];
    const keptNestedRepos = new Set<string>();
    const parents = new Set<string>();
    for (let pass = 0; pass < 16; pass += 1) {
      const extra = splitNul((await view.run(['ls-files', '-z', '--others', '--exclude-standard'])).stdout);
      let removedIgnoreFile = false;
      for (const path of extra) {
        if (path.endsWith('/')) {
          keptNestedRepos.add(path.slice(0, -1));
          continue;
        }
        if (isUnderSkipped(path, snapshot.skipped)) continue;
        await rm(join(root, path), { force: true });
        removed.push(path);
        if (path === '.gitignore' || path.endsWith('/.gitignore')) removedIgnoreFile = true;
        for (let parent = dirname(path); parent !== '.' && parent !== '/'; parent = dirname(parent)) parents.add(parent);
      }
      if (!removedIgnoreFile) break;
    }
    // Deepest first, so a chain of directories the turn created disappears entirely; rmdir
    // refuses non-empty directories, which is exactly the ones to keep.
    for (const parent of [...parents].sort((a, b) => b.split('/').length - a.split('/').length)) {
      await rmdir(join(root, parent)).catch(() => undefined);
    }

    const head = (await repoGit(repo, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okExitCodes: [1] })).stdout.trim() || null;
    return { restored: changed, removed, keptNestedRepos: [...keptNestedRepos], headMoved: head !== snapshot.parent };
  });
}
