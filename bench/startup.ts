/**
 * bench/startup: how long `troupe exec` takes from process start to its first model request,
 * and to its exit, against the fake model (which answers at once). Two workspaces: a plain
 * directory, and a git repository with untracked files (the turn's undo snapshot reads them).
 * Runs alternate between the two; each figure is the median (and min, max) of RUNS runs.
 *
 *   npm run bench:startup               (writes bench/results/startup.json)
 *   BENCH_RUNS=20 BENCH_UNTRACKED_MB=200 npm run bench:startup
 *
 * Target (issue 18): no slower than the Codex native binary on the same machine and model.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { troupeBin } from '../test/support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
/** Untracked data in the git workspace, in MiB (files of 1 MiB each). */
const UNTRACKED_MB = Number(process.env.BENCH_UNTRACKED_MB ?? 20);

interface Run {
  readonly toRequestMs: number;
  readonly toExitMs: number;
}

/** One `troupe exec` in `cwd`: time to the model's first request and to the exit. */
async function runOnce(model: FakeModelServer, cwd: string, home: string): Promise<Run> {
  const before = model.requests.length;
  model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
  const started = performance.now();
  const child = spawn(process.execPath, [troupeBin(), 'exec', '-C', cwd, '--sandbox', 'read-only', 'say ok'], {
    env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'bench', TROUPE_HOME: home, TROUPE_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const exited = performance.now();
  const request = model.requests[before];
  if (code !== 0 || request === undefined) throw new Error(`troupe exec failed (exit ${code}):\n${stderr}`);
  return { toRequestMs: request.startedAt - started, toExitMs: exited - started };
}

function summary(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return { median: round(sorted[Math.floor(sorted.length / 2)]!), min: round(sorted[0]!), max: round(sorted.at(-1)!) };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'troupe-bench-startup-'));
  const model = await startFakeModelServer();
  try {
    const plain = join(root, 'plain');
    const repo = join(root, 'repo');
    await mkdir(plain);
    await mkdir(repo);
    execFileSync('git', ['init', '-q'], { cwd: repo });
    await writeFile(join(repo, 'README.md'), 'bench\n');
    execFileSync('git', ['add', '.'], { cwd: repo });
    execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.com', 'commit', '-q', '-m', 'first'], { cwd: repo });
    const megabyte = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < UNTRACKED_MB; i++) await writeFile(join(repo, `data-${i}.bin`), megabyte);

    const runs: Record<'plain' | 'git', Run[]> = { plain: [], git: [] };
    // One run of each first, not counted: the file cache and the compiled code are warm after.
    await runOnce(model, plain, join(root, 'home'));
    await runOnce(model, repo, join(root, 'home'));
    for (let i = 0; i < RUNS; i++) {
      runs.plain.push(await runOnce(model, plain, join(root, 'home')));
      runs.git.push(await runOnce(model, repo, join(root, 'home')));
    }
    const result = {
      runs: RUNS,
      untracked_mb: UNTRACKED_MB,
      plain: { to_first_request_ms: summary(runs.plain.map((r) => r.toRequestMs)), to_exit_ms: summary(runs.plain.map((r) => r.toExitMs)) },
      git: { to_first_request_ms: summary(runs.git.map((r) => r.toRequestMs)), to_exit_ms: summary(runs.git.map((r) => r.toExitMs)) },
    };
    console.log(JSON.stringify(result, null, 2));
    const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'startup.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await model.close();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
