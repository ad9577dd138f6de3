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
    const git = (...args: string[]) => execa('git', args, { cwd: dir, env: { GIT_OPTIONAL_LOCKS: '0' } });
    await git('init', '-q', '-b', 'main');
    await git('config', 'user.name', 'Test User');
    await git('config', 'user.email', 'test@example.com');
    await git('config', 'commit.gpgsign', 'false');
    return dir;
  };
  return { tempDir, newRepo };
}

/** Write `content` at `path` under `root`, creating folders as needed. */
export async function writeAt(root: string, path: string, content: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
}
