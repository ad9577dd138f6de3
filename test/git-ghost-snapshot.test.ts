import { createHash } from 'node:crypto';
import { readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { deleteSnapshot, deleteSnapshots, GhostSnapshotError, listSnapshots, NotAGitRepoError, restoreSnapshot, takeSnapshot } from '../lib/git/index.js';
import { useScratchRepos, writeAt } from './support/git-repo.js';

const { tempDir, newRepo } = useScratchRepos('troupe-git-test-');

/** Git in the test repo; optional locks off so our own inspection never rewrites the index. */
async function git(cwd: string, ...args: string[]): Promise<string> {
  const result = await execa('git', args, { cwd, env: { GIT_OPTIONAL_LOCKS: '0' }, stripFinalNewline: false });
  return result.stdout;
}

const write = writeAt;

async function read(root: string, path: string): Promise<string> {
  return readFile(join(root, path), 'utf8');
}

async function exists(root: string, path: string): Promise<boolean> {
  return stat(join(root, path)).then(
    () => true,
    () => false,
  );
}

/** Everything about the repository that a snapshot or a restore must not change. */
async function repoState(root: string) {
  const index = await readFile(join(root, '.git', 'index')).then(
    (bytes) => createHash('sha256').update(bytes).digest('hex'),
    () => 'no index',
  );
  return {
    head: (await execa('git', ['rev-parse', '--verify', '--quiet', 'HEAD'], { cwd: root, reject: false })).stdout,
    symbolic: await git(root, 'symbolic-ref', 'HEAD'),
    branches: await git(root, 'for-each-ref', 'refs/heads', 'refs/tags'),
    staged: await git(root, 'ls-files', '-s'),
    index,
  };
}

/** A repository with one commit and a dirty working tree of every kind. */
async function dirtyRepo(): Promise<string> {
  const root = await newRepo();
  await write(root, '.gitignore', 'ignored/\n*.log\n');
  await write(root, 'a.txt', 'a committed\n');
  await write(root, 'b.txt', 'b committed\n');
  await write(root, 'src/c.txt', 'c committed\n');
  await git(root, 'add', '.');
  await git(root, 'commit', '-q', '-m', 'initial');
  await write(root, 'a.txt', 'a edited by the user\n');
  await write(root, 'staged.txt', 'staged by the user\n');
  await git(root, 'add', 'staged.txt');
  await write(root, 'src/c.txt', 'c staged edit\n');
  await git(root, 'add', 'src/c.txt');
  await write(root, 'untracked.txt', 'untracked before the turn\n');
  await write(root, 'ignored/cache.bin', 'cache v1');
  await write(root, 'run.log', 'log v1');
  return root;
}

describe('ghost snapshots', () => {
  it('restores modified and deleted files, removes new ones, leaves ignored files, HEAD and the index alone', async () => {
    const root = await dirtyRepo();
    const before = await repoState(root);
    const statusBefore = await git(root, 'status', '--porcelain', '--untracked-files=all');
    const logBefore = await git(root, 'log', '--oneline');

    const snapshot = await takeSnapshot(root, 'session-1');
    expect(await repoState(root)).toEqual(before);
    expect(snapshot).toMatchObject({ sessionId: 'session-1', seq: 1, ref: 'refs/troupe/ghost/session-1/1', skipped: [] });
    expect(snapshot.parent).toBe(before.head);
    expect(await git(root, 'rev-parse', snapshot.ref)).toBe(`${snapshot.commit}\n`);
    // The snapshot holds the working tree, not the index or HEAD.
    expect(await git(root, 'show', `${snapshot.commit}:a.txt`)).toBe('a edited by the user\n');
    expect(await git(root, 'show', `${snapshot.commit}:untracked.txt`)).toBe('untracked before the turn\n');
    expect(await git(root, 'ls-tree', '-r', '--name-only', snapshot.commit)).not.toMatch(/ignored|run\.log/);

    // What a turn does: edits, deletions, new files (deep), ignored churn.
    await write(root, 'a.txt', 'a rewritten by the turn\n');
    await unlink(join(root, 'b.txt'));
    await write(root, 'staged.txt', 'changed by the turn\n');
    await unlink(join(root, 'untracked.txt'));
    await write(root, 'new.txt', 'created by the turn\n');
    await write(root, 'newdir/deep/file.ts', 'export {};\n');
    await write(root, 'src/extra.ts', 'export {};\n');
    await write(root, 'ignored/cache.bin', 'cache v2');
    await write(root, 'ignored/more.bin', 'more');
    await write(root, 'build.log', 'new log');

    const result = await restoreSnapshot(root, snapshot);
    expect([...result.restored].sort()).toEqual(['a.txt', 'b.txt', 'staged.txt', 'untracked.txt']);
    expect([...result.removed].sort()).toEqual(['new.txt', 'newdir/deep/file.ts', 'src/extra.ts']);
    expect(result.headMoved).toBe(false);

    expect(await read(root, 'a.txt')).toBe('a edited by the user\n');
    expect(await read(root, 'b.txt')).toBe('b committed\n');
    expect(await read(root, 'staged.txt')).toBe('staged by the user\n');
    expect(await read(root, 'untracked.txt')).toBe('untracked before the turn\n');
    expect(await read(root, 'src/c.txt')).toBe('c staged edit\n');
    expect(await exists(root, 'new.txt')).toBe(false);
    expect(await exists(root, 'newdir')).toBe(false);
    expect(await exists(root, 'src/extra.ts')).toBe(false);
    expect(await exists(root, 'src')).toBe(true);
    // Ignored files are not the snapshot's business, in either direction.
    expect(await read(root, 'ignored/cache.bin')).toBe('cache v2');
    expect(await read(root, 'ignored/more.bin')).toBe('more');
    expect(await read(root, 'build.log')).toBe('new log');
    expect(await read(root, 'run.log')).toBe('log v1');

    expect(await repoState(root)).toEqual(before);
    expect(await git(root, 'status', '--porcelain', '--untracked-files=all')).toBe(statusBefore);
    expect(await git(root, 'log', '--oneline')).toBe(logBefore);
  });

  it('works in a repository without commits', async () => {
    const root = await newRepo();
    await write(root, 'first.txt', 'one\n');
    await write(root, 'staged.txt', 'staged\n');
    await git(root, 'add', 'staged.txt');
    const before = await repoState(root);
    expect(before.head).toBe('');

    const snapshot = await takeSnapshot(root, 's');
    expect(snapshot.parent).toBeNull();
    expect(await git(root, 'ls-tree', '-r', '--name-only', snapshot.commit)).toBe('first.txt\nstaged.txt\n');
    expect(await repoState(root)).toEqual(before);

    await write(root, 'first.txt', 'changed\n');
    await unlink(join(root, 'staged.txt'));
    await write(root, 'second.txt', 'two\n');
    const result = await restoreSnapshot(root, snapshot);
    expect(result.headMoved).toBe(false);
    expect(await read(root, 'first.txt')).toBe('one\n');
    expect(await read(root, 'staged.txt')).toBe('staged\n');
    expect(await exists(root, 'second.txt')).toBe(false);
    expect(await repoState(root)).toEqual(before);
  });

  it('steps back one turn at a time through successive snapshots', async () => {
    const root = await dirtyRepo();
    const s1 = await takeSnapshot(root, 'sess');
    await write(root, 'turn1.txt', 'turn 1\n');
    await write(root, 'a.txt', 'turn 1 edit\n');
    const s2 = await takeSnapshot(root, 'sess');
    await write(root, 'turn2.txt', 'turn 2\n');
    await write(root, 'a.txt', 'turn 2 edit\n');
    expect([s1.seq, s2.seq]).toEqual([1, 2]);

    await restoreSnapshot(root, s2);
    await deleteSnapshot(root, s2);
    expect(await read(root, 'a.txt')).toBe('turn 1 edit\n');
    expect(await exists(root, 'turn1.txt')).toBe(true);
    expect(await exists(root, 'turn2.txt')).toBe(false);

    const [last] = (await listSnapshots(root, 'sess')).slice(-1);
    expect(last?.commit).toBe(s1.commit);
    await restoreSnapshot(root, last!);
    expect(await read(root, 'a.txt')).toBe('a edited by the user\n');
    expect(await exists(root, 'turn1.txt')).toBe(false);
  });

  it('keeps snapshots reachable through troupe refs until they are deleted', async () => {
    const root = await dirtyRepo();
    const branchesBefore = await git(root, 'for-each-ref', 'refs/heads', 'refs/tags');
    const a1 = await takeSnapshot(root, 'alpha');
    await write(root, 'x.txt', 'x');
    const a2 = await takeSnapshot(root, 'alpha');
    const b1 = await takeSnapshot(root, 'beta');

    expect(await git(root, 'for-each-ref', '--format=%(refname)', 'refs/troupe/')).toBe(
      'refs/troupe/ghost/alpha/1\nrefs/troupe/ghost/alpha/2\nrefs/troupe/ghost/beta/1\n',
    );
    expect(await git(root, 'for-each-ref', 'refs/heads', 'refs/tags')).toBe(branchesBefore);
    const listed = await listSnapshots(root, 'alpha');
    expect(listed).toEqual([a1, a2]);
    expect((await listSnapshots(root)).map((s) => s.ref)).toEqual([a1.ref, a2.ref, b1.ref]);

    // gc with immediate pruning keeps whatever a ref reaches.
    await git(root, 'gc', '-q', '--prune=now');
    await git(root, 'cat-file', '-e', `${a1.commit}^{commit}`);

    expect(await deleteSnapshots(root, 'alpha')).toBe(2);
    expect(await deleteSnapshots(root, 'alpha')).toBe(0);
    expect(await listSnapshots(root, 'alpha')).toEqual([]);
    expect(await listSnapshots(root, 'beta')).toEqual([b1]);
    expect(await git(root, 'for-each-ref', '--format=%(refname)', 'refs/troupe/')).toBe('refs/troupe/ghost/beta/1\n');
  });

  it('skips large untracked files and directories, and restore leaves them alone', async () => {
    const root = await dirtyRepo();
    await write(root, 'big.bin', 'x'.repeat(500));
    for (let i = 0; i < 5; i += 1) await write(root, `vendor/pkg/f${i}.js`, `// ${i}\n`);
    await write(root, 'small/one.txt', '1');

    const snapshot = await takeSnapshot(root, 'big', { maxUntrackedFileBytes: 100, maxUntrackedDirFiles: 3 });
    expect([...snapshot.skipped].sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: 'big.bin', reason: 'large_file', size: 500 },
      { path: 'vendor', reason: 'large_directory', size: 5 },
    ]);
    const files = await git(root, 'ls-tree', '-r', '--name-only', snapshot.commit);
    expect(files).toContain('small/one.txt');
    expect(files).not.toMatch(/big\.bin|vendor/);

    await write(root, 'vendor/pkg/f0.js', 'changed by the turn');
    await write(root, 'vendor/new.js', 'new in a skipped dir');
    await write(root, 'small/two.txt', '2');
    // A restore after a restart only has what listSnapshots reads back from the commit.
    const [reloaded] = await listSnapshots(root, 'big');
    expect(reloaded?.skipped).toEqual(snapshot.skipped);
    const result = await restoreSnapshot(root, reloaded!);
    expect(result.removed).toEqual(['small/two.txt']);
    expect(await read(root, 'big.bin')).toBe('x'.repeat(500));
    expect(await read(root, 'vendor/pkg/f0.js')).toBe('changed by the turn');
    expect(await read(root, 'vendor/new.js')).toBe('new in a skipped dir');
  });

  it('leaves repositories nested in the work tree alone and reports them', async () => {
    const root = await dirtyRepo();
    await git(root, 'init', '-q', 'inner-before');
    const snapshot = await takeSnapshot(root, 'nested');
    expect(snapshot.skipped).toEqual([{ path: 'inner-before', reason: 'nested_repository' }]);
    await git(root, 'init', '-q', 'inner-after');
    const result = await restoreSnapshot(root, snapshot);
    expect([...result.keptNestedRepos].sort()).toEqual(['inner-after', 'inner-before']);
    expect(await exists(root, 'inner-after/.git')).toBe(true);
  });

  it('snapshots the whole repository when called from a subdirectory, and reports a moved HEAD', async () => {
    const root = await dirtyRepo();
    const snapshot = await takeSnapshot(join(root, 'src'), 'sub');
    await write(root, 'top-level-new.txt', 'new');
    await git(root, 'commit', '-q', '-m', 'the turn committed');
    const result = await restoreSnapshot(join(root, 'src'), snapshot);
    expect(result.removed).toEqual(['top-level-new.txt']);
    expect(result.headMoved).toBe(true);
  });

  it('includes tracked files that an ignore rule would hide', async () => {
    const root = await dirtyRepo();
    await write(root, 'forced.log', 'force-added v1');
    await git(root, 'add', '-f', 'forced.log');
    const snapshot = await takeSnapshot(root, 'forced');
    expect(await git(root, 'show', `${snapshot.commit}:forced.log`)).toBe('force-added v1');
    await write(root, 'forced.log', 'v2');
    await restoreSnapshot(root, snapshot);
    expect(await read(root, 'forced.log')).toBe('force-added v1');
  });

  it('removes what a .gitignore created by the turn was hiding, and handles a conflicted index', async () => {
    const root = await dirtyRepo();
    const snapshot = await takeSnapshot(root, 'gi');
    await write(root, 'gen/.gitignore', 'out/\n');
    await write(root, 'gen/out/bundle.js', 'generated');
    const result = await restoreSnapshot(root, snapshot);
    expect([...result.removed].sort()).toEqual(['gen/.gitignore', 'gen/out/bundle.js']);
    expect(await exists(root, 'gen')).toBe(false);

    // A merge conflict leaves unmerged entries in the user's index; snapshots still work.
    const repo = await newRepo();
    await write(repo, 'f.txt', 'base\n');
    await git(repo, 'add', '.');
    await git(repo, 'commit', '-q', '-m', 'base');
    await git(repo, 'checkout', '-q', '-b', 'other');
    await write(repo, 'f.txt', 'other\n');
    await git(repo, 'commit', '-q', '-am', 'other');
    await git(repo, 'checkout', '-q', 'main');
    await write(repo, 'f.txt', 'mine\n');
    await git(repo, 'commit', '-q', '-am', 'mine');
    await execa('git', ['merge', 'other'], { cwd: repo, reject: false });
    const conflicted = await read(repo, 'f.txt');
    expect(conflicted).toContain('<<<<<<<');
    const before = await repoState(repo);
    const s = await takeSnapshot(repo, 'conflict');
    await write(repo, 'f.txt', 'resolved by the turn\n');
    await restoreSnapshot(repo, s);
    expect(await read(repo, 'f.txt')).toBe(conflicted);
    expect(await repoState(repo)).toEqual(before);
  });

  it('fails with NotAGitRepoError outside a repository', async () => {
    const dir = await tempDir();
    await expect(takeSnapshot(dir, 's')).rejects.toBeInstanceOf(NotAGitRepoError);
    await expect(takeSnapshot(dir, 's')).rejects.toThrow(`${dir} is not inside a git repository`);
    await expect(listSnapshots(dir)).rejects.toBeInstanceOf(NotAGitRepoError);
    await expect(deleteSnapshots(dir, 's')).rejects.toBeInstanceOf(NotAGitRepoError);
    await expect(restoreSnapshot(dir, { commit: 'a'.repeat(40), parent: null, skipped: [] })).rejects.toBeInstanceOf(NotAGitRepoError);
    await expect(takeSnapshot(join(dir, 'missing'), 's')).rejects.toBeInstanceOf(NotAGitRepoError);
  });

  it('rejects unusable session ids and unknown snapshots', async () => {
    const root = await dirtyRepo();
    await expect(takeSnapshot(root, '../escape')).rejects.toBeInstanceOf(GhostSnapshotError);
    await expect(takeSnapshot(root, 'a b')).rejects.toBeInstanceOf(GhostSnapshotError);
    await expect(restoreSnapshot(root, { commit: 'f'.repeat(40), parent: null, skipped: [] })).rejects.toThrow(/does not exist/);
  });
});
