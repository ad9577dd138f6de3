/**
 * Undo and review on the repository layouts people really have: linked worktrees, submodules,
 * files behind a filter (LFS-style pointers) and `core.autocrlf`. troupe's git runs without the
 * repository's programs, so these check it still stores and restores exactly what was on disk.
 */
import { realpathSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listSnapshots, restoreSnapshot, takeSnapshot } from '../lib/git/index.js';
import { resolveReviewTarget } from '../actors/tasks/review/target.js';

let scratch: string;
beforeEach(async () => {
  scratch = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-realrepo-')));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function sh(cwd: string, script: string): Promise<string> {
  return (await execa('sh', ['-c', script], { cwd })).stdout;
}

const read = (file: string) => readFile(file, 'utf8');

/** A marker-writing program: proves, by the marker's absence, that troupe never ran it. */
async function markerProgram(body: string): Promise<{ prog: string; marker: string }> {
  const marker = path.join(scratch, 'ran');
  const prog = path.join(scratch, 'prog');
  await writeFile(prog, `#!/bin/sh\necho "$*" >> ${marker}\n${body}\n`);
  await chmod(prog, 0o755);
  return { prog, marker };
}

async function ranText(marker: string): Promise<string> {
  return readFile(marker, 'utf8').catch(() => '');
}

describe('undo and review on real repository layouts', () => {
  it('a linked worktree: snapshots live in the shared refs, restore touches only that worktree', async () => {
    const main = path.join(scratch, 'main');
    await sh(scratch, 'git init -q -b main main && cd main && echo one > f.txt && git add . && git commit -qm one && git worktree add -q ../wt -b feature');
    const wt = path.join(scratch, 'wt');
    const indexBefore = await sh(wt, 'git ls-files -s --debug | sha256sum');
    const snapshot = await takeSnapshot(wt, 'wt-session');
    await writeFile(path.join(wt, 'f.txt'), 'changed\n');
    await writeFile(path.join(wt, 'g.txt'), 'new\n');
    await writeFile(path.join(main, 'f.txt'), 'main changed too\n');
    const review = await resolveReviewTarget(wt, { type: 'uncommitted_changes' });
    expect(review.prompt_context).toContain('+changed');
    expect(review.prompt_context).not.toContain('main changed too');
    await restoreSnapshot(wt, snapshot);
    expect(await read(path.join(wt, 'f.txt'))).toBe('one\n');
    expect(await sh(wt, 'ls')).toBe('f.txt');
    expect(await read(path.join(main, 'f.txt'))).toBe('main changed too\n');
    expect(await sh(wt, 'git ls-files -s --debug | sha256sum')).toBe(indexBefore);
    expect(await sh(main, "git for-each-ref '--format=%(refname)' refs/troupe/")).toBe(snapshot.ref);
    expect(await listSnapshots(main, 'wt-session')).toHaveLength(1);
  });

  it('a submodule: left alone by undo, and its own hostile config runs nothing', async () => {
    const { prog, marker } = await markerProgram('exec cat');
    await sh(scratch, 'git init -q -b main lib && cd lib && echo lib > lib.txt && git add . && git commit -qm lib');
    await sh(
      scratch,
      'git init -q -b main app && cd app && echo app > app.txt && git add . && git commit -qm app && ' +
        `git -c protocol.file.allow=always submodule add -q ${path.join(scratch, 'lib')} sub && git commit -qm sub`,
    );
    const app = path.join(scratch, 'app');
    // The submodule's git directory names programs; any git run inside it would start them.
    await sh(app, `git -C sub config core.fsmonitor ${prog} && git -C sub config filter.x.clean ${prog} && echo '* filter=x' > sub/.gitattributes`);
    const snapshot = await takeSnapshot(app, 'sub-session');
    await writeFile(path.join(app, 'app.txt'), 'changed\n');
    await writeFile(path.join(app, 'sub', 'lib.txt'), 'changed in the submodule\n');
    await resolveReviewTarget(app, { type: 'uncommitted_changes' });
    await resolveReviewTarget(app, { type: 'commit', sha: 'HEAD' });
    await restoreSnapshot(app, snapshot);
    expect(await read(path.join(app, 'app.txt'))).toBe('app\n');
    // Undo covers this repository's files; the submodule is a repository of its own.
    expect(await read(path.join(app, 'sub', 'lib.txt'))).toBe('changed in the submodule\n');
    expect(await ranText(marker)).toBe('');
  });

  it('files behind a filter (LFS-style pointers) come back as they were on disk, without the filter running', async () => {
    // A stand-in for git-lfs: clean turns content into a pointer, smudge turns it back.
    const { prog: clean, marker } = await markerProgram('printf "pointer:"; base64 -w0');
    const smudge = path.join(scratch, 'smudge');
    await writeFile(smudge, `#!/bin/sh\necho smudge >> ${marker}\nsed 's/^pointer://' | base64 -d\n`);
    await chmod(smudge, 0o755);
    const repo = path.join(scratch, 'lfs');
    await sh(
      scratch,
      `git init -q -b main lfs && cd lfs && git config filter.fake.clean ${clean} && git config filter.fake.smudge ${smudge} && ` +
        "git config filter.fake.required true && echo '*.bin filter=fake' > .gitattributes && printf 'BIG BINARY CONTENT' > model.bin && touch -d '-1 hour' model.bin .gitattributes && git add . && git commit -qm lfs",
    );
    // The user's own git did run the filter: the index holds the pointer.
    expect(await sh(repo, 'git cat-file -p :model.bin')).toMatch(/^pointer:/);
    await rm(marker, { force: true });

    // A filtered file the user has not touched is no change to review: the user's index says so
    // (for files older than the index, as files are outside tests; git re-reads newer ones).
    expect((await resolveReviewTarget(repo, { type: 'uncommitted_changes' })).empty).toBe(true);
    const snapshot = await takeSnapshot(repo, 'lfs-session');
    await writeFile(path.join(repo, 'model.bin'), 'overwritten by the turn');
    await restoreSnapshot(repo, snapshot);
    expect(await read(path.join(repo, 'model.bin'))).toBe('BIG BINARY CONTENT');
    expect(await ranText(marker)).toBe('');
  });

  it('core.autocrlf: line endings come back byte for byte', async () => {
    const repo = path.join(scratch, 'crlf');
    // Checked out by git again after the commit, so the files hold what autocrlf writes.
    await sh(
      scratch,
      "git init -q -b main crlf && cd crlf && git config core.autocrlf true && printf 'one\\r\\ntwo\\r\\n' > dos.txt && printf 'unix\\n' > unix.txt && git add . && git commit -qm crlf && rm *.txt && git checkout -- .",
    );
    const before = { dos: await read(path.join(repo, 'dos.txt')), unix: await read(path.join(repo, 'unix.txt')) };
    expect(before.unix).toBe('unix\r\n');
    const snapshot = await takeSnapshot(repo, 'crlf-session');
    await writeFile(path.join(repo, 'dos.txt'), 'replaced\n');
    await writeFile(path.join(repo, 'unix.txt'), 'replaced\r\n');
    const review = await resolveReviewTarget(repo, { type: 'uncommitted_changes' });
    expect(review.prompt_context).toContain('+replaced');
    await restoreSnapshot(repo, snapshot);
    expect(await read(path.join(repo, 'dos.txt'))).toBe(before.dos);
    expect(await read(path.join(repo, 'unix.txt'))).toBe(before.unix);
    expect(await sh(repo, 'git status --porcelain')).toBe('');
  });
});
