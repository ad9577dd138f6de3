/**
 * Agent jobs on NATS: one job of ITEMS rows run by a parent session through
 * `spawn_agents_on_csv`, its items' agents spread over WORKERS workers of CAPACITY sessions
 * each (the parent has a worker of its own, so the items get every slot), a fake model that
 * answers each item's task after MODEL_MS. Two runs:
 *
 * - clean: wall time from the parent's tool call to the job's end, against the ideal
 *   (ITEMS ÷ concurrency × MODEL_MS, concurrency = WORKERS × CAPACITY);
 * - chaos: the same, with one item worker killed with SIGKILL (and a new one started) a third
 *   of the way in, and the parent's worker killed with SIGKILL (and a new one started) two
 *   thirds of the way in. Then every item must have exactly one result in JetStream and in the
 *   output, and the task requests the model saw beyond one per item are the items redone.
 *
 *   npm run bench:jobs                      (writes bench/results/jobs.json)
 *   JOBS_ITEMS=200 JOBS_CHAOS=0 npm run bench:jobs
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { parse } from 'csv-parse/sync';
import { startsPerItem } from '../test/e2e/jobs-support.js';
import { troupeBin } from '../test/support/app-server-process.js';
import { freePort, startNatsServer, type NatsServerProcess } from '../test/support/nats-server.js';
import { WorkerProcess } from '../test/support/worker-process.js';
import { startFakeModelServer, type RecordedRequest, type ScriptStep } from '../testing/index.js';
import { appServerClient } from './app-server-client.js';

const ITEMS = Number(process.env.JOBS_ITEMS ?? 1000);
const WORKERS = Number(process.env.JOBS_WORKERS ?? 3);
const CAPACITY = Number(process.env.JOBS_CAPACITY ?? 16);
const MODEL_MS = Number(process.env.JOBS_MODEL_MS ?? 200);
const CHAOS = process.env.JOBS_CHAOS !== '0';
const LEASE_MS = process.env.JOBS_LEASE_MS ?? '3000';
const DEADLINE_MS = Number(process.env.JOBS_DEADLINE_MS ?? 300_000);
const CONCURRENCY = WORKERS * CAPACITY;
/** The first words of an item's task (actors/jobs/runner.ts, workerPrompt). */
const WORKER = 'You are the agent of one item of an agent job.';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU seconds (user + system) process `pid` has used so far, from /proc (null where there is none). */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
/** USER_HZ: 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

interface Input {
  type?: string;
  name?: string;
  call_id?: string;
  content?: { text?: string }[];
}

function texts(request: RecordedRequest): string[] {
  const input = (request.body.input as Input[] | undefined) ?? [];
  const instructions = typeof request.body.instructions === 'string' ? [request.body.instructions] : [];
  return [...instructions, ...input.flatMap((item) => (item.content ?? []).map((c) => c.text ?? ''))];
}

/**
 * CPU seconds each kind of process spent during a run: from when the workers are up until the
 * job's end (a killed worker's until its kill). Linux only (/proc); null elsewhere.
 */
class CpuAccount {
  readonly #processes = new Map<number, { kind: string; start: number | null; end: number | null }>();

  track(kind: string, pid: number): void {
    this.#processes.set(pid, { kind, start: cpuSeconds(pid), end: null });
  }

  /** Read a process's CPU time now, before it is killed. */
  last(pid: number): void {
    const entry = this.#processes.get(pid);
    if (entry) entry.end = cpuSeconds(pid);
  }

  spent(): Record<string, number | null> {
    const spent: Record<string, number | null> = {};
    let total: number | null = 0;
    for (const [pid, entry] of this.#processes) {
      const end = entry.end ?? cpuSeconds(pid);
      const used = entry.start === null || end === null ? null : end - entry.start;
      spent[entry.kind] = used === null || spent[entry.kind] === null ? null : (spent[entry.kind] ?? 0) + used;
      total = used === null || total === null ? null : total + used;
    }
    for (const kind of Object.keys(spent)) spent[kind] = spent[kind] === null ? null : Number(spent[kind]!.toFixed(2));
    return { ...spent, total: total === null ? null : Number(total.toFixed(2)) };
  }
}

async function outcomesPerItem(jsm: JetStreamManager, namespace: string, jobId: string): Promise<number[]> {
  const info = await jsm.streams.info(`TROUPE_JOBS_${namespace}`, { subjects_filter: `troupe.${namespace}.jobs.${jobId}.item.*` });
  return Object.values(info.state.subjects ?? {});
}

async function jobEnded(jsm: JetStreamManager, namespace: string, jobId: string): Promise<boolean> {
  return (await jsm.streams.getMessage(`TROUPE_JOBS_${namespace}`, { last_by_subj: `troupe.${namespace}.jobs.${jobId}.end` }).catch(() => null)) !== null;
}

