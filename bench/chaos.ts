/**
 * The chaos run: troupe on NATS with everything production does to it at once. A nats-server
 * with JetStream, WORKERS workers and one gateway (`troupe app-server --nats`); SESSIONS
 * sessions run TURNS turns each, every turn one `shell` call that appends a line naming the
 * session and turn to a ledger file. Meanwhile:
 *
 * - workers are killed with SIGKILL at random and replaced;
 * - the broker is killed with SIGKILL and started again on the same port and store;
 * - the client stops reading the gateway's stdout for a while (a stuck client);
 * - the model server cuts off every FAULT_EVERYth answer mid-stream, as a connection reset does.
 *
 * It prints turns completed, seq gaps and repeats, duplicated tool executions (ledger lines
 * seen twice), turns lost, failover times (from a kill to the first event of each session the
 * killed worker held), and the peak RSS of the gateway and workers; it exits non-zero on any
 * loss. Not part of `npm test`: `npm run chaos`, and CI runs it when CHAOS=1.
 *
 *   npm run chaos
 *   CHAOS_SESSIONS=10 CHAOS_TURNS=2 npm run chaos
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { troupeBin } from '../test/support/app-server-process.js';
import { appServerClient } from './app-server-client.js';
import { startFakeModelServer, type RecordedRequest, type ScriptStep } from '../testing/index.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { WorkerProcess } from '../test/support/worker-process.js';

const SESSIONS = Number(process.env.CHAOS_SESSIONS ?? 30);
const TURNS = Number(process.env.CHAOS_TURNS ?? 3);
const WORKERS = Number(process.env.CHAOS_WORKERS ?? 3);
const WORKER_KILLS = Number(process.env.CHAOS_WORKER_KILLS ?? 4);
const FAULT_EVERY = Number(process.env.CHAOS_FAULT_EVERY ?? 25);
const MODEL_DELAY_MS = Number(process.env.CHAOS_MODEL_DELAY_MS ?? 50);
const DEADLINE_MS = Number(process.env.CHAOS_DEADLINE_MS ?? 240_000);
const LEASE_MS = process.env.CHAOS_LEASE_MS ?? '3000';

const now = () => performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

async function peakRssMb(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Math.round(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!);
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-chaos-'));
  const ledger = join(dir, 'ledger.txt');
  const nats = await startNatsServer();
  const model = await startFakeModelServer();
  const workers: WorkerProcess[] = [];
  let gatewayProcess: ChildProcess | undefined;
  try {
    let answered = 0;
    const answer = (request: RecordedRequest): ScriptStep => {
      answered += 1;
      if (FAULT_EVERY > 0 && answered % FAULT_EVERY === 0) return { kind: 'cut', delayMs: MODEL_DELAY_MS };
      const input = (request.body.input as { type?: string; content?: { text?: string }[] }[] | undefined) ?? [];
      if (input.at(-1)?.type === 'function_call_output') return { kind: 'response', delayMs: MODEL_DELAY_MS, items: [{ type: 'message', text: 'done' }] };
      const asked = [...input].reverse().find((item) => item.type === 'message')?.content?.[0]?.text ?? 'unknown';
      return {
        kind: 'response',
        delayMs: MODEL_DELAY_MS,
        items: [{ type: 'function_call', name: 'shell', call_id: `c${input.length}`, arguments: { command: ['sh', '-c', `echo '${asked}' >> ${ledger}`] } }],
      };
    };
    model.enqueue(...Array.from({ length: SESSIONS * TURNS * 4 + 200 }, (): ScriptStep => ({ kind: 'reply', handler: answer })));

    const namespace = `chaos${process.pid}`;
    const home = join(dir, 'home');
    let workerCount = 0;
    const startWorker = async () => {
      const worker = await WorkerProcess.start({
        id: `w${++workerCount}`,
        natsUrl: nats.url,
        namespace,
        capacity: SESSIONS,
        modelUrl: model.url,
        dir,
        home,
        env: { TROUPE_LEASE_MS: LEASE_MS, TROUPE_LOG: 'error' },
      });
      workers.push(worker);
      return worker;
    };
    for (let i = 0; i < WORKERS; i += 1) await startWorker();

    const gateway = spawn(process.execPath, [troupeBin(), 'app-server', '--nats', nats.url, '--namespace', namespace], {
      env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'chaos', TROUPE_HOME: home, TROUPE_LOG: 'error' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    gatewayProcess = gateway;
    const lastSeq = new Map<string, number>();
    const eventTimes = new Map<string, number[]>();
    const holder = new Map<string, string>();
    let gaps = 0;
    let repeats = 0;
    const { submit } = appServerClient(gateway, (event) => {
      if (event.session_id === null || event.seq === null) return;
      const last = lastSeq.get(event.session_id) ?? 0;
      if (event.seq <= last) repeats += 1;
      else if (event.seq !== last + 1) gaps += event.seq - last - 1;
      lastSeq.set(event.session_id, Math.max(last, event.seq));
      const times = eventTimes.get(event.session_id) ?? [];
      times.push(now());
      eventTimes.set(event.session_id, times);
      if (event.msg.type === 'session_configured' && typeof event.msg.worker_id === 'string') holder.set(event.session_id, event.msg.worker_id);
      const moved = event.msg.type === 'background_event' ? /moved to worker (\S+)/.exec(String(event.msg.message)) : null;
      if (moved?.[1]) holder.set(event.session_id, moved[1].replace(/[.,:;]$/, ''));
    });

    let completed = 0;
    let failedTurns = 0;
    const failovers: number[] = [];
    let running = true;
    const work = Promise.all(
      Array.from({ length: SESSIONS }, async (_, s) => {
        const configured = await submit(
          { type: 'new_session', config: { cwd: dir, approval_policy: 'never', sandbox_policy: 'danger-full-access' } },
          undefined,
          (e) => e.msg.type === 'session_configured' || e.msg.type === 'error',
        );
        if (configured.msg.type !== 'session_configured') {
          failedTurns += TURNS;
          return;
        }
        for (let t = 0; t < TURNS; t += 1) {
          const end = await submit({ type: 'user_turn', items: [{ type: 'text', text: `s${s}-t${t}` }] }, configured.session_id!, (e) =>
            ['task_complete', 'turn_aborted', 'error'].includes(e.msg.type),
          );
          if (end.msg.type === 'task_complete') completed += 1;
          else failedTurns += 1;
        }
      }),
    ).finally(() => {
      running = false;
    });

    const chaos = (async () => {
      const between = async () => {
        for (let waited = 0; waited < 2000 && running; waited += 100) await sleep(100);
      };
      const kill = async () => {
        const victim = pick(workers.filter((w) => w.running));
        const killedAt = now();
        const held = [...holder].filter(([, worker]) => worker === victim.id).map(([session]) => session);
        await victim.kill();
        workers.splice(workers.indexOf(victim), 1);
        await startWorker();
        // Failover time: from the kill to the first event each of its sessions sent afterwards.
        (async () => {
          for (const session of held) {
            while (running && !(eventTimes.get(session) ?? []).some((t) => t > killedAt)) await sleep(50);
            const next = (eventTimes.get(session) ?? []).find((t) => t > killedAt);
            if (next !== undefined) failovers.push(next - killedAt);
          }
        })().catch((error: unknown) => console.error('measuring a failover failed:', error));
      };
      // Worker kills first, alone, so their failover times measure failover and nothing else.
      for (let k = 0; k < WORKER_KILLS && running; k += 1) {
        await between();
        if (running) await kill();
      }
      if (running) {
        // The broker goes away and comes back on the same port and store.
        await between();
        await nats.crash();
        await sleep(2000);
        await nats.revive();
      }
      if (running) {
        // A client that stops reading stdout for a while.
        await between();
        gateway.stdout.pause();
        await sleep(3000);
        gateway.stdout.resume();
      }
    })();

    const timedOut = await Promise.race([work.then(() => false), sleep(DEADLINE_MS).then(() => true)]);
    running = false;
    await chaos;
    const rss = { gateway: await peakRssMb(gateway.pid!), workers: Math.max(0, ...(await Promise.all(workers.map((w) => peakRssMb(w.pid))))) };
    gateway.stdin.end();
    await Promise.race([new Promise((resolve) => gateway.once('exit', resolve)), sleep(15_000)]);

    const entries = (await readFile(ledger, 'utf8').catch(() => '')).split('\n').filter((line) => line !== '');
    const seen = new Map<string, number>();
    for (const entry of entries) seen.set(entry, (seen.get(entry) ?? 0) + 1);
    const duplicated = [...seen.values()].filter((n) => n > 1).length;
    const lost = SESSIONS * TURNS - completed;
    const report = {
      sessions: SESSIONS,
      turns: SESSIONS * TURNS,
      turns_completed: completed,
      turns_failed: failedTurns,
      turns_lost: lost,
      timed_out: timedOut,
      seq_gaps: gaps,
      seq_repeats: repeats,
      duplicated_tool_executions: duplicated,
      worker_kills: WORKER_KILLS,
      broker_restarts: 1,
      model_cuts: FAULT_EVERY > 0 ? Math.floor(answered / FAULT_EVERY) : 0,
      failover_ms: { count: failovers.length, p50: percentile(failovers, 0.5), p99: percentile(failovers, 0.99) },
      peak_rss_mb: rss,
    };
    console.log(JSON.stringify(report, null, 2));
    return lost > 0 || gaps > 0 || repeats > 0 || duplicated > 0 || timedOut ? 1 : 0;
  } finally {
    // Also when a step above threw (a worker that never got ready): nothing is left running.
    gatewayProcess?.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.kill()));
    await model.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
