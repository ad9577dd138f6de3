import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ResponseItem } from '../protocol/index.js';
import { loadProjectDocs, projectDocDirs, projectDocsReader } from '../lib/prompts/project-docs.js';

let scratch: string;
beforeEach(async () => {
  scratch = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-agents-md-')));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const textOf = (item: ResponseItem | null): string => (item?.type === 'message' ? item.content.map((c) => ('text' in c ? c.text : '')).join('') : '');

async function layout(): Promise<{ home: string; repo: string; deep: string }> {
  const home = path.join(scratch, 'home');
  const repo = path.join(scratch, 'repo');
  const deep = path.join(repo, 'packages', 'app');
  await mkdir(home, { recursive: true });
  await mkdir(path.join(repo, '.git'), { recursive: true });
  await mkdir(deep, { recursive: true });
  await writeFile(path.join(home, 'AGENTS.md'), 'HOME: be brief.\n');
  await writeFile(path.join(scratch, 'AGENTS.md'), 'ABOVE THE REPO: never read.\n');
  await writeFile(path.join(repo, 'AGENTS.md'), 'ROOT: run npm test.\n');
  await writeFile(path.join(repo, 'packages', 'AGENTS.md'), 'PACKAGES: use workspaces.\n');
  await writeFile(path.join(deep, 'AGENTS.md'), 'APP: the app is in React.\n');
  return { home, repo, deep };
}

describe('AGENTS.md project instructions', () => {
  it('reads the home file, then every file from the repository root down to cwd, in that order', async () => {
    const { home, repo, deep } = await layout();
    const docs = loadProjectDocs(deep, home);
    expect(docs.files).toEqual([
      path.join(home, 'AGENTS.md'),
      path.join(repo, 'AGENTS.md'),
      path.join(repo, 'packages', 'AGENTS.md'),
      path.join(deep, 'AGENTS.md'),
    ]);
    const text = textOf(docs.message);
    expect(text.startsWith('<user_instructions>\n')).toBe(true);
    const order = ['HOME: be brief.', 'ROOT: run npm test.', 'PACKAGES: use workspaces.', 'APP: the app is in React.'].map((t) => text.indexOf(t));
    expect(order.every((at, i) => at > (order[i - 1] ?? -1))).toBe(true);
    expect(text).toContain(`# ${path.join(repo, 'packages', 'AGENTS.md')}`);
    expect(text).not.toContain('ABOVE THE REPO');
    expect(docs.omittedBytes).toBe(0);
  });

  it('cuts at the byte limit, keeping the outermost files, and says how much it left out', async () => {
    const { home, deep } = await layout();
    await writeFile(path.join(deep, 'AGENTS.md'), `APP: ${'é'.repeat(100)}\n`);
    const limit = 'HOME: be brief.\n'.length + 'ROOT: run npm test.\n'.length + 10;
    const docs = loadProjectDocs(deep, home, limit);
    const text = textOf(docs.message);
    expect(text).toContain('ROOT: run npm test.');
    expect(text).toContain('PACKAGES:');
    expect(text).not.toContain('use workspaces');
    expect(text).not.toContain('APP:');
    expect(text).not.toContain('\uFFFD');
    expect(docs.omittedBytes).toBeGreaterThan(200);
    expect(loadProjectDocs(deep, home, 0).message).toBeNull();
  });

  it('are read once for the sessions placed in the same turn of the event loop, and afresh in the next', async () => {
    const { home, deep } = await layout();
    const read = projectDocsReader();
    const first = read(deep, home);
    // A change within the same turn is not seen: the answer is the one of the turn's first read.
    writeFileSync(path.join(deep, 'AGENTS.md'), 'APP: now in Svelte.\n');
    expect(read(deep, home)).toBe(first);
    expect(textOf(read(deep, home, 10_000).message)).toContain('APP: now in Svelte.');
    await new Promise((resolve) => setImmediate(resolve));
    expect(textOf(read(deep, home).message)).toContain('APP: now in Svelte.');
    expect(textOf(first.message)).toContain('APP: the app is in React.');
  });

  it("outside a repository reads only the working directory's own file", async () => {
    const plain = path.join(scratch, 'plain', 'sub');
    await mkdir(plain, { recursive: true });
    await writeFile(path.join(scratch, 'plain', 'AGENTS.md'), 'PARENT\n');
    await writeFile(path.join(plain, 'AGENTS.md'), 'HERE\n');
    expect(projectDocDirs(plain)).toEqual([plain]);
    const docs = loadProjectDocs(plain, undefined);
    expect(textOf(docs.message)).toContain('HERE');
    expect(textOf(docs.message)).not.toContain('PARENT');
    const empty = path.join(scratch, 'empty');
    await mkdir(empty);
    expect(loadProjectDocs(empty, path.join(scratch, 'no-home'))).toEqual({ files: [], message: null, omittedBytes: 0 });
  });

  it('follows a symlinked cwd to the repository it is really in', async () => {
    const { repo, deep } = await layout();
    const link = path.join(scratch, 'shortcut');
    await symlink(deep, link);
    const docs = loadProjectDocs(link, undefined);
    expect(docs.files[0]).toBe(path.join(repo, 'AGENTS.md'));
    expect(textOf(docs.message)).toContain('APP: the app is in React.');
  });

  it('counts a gitfile (a linked worktree) as the top of the repository, and skips a directory named AGENTS.md', async () => {
    const wt = path.join(scratch, 'wt');
    await mkdir(path.join(wt, 'src', 'AGENTS.md'), { recursive: true });
    await writeFile(path.join(wt, '.git'), 'gitdir: /elsewhere\n');
    await writeFile(path.join(wt, 'AGENTS.md'), 'WORKTREE ROOT\n');
    const docs = loadProjectDocs(path.join(wt, 'src'), undefined);
    expect(docs.files).toEqual([path.join(wt, 'AGENTS.md')]);
  });

  it('skips an AGENTS.md that is a FIFO instead of waiting for a writer (the read is synchronous)', async () => {
    const dir = path.join(scratch, 'fifo');
    await mkdir(dir);
    await execa('mkfifo', [path.join(dir, 'AGENTS.md')]);
    const home = path.join(scratch, 'home');
    await mkdir(home);
    await writeFile(path.join(home, 'AGENTS.md'), 'HOME\n');
    const docs = loadProjectDocs(dir, home);
    expect(docs.files).toEqual([path.join(home, 'AGENTS.md')]);
  });
});