/** Messages into and out of nats-server so far, and JetStream API calls, from its monitoring port. */
async function natsCounts(monitorPort: number): Promise<{ in: number; out: number; jsApi: number }> {
  const get = async (path: string) => (await fetch(`http://127.0.0.1:${monitorPort}${path}`)).json() as Promise<Record<string, unknown>>;
  const varz = await get('/varz');
  const jsz = await get('/jsz');
  return { in: Number(varz.in_msgs), out: Number(varz.out_msgs), jsApi: Number((jsz.api as { total?: number } | undefined)?.total ?? 0) };
}

async function run(nats: NatsServerProcess, monitorPort: number, chaos: boolean): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-bench-jobs-'));
  const namespace = `benchjobs${process.pid}${chaos ? 'c' : 'n'}`;
  const model = await startFakeModelServer();
  const tasks = new Map<string, number>();
  let jobId: string | null = null;
  let reported = 0;
  let spawnedAt = 0;
  const answer = (request: RecordedRequest): ScriptStep => {
    const input = (request.body.input as Input[] | undefined) ?? [];
    const all = texts(request);
    const taskText = all.find((t) => t.includes(WORKER));
    if (taskText) {
      if (input.some((item) => item.type === 'function_call_output')) return { kind: 'response', items: [{ type: 'message', text: 'done' }] };
      const job = JSON.parse(/job_id ("[^"]*")/.exec(taskText)![1]!) as string;
      const item = JSON.parse(/item_id ("[^"]*")/.exec(taskText)![1]!) as string;
      jobId = job;
      tasks.set(item, (tasks.get(item) ?? 0) + 1);
      reported += 1;
      return {
        kind: 'response',
        delayMs: MODEL_MS,
        items: [
          { type: 'function_call', name: 'report_agent_job_result', call_id: `r-${item}`, arguments: { job_id: job, item_id: item, result: { ok: true } } },
        ],
      };
    }
    if (input.some((item) => item.type === 'function_call_output')) return { kind: 'response', items: [{ type: 'message', text: 'job over' }] };
    spawnedAt = performance.now();
    return {
      kind: 'response',
      items: [
        {
          type: 'function_call',
          name: 'spawn_agents_on_csv',
          call_id: 'job',
          arguments: { csv_path: 'items.csv', instruction: 'Check {name}.', max_concurrency: CONCURRENCY, output_csv_path: join(dir, 'out.csv') },
        },
      ],
    };
  };
  model.enqueue(...Array.from({ length: ITEMS * 4 + 100 }, (): ScriptStep => ({ kind: 'reply', handler: answer })));
  await writeFile(join(dir, 'items.csv'), `name\n${Array.from({ length: ITEMS }, (_, i) => `item${i + 1}`).join('\n')}\n`);

  const home = join(dir, 'home');
  const workers: WorkerProcess[] = [];
  const cpu = new CpuAccount();
  const startWorker = async (id: string, capacity: number) => {
    const worker = await WorkerProcess.start({
      id,
      natsUrl: nats.url,
      namespace,
      capacity,
      modelUrl: model.url,
      dir,
      home,
      env: { TROUPE_LEASE_MS: LEASE_MS, TROUPE_LOG: 'error' },
      development: false,
    });
    workers.push(worker);
    cpu.track(id.startsWith('parent') ? 'parent_worker' : 'item_workers', worker.pid);
    return worker;
  };
  // The parent's worker first, alone, so the parent lands there.
  let parentWorker = await startWorker('parent', 1);
  const gateway = spawn(process.execPath, [troupeBin(), 'app-server', '--nats', nats.url, '--namespace', namespace], {
    env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'bench', TROUPE_HOME: home, TROUPE_LOG: 'error' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const { submit } = appServerClient(gateway);
  const configured = await submit(
    { type: 'new_session', config: { cwd: dir, approval_policy: 'never', sandbox_policy: 'danger-full-access', agent_max_threads: CONCURRENCY } },
    undefined,
    (e) => e.msg.type === 'session_configured' || e.msg.type === 'error',
  );
  if (configured.msg.type !== 'session_configured') throw new Error(`no session: ${JSON.stringify(configured.msg)}`);
  await Promise.all(Array.from({ length: WORKERS }, (_, i) => startWorker(`w${i + 1}`, CAPACITY)));
  cpu.track('gateway', gateway.pid ?? -1);
  cpu.track('nats_server', nats.pid);
  cpu.track('bench_and_model', process.pid);
  const watcher = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(watcher);
  const countsBefore = await natsCounts(monitorPort);

  // The job's end is watched in JetStream below; a turn that fails is said, and the wait times out.
  submit({ type: 'user_turn', items: [{ type: 'text', text: 'run the job' }] }, configured.session_id!, (e) =>
    ['task_complete', 'turn_aborted'].includes(e.msg.type),
  ).catch((error: unknown) => console.error('the job turn failed:', error));
  const kills: string[] = [];
  const chaosDone = (async () => {
    if (!chaos) return;
    while (reported < ITEMS / 3) await sleep(50);
    const victim = workers.find((w) => w.id === 'w1')!;
    cpu.last(victim.pid);
    await victim.kill();
    kills.push(`w1 at ${reported} tasks`);
    await startWorker('w1b', CAPACITY);
    while (reported < (2 * ITEMS) / 3) await sleep(50);
    cpu.last(parentWorker.pid);
    await parentWorker.kill();
    kills.push(`parent at ${reported} tasks`);
    parentWorker = await startWorker('parent2', 1);
  })();
  const started = performance.now();
  let timedOut = false;
  for (;;) {
    await sleep(100);
    if (jobId !== null && (await jobEnded(jsm, namespace, jobId))) break;
    if (performance.now() - started > DEADLINE_MS) {
      timedOut = true;
      break;
    }
  }
  const wallMs = Math.round(performance.now() - spawnedAt);
  await chaosDone;
  const cpuSpent = cpu.spent();
  const countsAfter = await natsCounts(monitorPort);
  const outcomes = jobId ? await outcomesPerItem(jsm, namespace, jobId) : [];
  const starts = jobId ? await startsPerItem(nats.url, namespace, jobId) : new Map<string, number>();
  await watcher.close();
  let rows: Record<string, string>[] = [];
  try {
    rows = parse<Record<string, string>>(readFileSync(join(dir, 'out.csv'), 'utf8'), { columns: true });
  } catch {
    // no output: reported below as lost items
  }
  gateway.stdin.end();
  await Promise.race([new Promise((resolve) => gateway.once('exit', resolve)), sleep(10_000)]);
  gateway.kill('SIGKILL');
  // SIGTERM first, as a deployment stops a worker (a worker run with --cpu-prof then writes its profile).
  await Promise.all(
    workers.map(async (w) => {
      if (w.running) w.signal('SIGTERM');
      await Promise.race([w.exited, sleep(10_000)]);
      await w.kill();
    }),
  );
  await model.close();
  await rm(dir, { recursive: true, force: true });

  const idealMs = Math.round((ITEMS / CONCURRENCY) * MODEL_MS);
  const taskRequests = [...tasks.values()].reduce((a, b) => a + b, 0);
  return {
    run: chaos ? 'chaos' : 'clean',
    items: ITEMS,
    workers: `${WORKERS} x capacity ${CAPACITY}`,
    model_ms: MODEL_MS,
    wall_ms: wallMs,
    ideal_ms: idealMs,
    wall_over_ideal: Number((wallMs / idealMs).toFixed(2)),
    timed_out: timedOut,
    items_with_one_outcome: outcomes.filter((n) => n === 1).length,
    items_with_more_outcomes: outcomes.filter((n) => n > 1).length,
    items_lost: ITEMS - outcomes.length,
    output_rows_completed: rows.filter((r) => r.status === 'completed').length,
    output_rows_not_completed: rows.filter((r) => r.status !== 'completed').map((r) => ({ name: r.name, status: r.status, error: r.error })),
    task_requests: taskRequests,
    cpu_s: cpuSpent,
    nats_per_item: {
      messages_in: Math.round((countsAfter.in - countsBefore.in) / ITEMS),
      messages_out: Math.round((countsAfter.out - countsBefore.out) / ITEMS),
      jetstream_api: Number(((countsAfter.jsApi - countsBefore.jsApi) / ITEMS).toFixed(1)),
    },
    cpu_ms_per_item: cpuSpent.total == null ? null : Math.round((cpuSpent.total * 1000) / ITEMS),
    items_redone: taskRequests - tasks.size,
    items_given_a_second_agent: [...starts.values()].filter((n) => n > 1).length,
    kills,
  };
}

async function main(): Promise<number> {
  const monitorPort = await freePort();
  const nats = await startNatsServer({ args: ['-m', String(monitorPort)] });
  const load = loadavg().map((n) => n.toFixed(2));
  const results: Record<string, unknown>[] = [];
  try {
    results.push(await run(nats, monitorPort, false));
    if (CHAOS) results.push(await run(nats, monitorPort, true));
  } finally {
    await nats.stop();
  }
  const report = { load_average_before: load, load_average_after: loadavg().map((n) => n.toFixed(2)), results };
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'jobs.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report, null, 2));
  return results.some((r) => r.items_lost !== 0 || r.items_with_more_outcomes !== 0 || r.output_rows_completed !== ITEMS || r.timed_out) ? 1 : 0;
}

process.exitCode = await main();
