/**
 * bench/agents-fanout: how sub-agents scale.
 *
 * 1. Fan-out: a parent spawns 50 sub-agents in one response; each child makes one model
 *    request that takes 200 ms. Wall time from the parent's task_started to the 50th child's
 *    completion, against the 200 ms a perfectly parallel runtime would need: on a warm host
 *    (the target), on a fresh process's cold code, and on a host holding 1,000 idle sessions.
 * 2. Spawn latency: from the end of the parent's response (the spawn calls) to each child's
 *    first event (`session_configured`), p50 and p99.
 * 3. Memory: heap retained per idle session, in a fresh process with 1,000 idle sessions,
 *    measured after a forced GC.
 *
 *   npm run bench:agents       (writes bench/results/agents-fanout.json)
 *
 * The fake model runs in this process, the runtime in a child process, so they do not share
 * an event loop.
 */
import { readFileSync } from 'node:fs';
import { subscribe } from 'node:diagnostics_channel';
import { Session } from 'node:inspector/promises';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { createRuntime } from '../actors/runtime.js';
import { mentions, startFakeModelServer, type ScriptStep } from '../testing/index.js';

const CHILDREN = Number(process.env.BENCH_CHILDREN ?? 50);
const LATENCY_MS = 200;
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/**
 * With a file name (BENCH_PROFILE=/tmp/fanout.cpuprofile): each round's process profiles
 * PROFILED_FAN_OUTS more warm fan-outs after the measured ones and writes the profile beside
 * that name, its pid added.
 */
const PROFILE = process.env.BENCH_PROFILE;
const PROFILED_FAN_OUTS = 10;
/** Fan-outs between the cold one and the measured warm one: by then V8's optimizing tier has caught up. */
const WARM_UP_FAN_OUTS = 3;

/** Epoch milliseconds with sub-millisecond precision, comparable across processes. */
const now = () => performance.timeOrigin + performance.now();

/** What one fan-out took, in epoch ms: the parent's task_started, each child's first event, the last completion. */
interface FanOutTiming {
  readonly started: number;
  readonly configured: number[];
  readonly end: number;
  /**
   * CPU the runtime's main thread used from the parent's task_started to the 50th child's
   * task_started (what every child's first request waits for), ms; null where Linux's
   * schedstat is not there to tell.
   */
  readonly mainCpuToLastChild: number | null;
  /**
   * The same to the start of the 51st model request since the parent's turn was submitted (the
   * parent's first, then the 50 children's): what the last child's request waits for.
   */
  readonly mainCpuToLastRequest: number | null;
  /** When the runtime started the 51st model request (node:http's diagnostics channel), epoch ms. */
  readonly lastRequestSent: number | null;
  /** CPU the runtime's process used (all threads) from the submit to the last completion, ms: unlike wall time, barely moved by other load on the machine. */
  readonly cpu: number;
}

/**
 * V8's profiler over extra warm fan-outs after the measured ones, with the windows that
 * main_thread_cpu_to_last_child_request measures marked in the profile (`windows`, in the
 * profile's microseconds): one fan-out gives too few samples on a loaded machine.
 */
interface Profiler {
  mark(edge: 'start' | 'end'): void;
  save(file: string): Promise<void>;
}

async function startProfiler(): Promise<Profiler> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  const windows: [number, number][] = [];
  // V8's profile timestamps and hrtime both read the monotonic clock, in µs and ns.
  const micros = () => Number(process.hrtime.bigint() / 1000n);
  return {
    mark: (edge) => (edge === 'start' ? windows.push([micros(), 0]) : (windows[windows.length - 1]![1] = micros())),
    save: async (file) => {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(file, JSON.stringify({ ...profile, windows }));
      session.disconnect();
    },
  };
}

