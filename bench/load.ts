/**
 * bench/load: many sessions at once on one `troupe app-server`, and whether each gets its fair
 * share. SESSIONS sessions run TURNS turns each, all at once; in every turn the model calls
 * `shell` once and then answers. The fake model (in this process) answers each request after
 * DELAY_MS; with BENCH_FAULT_EVERY=N every Nth answer is cut off mid-stream, as a connection reset
 * would. Reported: turn latency p50/p90/p99/max and p99/p50, model connection resets (the
 * retries the runtime announced with `stream_error`), the app-server's peak RSS, and whether
 * every turn completed with no seq gap.
 *
 *   npm run bench:load                  (writes bench/results/load.json)
 *   BENCH_SESSIONS=50 BENCH_TURNS=3 BENCH_FAULT_EVERY=30 npm run bench:load
 *
 * Target (issue 15): p99 at most 3 × p50.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { troupeBin } from '../test/support/app-server-process.js';
import { appServerClient } from './app-server-client.js';
import { startFakeModelServer, type RecordedRequest, type ScriptStep } from '../testing/index.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const TURNS = Number(process.env.BENCH_TURNS ?? 5);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 20);
const SANDBOX = process.env.BENCH_SANDBOX ?? 'workspace-write';
/** Every Nth model request is cut off before it completes (a dropped stream); 0 for none. */
const FAULT_EVERY = Number(process.env.BENCH_FAULT_EVERY ?? 0);

let answered = 0;

/** The model's side of one turn: a shell call first, then, once its output is in, an answer. */
function answer(request: RecordedRequest): ScriptStep {
  answered += 1;
  if (FAULT_EVERY > 0 && answered % FAULT_EVERY === 0) return { kind: 'cut', delayMs: DELAY_MS };
  const input = (request.body.input as { type?: string; call_id?: string }[] | undefined) ?? [];
  const last = input.at(-1);
  if (last?.type === 'function_call_output') return { kind: 'response', delayMs: DELAY_MS, items: [{ type: 'message', text: 'done' }] };
  return {
    kind: 'response',
    delayMs: DELAY_MS,
    items: [{ type: 'function_call', name: 'shell', call_id: `c${input.length}`, arguments: { command: ['echo', 'hello'] } }],
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return Math.round(kb / 1024);
}

async function main(): Promise<void> {
  const model = await startFakeModelServer();
  const requests = SESSIONS * TURNS * 2;
  const faults = FAULT_EVERY > 0 ? Math.ceil((requests * 2) / FAULT_EVERY) : 0;
  model.enqueue(...Array.from({ length: requests + faults }, (): ScriptStep => ({ kind: 'reply', handler: answer })));
  const home = await mkdtemp(join(tmpdir(), 'troupe-load-home-'));
  const workspace = await mkdtemp(join(tmpdir(), 'troupe-load-ws-'));
  const child = spawn(process.execPath, [troupeBin(), 'app-server'], {
    env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'bench', TROUPE_HOME: home, TROUPE_MODEL: 'bench-model', TROUPE_LOG: 'error' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });

  const seqs = new Map<string, number>();
  let gaps = 0;
  let resets = 0;
  const { submit } = appServerClient(child, (event) => {
    if (event.session_id !== null && event.seq !== null) {
      const expected = (seqs.get(event.session_id) ?? 0) + 1;
      if (event.seq !== expected) gaps += 1;
      seqs.set(event.session_id, event.seq);
    }
    if (event.msg.type === 'stream_error') resets += 1;
  });

  const latencies: number[] = [];
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async () => {
      const configured = await submit(
        { type: 'new_session', config: { cwd: workspace, approval_policy: 'never', sandbox_policy: SANDBOX } },
        undefined,
        (e) => e.msg.type === 'session_configured' || e.msg.type === 'error',
      );
      if (configured.msg.type !== 'session_configured') throw new Error(`no session: ${JSON.stringify(configured.msg)}`);
      const sessionId = configured.session_id!;
      for (let turn = 0; turn < TURNS; turn += 1) {
        const t0 = performance.now();
        const end = await submit({ type: 'user_turn', items: [{ type: 'text', text: `turn ${turn}` }] }, sessionId, (e) =>
          ['task_complete', 'turn_aborted', 'error'].includes(e.msg.type),
        );
        latencies.push(performance.now() - t0);
        if (end.msg.type !== 'task_complete') failed += 1;
      }
    }),
  );
  const wallMs = performance.now() - started;
  const rss = await peakRssMb(child.pid!);
  child.stdin.end();
  await new Promise((resolve) => child.once('exit', resolve));
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });

  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms);
  const result = {
    sessions: SESSIONS,
    turns_per_session: TURNS,
    model_delay_ms: DELAY_MS,
    fault_every: FAULT_EVERY,
    sandbox: SANDBOX,
    turns_completed: latencies.length - failed,
    turns_failed: failed,
    seq_gaps: gaps,
    connection_resets: resets,
    wall_ms: round(wallMs),
    turn_ms: {
      p50: round(percentile(sorted, 50)),
      p90: round(percentile(sorted, 90)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted.at(-1) ?? Number.NaN),
    },
    p99_over_p50: Number((percentile(sorted, 99) / percentile(sorted, 50)).toFixed(2)),
    peak_rss_mb: rss,
  };
  console.log(JSON.stringify(result, null, 2));
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'load.json'), `${JSON.stringify(result, null, 2)}\n`);
  if (failed > 0 || gaps > 0) process.exitCode = 1;
}

await main();
