/**
 * Two parts of the sandbox against real bubblewrap: protected names (`.git`, `.troupe`) that
 * appear during a session are protected from the next command on, gitfiles included; and the
 * per-command limits (processes, file size) hold, a fork bomb included.
 */
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectSandbox, sandboxSpecFor } from '../lib/sandbox/index.js';
import { runShell } from '../actors/tools/handlers/shell.js';
import type { ToolContext } from '../actors/tools/tool.js';
import type { SandboxPolicy } from '../protocol/index.js';
import { processesMatching } from './support/processes.js';
import { makeToolContext } from './support/tool-context.js';
import { waitFor } from './support/wait.js';

const availability = await detectSandbox();
const bwrapWorks = availability.ok && availability.backend.kind === 'bubblewrap';

let workspace: string;
beforeEach(async () => {
  workspace = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-protect-')));
});
afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
});

function context(cwd: string, sandbox: SandboxPolicy = 'workspace-write'): ToolContext {
  return makeToolContext(cwd, { sandbox }).ctx;
}

function sandboxed(script: string, cwd = workspace, sandbox: SandboxPolicy = 'workspace-write', timeoutMs?: number) {
  return runShell({ command: ['sh', '-c', script], ...(timeoutMs ? { timeout_ms: timeoutMs } : {}) }, context(cwd, sandbox), {
    sandboxed: true,
    userApproved: false,
  });
}

describe('protected names that appear during a session', () => {
  it('the spec protects a .git created after the session started, in cwd and on the way to it', async () => {
    const sub = path.join(workspace, 'pkg', 'app');
    await mkdir(sub, { recursive: true });
    const before = sandboxSpecFor(context(sub).turn)!;
    expect(before.readOnlyPaths).toEqual([]);
    expect(before.protectedSpots).toEqual(
      expect.arrayContaining([path.join(workspace, '.git'), path.join(workspace, 'pkg', '.git'), path.join(sub, '.troupe')]),
    );
    await mkdir(path.join(workspace, 'pkg', '.git'));
    await mkdir(path.join(sub, '.troupe'));
    expect([...sandboxSpecFor(context(sub).turn)!.readOnlyPaths].sort()).toEqual([path.join(workspace, 'pkg', '.git'), path.join(sub, '.troupe')].sort());
  });

  it("a gitfile protects the git directory it names, and that directory's common directory", async () => {
    const common = path.join(workspace, 'store');
    const gitDir = path.join(common, 'worktrees', 'wt');
    await mkdir(gitDir, { recursive: true });
    await writeFile(path.join(gitDir, 'commondir'), '../..\n');
    await writeFile(path.join(workspace, '.git'), 'gitdir: store/worktrees/wt\n');
    expect([...sandboxSpecFor(context(workspace).turn)!.readOnlyPaths].sort()).toEqual([path.join(workspace, '.git'), gitDir, common].sort());
  });

  it.skipIf(!bwrapWorks)('a .git one command creates cannot be written by the next', async () => {
    const first = await sandboxed('git init -q && echo planted >> .git/description');
    expect(first.success, first.text).toBe(true);
    const second = await sandboxed('echo "[core] fsmonitor = /tmp/x" >> .git/config; touch .git/hooks/pre-commit; mkdir .git/x');
    expect(second.text).toMatch(/Read-only file system/);
    expect(await readFile(path.join(workspace, '.git', 'config'), 'utf8')).not.toContain('fsmonitor');
    expect(existsSync(path.join(workspace, '.git', 'hooks', 'pre-commit'))).toBe(false);
  });

  it.skipIf(!bwrapWorks)('a gitfile planted by one command protects the directory it names from the next', async () => {
    const first = await sandboxed('mkdir -p elsewhere/hooks && echo "gitdir: elsewhere" > .git && mkdir .troupe');
    expect(first.success, first.text).toBe(true);
    const second = await sandboxed('touch elsewhere/hooks/post-checkout; echo rule > .troupe/rules.json; rm .git');
    expect(second.success).toBe(false);
    expect(existsSync(path.join(workspace, 'elsewhere', 'hooks', 'post-checkout'))).toBe(false);
    expect(existsSync(path.join(workspace, '.troupe', 'rules.json'))).toBe(false);
    expect(existsSync(path.join(workspace, '.git'))).toBe(true);
  });
});

describe.skipIf(!bwrapWorks)('limits of a sandboxed command', () => {
  it('a file past the size limit is cut at the limit, and the command is told', async () => {
    const limited: SandboxPolicy = { mode: 'workspace-write', max_file_size_bytes: 100_000 };
    const result = await sandboxed('head -c 1000000 /dev/zero > big.bin', workspace, limited);
    expect(result.success).toBe(false);
    expect((await stat(path.join(workspace, 'big.bin'))).size).toBeLessThanOrEqual(100_000);
    const small = await sandboxed('head -c 50000 /dev/zero > small.bin', workspace, limited);
    expect(small.success, small.text).toBe(true);
  });

  it('no more processes than the limit run at once', async () => {
    const limited: SandboxPolicy = { mode: 'workspace-write', max_processes: 40 };
    // Node asks for 100 sleepers; the ones past the limit fail to start (EAGAIN).
    const script = [
      "const { spawn } = require('node:child_process');",
      'let started = 0, refused = 0;',
      'const done = () => { if (started + refused === 100) { console.log(`started=${started} refused=${refused}`); process.exit(0); } };',
      "for (let i = 0; i < 100; i++) { const c = spawn('sleep', ['30']); c.on('spawn', () => { started++; done(); }); c.on('error', () => { refused++; done(); }); }",
    ].join('\n');
    const result = await runShell({ command: [process.execPath, '-e', script] }, context(workspace, limited), { sandboxed: true, userApproved: false });
    const [, started, refused] = /started=(\d+) refused=(\d+)/.exec(result.text) ?? [];
    expect(Number(started)).toBeGreaterThan(5);
    expect(Number(started)).toBeLessThan(40);
    expect(Number(refused)).toBeGreaterThan(60);
  });

  it('a fork bomb is contained, and killed with its command', async () => {
    const limited: SandboxPolicy = { mode: 'workspace-write', max_processes: 64 };
    const marker = `troupe-fork-bomb-${process.pid}`;
    // bash retries a refused fork instead of giving up, so the bomb lives until it is killed.
    await writeFile(path.join(workspace, 'bomb.sh'), 'while true; do bash ./bomb.sh "$1" & done\n');
    const result = await sandboxed(`exec bash ./bomb.sh ${marker}`, workspace, limited, 1500);
    expect(result.text).toMatch(/^Exit code: 124$/m);
    expect(result.text).toMatch(/fork: retry: Resource temporarily unavailable/);
    // Nothing it started outlives it.
    await waitFor(() => processesMatching(marker).length === 0, 'the fork bomb to be gone', 10_000);
  });
});