/** The main thread's CPU time so far, ms, from Linux's schedstat (null elsewhere). */
function mainThreadCpuMs(): number | null {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

/** Called as the runtime starts each model request (node:http's diagnostics channel). */
let onRequest: (() => void) | null = null;
subscribe('http.client.request.start', () => onRequest?.());

/** One parent spawning `children` agents, from its task_started to the last child's completion. */
async function runFanOut(runtime: ReturnType<typeof createRuntime>, children: number, marker: string, profiler?: Profiler): Promise<FanOutTiming> {
  const session = await runtime.newSession({ approval_policy: 'never', agent_max_threads: children });
  let started = 0;
  const configured: number[] = [];
  let completed = 0;
  let childrenStarted = 0;
  let mainAtStart: number | null = null;
  let mainCpuToLastChild: number | null = null;
  let mainCpuToLastRequest: number | null = null;
  let lastRequestSent: number | null = null;
  const cpuBefore = process.cpuUsage();
  let cpu = 0;
  const end = await new Promise<number>((resolve, reject) => {
    const stop = runtime.onEvent((event) => {
      const msg = event.msg;
      if (event.session_id === session.id && msg.type === 'task_started') {
        started = now();
        mainAtStart = mainThreadCpuMs();
        profiler?.mark('start');
      } else if (msg.type === 'task_started' && ++childrenStarted === children) {
        const at = mainThreadCpuMs();
        mainCpuToLastChild = at !== null && mainAtStart !== null ? at - mainAtStart : null;
      }
      if (msg.type === 'session_configured' && msg.parent_session_id === session.id) configured.push(now());
      if (event.session_id === session.id && msg.type === 'agent_status' && msg.status === 'completed' && ++completed === children) {
        stop();
        const used = process.cpuUsage(cpuBefore);
        cpu = (used.user + used.system) / 1000;
        resolve(now());
      }
    });
    // Requests are counted from the submit: the parent's first, then the 50 children's first.
    let requests = 0;
    onRequest = () => {
      if (++requests < children + 1) return;
      lastRequestSent = now();
      onRequest = null;
      profiler?.mark('end');
      const at = mainThreadCpuMs();
      mainCpuToLastRequest = at !== null && mainAtStart !== null ? at - mainAtStart : null;
    };
    session.submit({ type: 'user_turn', items: [{ type: 'text', text: `${marker} fan out` }] }).catch(reject);
  });
  await session.shutdown();
  return { started, configured, end, cpu, mainCpuToLastChild, mainCpuToLastRequest, lastRequestSent };
}

/**
 * Fan-outs in one fresh process: the first runs on cold code (V8 has optimized none of the
 * spawn and turn paths yet) and opens its connections; the one after WARM_UP_FAN_OUTS more is
 * what a host that has been serving for a while does, the figure the target is about; the
 * last runs beside IDLE_SESSIONS idle sessions, as on a host with many clients.
 */
async function fanOut(url: string): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'troupe-bench-'));
  const runtime = createRuntime({ baseURL: url, apiKey: 'bench', home, cwd: home, model: 'bench-model' });
  try {
    const cold = await runFanOut(runtime, CHILDREN, 'COLD');
    for (let i = 0; i < WARM_UP_FAN_OUTS; i++) await runFanOut(runtime, CHILDREN, `WARMUP${i}`);
    const warm = await runFanOut(runtime, CHILDREN, 'WARM');
    if (PROFILE) {
      const profiler = await startProfiler();
      for (let i = 0; i < PROFILED_FAN_OUTS; i++) await runFanOut(runtime, CHILDREN, `PROFILE${i}`, profiler);
      await profiler.save(`${PROFILE.replace(/\.cpuprofile$/, '')}-${process.pid}.cpuprofile`);
    }
    // A host serving many clients holds many idle sessions; a fan-out must not slow down for them.
    for (let i = 0; i < IDLE_SESSIONS; i++) await runtime.newSession();
    const busy = await runFanOut(runtime, CHILDREN, 'BUSY');
    console.log(JSON.stringify({ cold, warm, busy }));
  } finally {
    await runtime.close();
    await rm(home, { recursive: true, force: true });
  }
}

