/**
 * bench/startup: how long `troupe exec` takes from process start to its first model request,
 * and to its exit, against the fake model (which answers at once), beside the Codex native
 * binary (`codex exec`) given the same prompt, sandbox and fake model. Two workspaces: a plain
 * directory, and a git repository with untracked files (the turn's undo snapshot reads them).
 * Every round runs troupe and Codex in each workspace, alternating; each figure is the median
 * (and min, max) of RUNS rounds, and `ratio` is troupe's median over Codex's. With GNU time at
 * /usr/bin/time, each run's CPU time (user + system, all threads) is reported too: on a shared
 * machine it moves far less with the load than the wall clock does.
 *
 *   npm run bench:startup               (writes bench/results/startup.json)
 *   BENCH_RUNS=20 BENCH_UNTRACKED_MB=200 npm run bench:startup
 *   BENCH_CODEX=/path/to/codex npm run bench:startup   (BENCH_CODEX=none: troupe only)
 *   BENCH_BASELINE=/other/checkout/bin/troupe.js npm run bench:startup   (a third side, `baseline`:
 *     another build of troupe, e.g. the commit before a change, in the same interleaved rounds)
 *
 * Target (issue 18): no slower than the Codex native binary on the same machine and model.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { troupeBin } from '../test/support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
/** Untracked data in the git workspace, in MiB (files of 1 MiB each). */
const UNTRACKED_MB = Number(process.env.BENCH_UNTRACKED_MB ?? 20);
/** The Codex binary the @openai/codex-sdk dev dependency installs (Linux x64). */
const CODEX_DEFAULT = fileURLToPath(new URL('../../node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex', import.meta.url));
const CODEX = process.env.BENCH_CODEX ?? CODEX_DEFAULT;
const BASELINE = process.env.BENCH_BASELINE;
/** Both agents may write in the workspace, so both take their turn's undo snapshot where they do. */
const SANDBOX = 'workspace-write';
const PROMPT = 'say ok';

interface Run {
  readonly toRequestMs: number;
  readonly toExitMs: number;
  /** User and system CPU time of the whole run (every thread), when /usr/bin/time can say. */
  readonly cpuMs: number | null;
}

/** GNU time, which reports a child's CPU time: steadier than the wall clock on a busy machine. */
const TIME = '/usr/bin/time';

type Agent = 'troupe' | 'baseline' | 'codex';

/** The command line and environment of one agent's one-shot run in `cwd`. */
function command(agent: Agent, model: FakeModelServer, cwd: string, home: string): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (agent !== 'codex') {
    return {
      file: process.execPath,
      args: [agent === 'baseline' ? (BASELINE ?? troupeBin()) : troupeBin(), 'exec', '-C', cwd, '--sandbox', SANDBOX, PROMPT],
      env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'bench', TROUPE_HOME: home, TROUPE_LOG: 'warn' },
    };
  }
  // A provider of its own pointing at the fake server over the Responses API, and a CODEX_HOME
  // of its own, so the machine's Codex configuration and login play no part.
  const provider = `model_providers.fake={ name = "fake", base_url = "${model.url}", wire_api = "responses", env_key = "BENCH_FAKE_KEY" }`;
  return {
    file: CODEX,
    args: ['exec', '--skip-git-repo-check', '-C', cwd, '--sandbox', SANDBOX, '-c', 'model_provider="fake"', '-c', provider, '-c', 'model="gpt-5"', PROMPT],
    env: { ...process.env, CODEX_HOME: home, BENCH_FAKE_KEY: 'bench' },
  };
}

/** One run: time to the model's first request and to the exit. */
async function runOnce(agent: Agent, model: FakeModelServer, cwd: string, home: string): Promise<Run> {
  const before = model.requests.length;
  model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] });
  const { file, args, env } = command(agent, model, cwd, home);
  const timed = existsSync(TIME) ? join(home, 'cpu-time') : null;
  const started = performance.now();
  const child = timed
    ? spawn(TIME, ['-f', '%U %S', '-o', timed, file, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const exited = performance.now();
  const request = model.requests[before];
  if (code !== 0 || request === undefined || model.requests.length !== before + 1) {
    throw new Error(`${agent} exec failed (exit ${code}, ${model.requests.length - before} requests):\n${stderr}`);
  }
  const cpuMs = timed
    ? (await readFile(timed, 'utf8'))
        .trim()
        .split(/\s+/)
        .reduce((sum, seconds) => sum + Number(seconds) * 1000, 0)
    : null;
  return { toRequestMs: request.startedAt - started, toExitMs: exited - started, cpuMs };
}

function summary(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return { median: round(sorted[Math.floor(sorted.length / 2)]!), min: round(sorted[0]!), max: round(sorted.at(-1)!) };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'troupe-bench-startup-'));
  const model = await startFakeModelServer();
  const hasCodex = CODEX !== 'none' && existsSync(CODEX);
  if (!hasCodex) console.error(`no Codex binary at ${CODEX}: measuring troupe alone`);
  const agents: Agent[] = ['troupe', ...(BASELINE !== undefined ? (['baseline'] as const) : []), ...(hasCodex ? (['codex'] as const) : [])];
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

    const workspaces = { plain, git: repo } as const;
    const runs = new Map<string, Run[]>();
    const home = (agent: Agent) => join(root, `home-${agent}`);
    for (const agent of agents) await mkdir(home(agent));
    const load = [loadavg()[0]!];
    // One run of each first, not counted: the file cache and the compiled code are warm after.
    for (const cwd of Object.values(workspaces)) for (const agent of agents) await runOnce(agent, model, cwd, home(agent));
    for (let i = 0; i < RUNS; i++) {
      // Rotate which agent goes first, so none always follows another.
      const order = [...agents.slice(i % agents.length), ...agents.slice(0, i % agents.length)];
      for (const [name, cwd] of Object.entries(workspaces)) {
        for (const agent of order) {
          const key = `${agent}.${name}`;
          runs.set(key, [...(runs.get(key) ?? []), await runOnce(agent, model, cwd, home(agent))]);
        }
      }
      load.push(loadavg()[0]!);
    }
    const result: Record<string, unknown> = { runs: RUNS, untracked_mb: UNTRACKED_MB, sandbox: SANDBOX, load_average_1m: summary(load) };
    for (const name of Object.keys(workspaces)) {
      const figures: Record<string, unknown> = {};
      for (const agent of agents) {
        const list = runs.get(`${agent}.${name}`) ?? [];
        const cpu = list.flatMap((r) => (r.cpuMs === null ? [] : [r.cpuMs]));
        figures[agent] = {
          to_first_request_ms: summary(list.map((r) => r.toRequestMs)),
          to_exit_ms: summary(list.map((r) => r.toExitMs)),
          ...(cpu.length > 0 ? { cpu_ms: summary(cpu) } : {}),
        };
      }
      if (hasCodex) {
        const median = (agent: Agent) => summary((runs.get(`${agent}.${name}`) ?? []).map((r) => r.toRequestMs)).median;
        const ratio = (agent: Agent) => Math.round((median(agent) / median('codex')) * 100) / 100;
        figures.ratio_to_first_request = ratio('troupe');
        if (BASELINE !== undefined) figures.baseline_ratio_to_first_request = ratio('baseline');
      }
      result[name] = figures;
    }
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
