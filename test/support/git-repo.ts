import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterEach } from 'vitest';

/**
 * Scratch directories and git repositories for one test file, removed after each test.
 * Repositories get a local identity, no signing, and `main` as their branch.
 */
export function useScratchRepos(prefix: string): { tempDir(): Promise<string>; newRepo(): Promise<string> } {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  const newRepo = async () => {
    const dir = await tempDir();
    await initRepo(dir);
    return dir;
  };
  return { tempDir, newRepo };
}

/**
 * Make `dir` a git repository with a local identity, no signing and `main` as its branch; with
 * `files`, they are written and committed as a first commit.
 */
export async function initRepo(dir: string, files?: Record<string, string>): Promise<void> {
  const git = (...args: string[]) => execa('git', args, { cwd: dir, env: { GIT_OPTIONAL_LOCKS: '0' } });
  await git('init', '-q', '-b', 'main');
  await git('config', 'user.name', 'Test User');
  await git('config', 'user.email', 'test@example.com');
  await git('config', 'commit.gpgsign', 'false');
  if (files === undefined) return;
  for (const [path, content] of Object.entries(files)) await writeAt(dir, path, content);
  await git('add', '.');
  await git('commit', '-q', '-m', 'first');
}

/** Write `content` at `path` under `root`, creating folders as needed. */
export async function writeAt(root: string, path: string, content: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
}