async function idleMemory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const home = await mkdtemp(join(tmpdir(), 'troupe-bench-'));
  const runtime = createRuntime({ baseURL: 'http://127.0.0.1:9/v1', apiKey: 'bench', home, cwd: home, model: 'bench-model' });
  try {
    await runtime.newSession();
    gc();
    const before = process.memoryUsage();
    for (let i = 0; i < IDLE_SESSIONS; i++) await runtime.newSession();
    gc();
    const after = process.memoryUsage();
    console.log(
      JSON.stringify({
        heap_bytes_per_session: (after.heapUsed - before.heapUsed) / IDLE_SESSIONS,
        rss_bytes_per_session: (after.rss - before.rss) / IDLE_SESSIONS,
      }),
    );
  } finally {
    await runtime.close();
    await rm(home, { recursive: true, force: true });
  }
}

type Side = 'cold' | 'warm' | 'busy';

interface Round {
  readonly wall: number;
  readonly cpu: number;
  readonly mainCpuToLastChild: number | null;
  readonly mainCpuToLastRequest: number | null;
  readonly latencies: number[];
  /** From the end of the parent's spawn response to the arrival of the last child's first model request. */
  readonly lastChildRequest: number;
  /** From the arrival of the parent's first request to the arrival of the last child's first model request. */
  readonly lastChildRequestFromParent: number;
  /**
   * From the end of the parent's spawn response to the runtime starting the last child's request
   * (its own clock, not the model's arrival): what the runtime alone takes, without the time the
   * model server needs to read fifty requests arriving at once.
   */
  readonly lastChildRequestSent: number | null;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const model = await startFakeModelServer();
  const self = fileURLToPath(import.meta.url);
  /** The responses of one fan-out: the parent's spawn calls, each child's slow answer, the parent's follow-up. */
  const fanOutScript = (marker: string): ScriptStep[] => [
    {
      kind: 'response',
      match: (r) => mentions(r, `${marker} fan out`),
      items: Array.from({ length: CHILDREN }, (_, i) => ({
        type: 'function_call' as const,
        name: 'spawn_agent',
        arguments: { message: `${marker} CHILD ${i}: say hello` },
      })),
    },
    ...Array.from({ length: CHILDREN }, (): ScriptStep => ({
      kind: 'response',
      match: (r) => mentions(r, `${marker} CHILD `),
      delayMs: LATENCY_MS,
      items: [{ type: 'message', text: 'hello' }],
    })),
    { kind: 'response', match: (r) => mentions(r, `${marker} fan out`), items: [{ type: 'message', text: 'spawned' }] },
  ];
  try {
    // Several rounds, each in a fresh process; the median round is reported (a 2-core machine
    // shared with the model server is noisy).
    const rounds: Record<Side, Round>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const before = model.requests.length;
      const warmUps = Array.from({ length: WARM_UP_FAN_OUTS }, (_, i) => fanOutScript(`WARMUP${i}`)).flat();
      const profiled = PROFILE ? Array.from({ length: PROFILED_FAN_OUTS }, (_, i) => fanOutScript(`PROFILE${i}`)).flat() : [];
      model.enqueue(...fanOutScript('COLD'), ...warmUps, ...fanOutScript('WARM'), ...profiled, ...fanOutScript('BUSY'));
      const run = await execa(process.execPath, [self, 'fanout', model.url], { stderr: 'inherit' });
      const timings = JSON.parse(run.stdout) as Record<Side, FanOutTiming>;
      const requests = model.requests.slice(before);
      const measure = (marker: string, timing: FanOutTiming): Round => {
        // Spawn latency counts from the end of the parent's response carrying the spawn calls.
        const spawnResponse = requests.find((r) => mentions(r, `${marker} fan out`))!;
        const spawnDone = performance.timeOrigin + spawnResponse.endedAt!;
        // The runtime parses the response as it streams in, so its end on the server's side is
        // at most the moment the runtime has parsed it: the figure below can only overstate.
        const lastChild = Math.max(...requests.filter((r) => mentions(r, `${marker} CHILD `) && !mentions(r, `${marker} fan out`)).map((r) => r.startedAt));
        return {
          wall: timing.end - timing.started,
          cpu: timing.cpu,
          mainCpuToLastChild: timing.mainCpuToLastChild,
          mainCpuToLastRequest: timing.mainCpuToLastRequest,
          latencies: timing.configured.map((t) => Math.max(0, t - spawnDone)).sort((a, b) => a - b),
          lastChildRequest: lastChild - spawnResponse.endedAt!,
          lastChildRequestFromParent: lastChild - spawnResponse.startedAt,
          lastChildRequestSent: timing.lastRequestSent === null ? null : timing.lastRequestSent - spawnDone,
        };
      };
      rounds.push({ cold: measure('COLD', timings.cold), warm: measure('WARM', timings.warm), busy: measure('BUSY', timings.busy) });
    }
    const medianRound = (side: Side) => [...rounds.map((r) => r[side])].sort((a, b) => a.wall - b.wall)[Math.floor(rounds.length / 2)]!;
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const warm = medianRound('warm');
    const cold = medianRound('cold');
    const busy = medianRound('busy');
    const memory = await execa(process.execPath, ['--expose-gc', self, 'memory'], { stderr: 'inherit' });
    const { heap_bytes_per_session, rss_bytes_per_session } = JSON.parse(memory.stdout) as Record<string, number>;
    const result = {
      children: CHILDREN,
      model_latency_ms: LATENCY_MS,
      rounds: ROUNDS,
      fanout_wall_ms: round(warm.wall),
      fanout_wall_ms_all_rounds: rounds.map((r) => round(r.warm.wall)),
      fanout_ideal_ms: LATENCY_MS,
      fanout_cpu_ms: round(median(rounds.map((r) => r.warm.cpu))),
      main_thread_cpu_to_last_child_start_ms: round(median(rounds.map((r) => r.warm.mainCpuToLastChild ?? Number.NaN))),
      main_thread_cpu_to_last_child_request_ms: round(median(rounds.map((r) => r.warm.mainCpuToLastRequest ?? Number.NaN))),
      main_thread_cpu_to_last_child_request_ms_all_rounds: rounds.map((r) => round(r.warm.mainCpuToLastRequest ?? Number.NaN)),
      last_child_request_after_spawn_response_ms: round(median(rounds.map((r) => r.warm.lastChildRequest))),
      last_child_request_after_spawn_response_ms_all_rounds: rounds.map((r) => round(r.warm.lastChildRequest)),
      last_child_request_sent_after_spawn_response_ms: round(median(rounds.map((r) => r.warm.lastChildRequestSent ?? Number.NaN))),
      last_child_request_sent_after_spawn_response_ms_all_rounds: rounds.map((r) => round(r.warm.lastChildRequestSent ?? Number.NaN)),
      last_child_request_after_parent_request_ms: round(median(rounds.map((r) => r.warm.lastChildRequestFromParent))),
      spawn_to_first_event_p50_ms: round(percentile(warm.latencies, 50)),
      spawn_to_first_event_p99_ms: round(percentile(warm.latencies, 99)),
      cold_fanout_wall_ms: round(cold.wall),
      cold_fanout_wall_ms_all_rounds: rounds.map((r) => round(r.cold.wall)),
      cold_fanout_cpu_ms: round(median(rounds.map((r) => r.cold.cpu))),
      cold_main_thread_cpu_to_last_child_start_ms: round(median(rounds.map((r) => r.cold.mainCpuToLastChild ?? Number.NaN))),
      cold_main_thread_cpu_to_last_child_request_ms: round(median(rounds.map((r) => r.cold.mainCpuToLastRequest ?? Number.NaN))),
      cold_last_child_request_after_spawn_response_ms: round(median(rounds.map((r) => r.cold.lastChildRequest))),
      cold_spawn_to_first_event_p50_ms: round(percentile(cold.latencies, 50)),
      cold_spawn_to_first_event_p99_ms: round(percentile(cold.latencies, 99)),
      busy_host_fanout_wall_ms: round(busy.wall),
      busy_host_fanout_wall_ms_all_rounds: rounds.map((r) => round(r.busy.wall)),
      idle_sessions: IDLE_SESSIONS,
      heap_kb_per_idle_session: round(heap_bytes_per_session! / 1024),
      rss_kb_per_idle_session: round(rss_bytes_per_session! / 1024),
      node: process.version,
    };
    const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'agents-fanout.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await model.close();
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

const [mode, url] = process.argv.slice(2);
if (mode === 'fanout') await fanOut(url!);
else if (mode === 'memory') await idleMemory();
else await main();
