/**
 * bench/turn-overhead: what the runtime costs on top of the model and the tool.
 *
 * 200 turns in one session, each one tool call (`true`) and a final message, against the fake
 * model server on loopback with no delay. The floors replay the very same request bodies with
 * a bare `openai` SDK loop (streaming, every event consumed): one that only sends them (the
 * floor as the issue defines it), one that also forks `true` where the model asked for it,
 * and one that runs it through troupe's launcher process as the runtime does, against which
 * the difference is troupe's machinery alone: actors, bus, history, rollout, events. That
 * machinery is also measured by itself: the same turns against a model answering in-process
 * and a tool that starts no process. Each side runs in its own Node process (the fake model in
 * the parent): spawning a process costs more the bigger the spawner's heap, so sharing one
 * process would blur the comparison.
 *
 * The machinery is measured twice: with telemetry off (the default) and with OpenTelemetry on,
 * exporting OTLP/protobuf to a loopback receiver in the parent that reads and discards what it
 * is sent; the difference is what telemetry costs a round trip.
 *
 * BENCH_TOOL=exec_command compares the two command tools on one command: the turns take
 * turns, `exec_command` with `cmd: "true"` (which the user's shell runs) and then `shell` given
 * that very argv, in one session, each turn timed, so both see the same machine at the same
 * moment; the floors run that argv too. The shell is BENCH_SHELL, by default /bin/sh: a login
 * bash reads the user's profile, which takes anything from a millisecond to hundreds of them,
 * and would drown what is measured here.
 *
 * BENCH_TOOL=custom has the model call a tool written with tool() that answers in-process
 * (`bench_echo`, no process started): its overhead over the SDK-only floor is what a
 * developer's own tool costs per round trip.
 *
 *   npm run bench            (writes bench/results/turn-overhead.json, or
 *                             turn-overhead-exec_command.json)
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import OpenAI from 'openai';
import type { ModelClient, ModelStreamEvent, Prompt } from '../lib/model/types.js';
import { createRuntime } from '../actors/runtime.js';
import { userShellArgv } from '../actors/tools/handlers/exec-command.js';
import { processLauncher } from '../actors/tools/launcher/launcher.js';
import { tool } from '../actors/tools/user-tool.js';
import { z } from 'zod';
import { startFakeModelServer, type RecordedRequest, type ScriptStep } from '../testing/index.js';

const TURNS = Number(process.env.BENCH_TURNS ?? 200);
const WARMUP = 20;
/**
 * The floor runs `true` bare, so by default the runtime does too (`danger-full-access`): the
 * difference is then troupe itself. BENCH_SANDBOX=workspace-write measures the sandbox's cost.
 */
const SANDBOX = (process.env.BENCH_SANDBOX ?? 'danger-full-access') as 'danger-full-access' | 'workspace-write' | 'read-only';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** The tool the model calls: `shell` (default), `exec_command`, or `custom` (a tool() of ours). */
const TOOL = (process.env.BENCH_TOOL ?? 'shell') as 'shell' | 'exec_command' | 'custom';
if (TOOL !== 'shell' && TOOL !== 'exec_command' && TOOL !== 'custom') throw new Error(`BENCH_TOOL must be shell, exec_command or custom, not ${String(TOOL)}`);
if (TOOL === 'exec_command') process.env.SHELL = process.env.BENCH_SHELL ?? '/bin/sh';
/** What runs where the model asked for a tool: `true`, or for exec_command what its shell runs. */
const COMMAND = TOOL === 'exec_command' ? userShellArgv('true') : ['true'];

/** The tool of BENCH_TOOL=custom: in-process, as cheap as a tool gets. */
const benchEcho = tool({
  name: 'bench_echo',
  description: 'Echo the text back.',
  parameters: z.object({ text: z.string() }),
  execute: ({ text }) => text,
});

/** Whether turn `index` of a session calls exec_command (else shell). */
const callsExec = (index: number): boolean => TOOL === 'exec_command' && index % 2 === 0;

/** Tool call after a user message, final message after a tool output. */
function script(request: RecordedRequest): ScriptStep {
  const input = request.body.input as { type: string }[];
  if (input.at(-1)?.type === 'function_call_output') return { kind: 'response', items: [{ type: 'message', text: 'done' }] };
  // One call per turn: the calls already in the history number the turn.
  const call =
    TOOL === 'custom'
      ? { name: 'bench_echo', arguments: { text: 'hello' } }
      : callsExec(input.filter((item) => item.type === 'function_call').length)
        ? { name: 'exec_command', arguments: { cmd: 'true' } }
        : { name: 'shell', arguments: { command: COMMAND } };
  return { kind: 'response', items: [{ type: 'function_call', ...call }] };
}

/**
 * troupe's machinery alone: the same turns, with the model answering in-process (no HTTP) and
 * `update_plan` instead of `shell` (no process). What remains is actors, bus, history, rollout
 * and the events the client reads.
 */
function inProcessModel(): ModelClient {
  let calls = 0;
  return {
    contextWindow: () => null,
    async *stream(prompt: Prompt): AsyncGenerator<ModelStreamEvent> {
      if (prompt.input.at(-1)?.type === 'function_call_output') {
        yield { type: 'output_text_delta', delta: 'done' };
        yield { type: 'output_item_done', item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'done' }] } };
      } else {
        const args = JSON.stringify({ plan: [{ step: 'run true', status: 'completed' }] });
        yield { type: 'output_item_done', item: { type: 'function_call', call_id: `call_${calls++}`, name: 'update_plan', arguments: args } };
      }
      const usage = { input_tokens: 10, cached_input_tokens: 0, output_tokens: 2, reasoning_output_tokens: 0, total_tokens: 12 };
      yield { type: 'completed', response_id: 'bench', usage };
    },
  };
}

async function measureRuntime(measured: number, url: string | null, home: string, cwd: string) {
  const runtime =
    url === null
      ? createRuntime({ modelClient: inProcessModel(), home, cwd, model: 'bench-model' })
      : createRuntime({ baseURL: url, apiKey: 'bench', home, cwd, model: 'bench-model', ...(TOOL === 'custom' ? { tools: [benchEcho] } : {}) });
  const session = await runtime.newSession({ approval_policy: 'never', sandbox_policy: SANDBOX });
  const events = session.events();
  let count = 0;
  /** Measured turns' times, by the tool they called. */
  const turns = { exec: [] as number[], shell: [] as number[] };
  const runTurn = async (i: number) => {
    const id = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: `turn ${i}` }] }, `t${i}`);
    for (;;) {
      const next = await events.next();
      if (next.done === true) throw new Error('the session ended');
      const value = next.value;
      count++;
      if (value.id === id && value.msg.type === 'task_complete') return;
      if (value.msg.type === 'error') throw new Error(value.msg.message);
    }
  };
  for (let i = 0; i < WARMUP; i++) await runTurn(i);
  count = 0;
  const started = performance.now();
  for (let i = 0; i < measured; i++) {
    const turnStarted = performance.now();
    await runTurn(WARMUP + i);
    turns[callsExec(WARMUP + i) ? 'exec' : 'shell'].push(performance.now() - turnStarted);
  }
  const elapsed = performance.now() - started;
  await runtime.close();
  const byTool = TOOL !== 'exec_command' ? {} : { exec_turn_ms: medianOf(turns.exec), shell_turn_ms: medianOf(turns.shell) };
  return { elapsed, events: count, ...byTool };
}

function medianOf(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

/**
 * Each request's input is the previous one's plus what the turn added. Shipping only the
 * additions keeps the floor's memory like the runtime's, which holds one growing history:
 * 440 full bodies would take the floor's heap to hundreds of MB, and every spawn from a bigger
 * process costs more (fork copies its page tables), which would flatter the runtime.
 */
type FloorStep = { readonly body: Record<string, unknown>; readonly added: unknown[]; readonly fresh: boolean };

function toSteps(bodies: readonly Record<string, unknown>[]): FloorStep[] {
  let previous: unknown[] = [];
  return bodies.map(({ input, ...body }) => {
    const items = input as unknown[];
    const grows = items.length >= previous.length && previous.every((item, i) => JSON.stringify(item) === JSON.stringify(items[i]));
    const step = grows ? { body, added: items.slice(previous.length), fresh: false } : { body, added: items, fresh: true };
    previous = items;
    return step;
  });
}

/**
 * The floors, by how they run `true` where the model asked for it: `bare` does not run it (the
 * SDK loop alone); `direct` forks it from its own process, as a plain program would;
 * `launcher` goes through troupe's launcher process, as the runtime does, so that the
 * difference to the runtime is troupe's actors, bus, history, rollout and events alone.
 */
const FLOORS = ['bare', 'direct', 'launcher'] as const;
type Floor = (typeof FLOORS)[number];

async function measureFloor(steps: FloorStep[], url: string, floor: Floor) {
  const [file, ...args] = COMMAND as [string, ...string[]];
  const runTrue = {
    bare: async () => undefined,
    direct: () => execa(file, args, { detached: true, reject: false, stdin: 'ignore' }),
    launcher: () => processLauncher().launch(COMMAND, { cwd: tmpdir() }).outcome,
  }[floor];
  const client = new OpenAI({ baseURL: url, apiKey: 'bench', maxRetries: 0 });
  let history: unknown[] = [];
  const bodies = steps.map((step) => () => {
    history = step.fresh ? [...step.added] : [...history, ...step.added];
    return { ...step.body, input: history };
  });
  const send = async (next: () => Record<string, unknown>) => {
    const body = next();
    const stream = await client.responses.create({ ...(body as object), stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming);
    let calledTool = false;
    for await (const event of stream) {
      if (event.type === 'response.output_item.done' && event.item.type === 'function_call') calledTool = true;
    }
    if (calledTool) await runTrue();
  };
  for (const body of bodies.slice(0, WARMUP * 2)) await send(body);
  const measured = bodies.slice(WARMUP * 2);
  const started = performance.now();
  for (const body of measured) await send(body);
  return { elapsed: performance.now() - started, requests: measured.length };
}

/** Run one phase in a fresh Node process, so neither measurement pays for the other's heap. */
async function phase(args: string[], env: Record<string, string> = {}): Promise<Record<string, number>> {
  const { stdout } = await execa(process.execPath, [fileURLToPath(import.meta.url), ...args], { stderr: 'inherit', env });
  return JSON.parse(stdout) as Record<string, number>;
}

async function runPhase(argv: string[]): Promise<void> {
  const [, url, extra] = argv as [string, string, string];
  if (argv[0] === 'runtime' || argv[0] === 'machinery') {
    const home = await mkdtemp(join(tmpdir(), 'troupe-bench-'));
    try {
      const result = await measureRuntime(TURNS, argv[0] === 'runtime' ? url : null, home, home);
      console.log(JSON.stringify({ ...result, rss_mb: process.resourceUsage().maxRSS / 1024 }));
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  } else {
    const steps = JSON.parse(await readFile(extra, 'utf8')) as FloorStep[];
    const result = await measureFloor(steps, url, argv[0]!.slice('floor-'.length) as Floor);
    console.log(JSON.stringify({ ...result, rss_mb: process.resourceUsage().maxRSS / 1024 }));
  }
}

/** A loopback OTLP/HTTP receiver that reads what it is sent, counts the bytes, and answers 200. */
async function otlpSink(): Promise<{ url: string; bytes: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const server = createServer((request, response) => {
    request.on('data', (chunk: Buffer) => (bytes += chunk.length));
    request.on('end', () => response.writeHead(200).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function main(): Promise<void> {
  const model = await startFakeModelServer();
  const otlp = await otlpSink();
  const telemetryOn = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' };
  const steps = Array.from({ length: (WARMUP + TURNS) * 2 }, (): ScriptStep => ({ kind: 'reply', handler: script }));
  model.enqueue(...steps);
  const scratch = await mkdtemp(join(tmpdir(), 'troupe-bench-'));
  try {
    // Alternate the sides and keep the median of each: process spawn times are noisy.
    const runtimes: Record<string, number>[] = [];
    const machinery: Record<string, number>[] = [];
    const machineryTraced: Record<string, number>[] = [];
    const floors: Record<Floor, Record<string, number>[]> = { bare: [], direct: [], launcher: [] };
    const bodiesFile = join(scratch, 'bodies.json');
    for (let round = 0; round < ROUNDS; round++) {
      const before = model.requests.length;
      runtimes.push(await phase(['runtime', model.url]));
      await writeFile(bodiesFile, JSON.stringify(toSteps(model.requests.slice(before).map((r) => r.body))));
      // The floors, and the runtime of the next round.
      for (let i = 0; i <= FLOORS.length; i++) model.enqueue(...steps);
      for (const floor of FLOORS) floors[floor].push(await phase([`floor-${floor}`, model.url, bodiesFile]));
      machinery.push(await phase(['machinery']));
      machineryTraced.push(await phase(['machinery'], telemetryOn));
    }
    const runtime = median(runtimes);
    const perTrip = runtime.elapsed! / (TURNS * 2);
    const floorPerTrip = (floor: Floor) => {
      const run = median(floors[floor]);
      return run.elapsed! / run.requests!;
    };
    // Per tool (exec_command only): each round's median turn, the median round; a turn is two round trips.
    const perTool = (key: string) => medianOf(runtimes.map((run) => run[key]!)) / 2;
    const result = {
      turns: TURNS,
      rounds: ROUNDS,
      sandbox: SANDBOX,
      tool: TOOL,
      command: COMMAND,
      model_round_trips: TURNS * 2,
      runtime_ms_per_round_trip: round(perTrip),
      floor_sdk_only_ms_per_round_trip: round(floorPerTrip('bare')),
      floor_forking_true_ms_per_round_trip: round(floorPerTrip('direct')),
      floor_true_through_launcher_ms_per_round_trip: round(floorPerTrip('launcher')),
      overhead_over_sdk_only_ms: round(perTrip - floorPerTrip('bare')),
      overhead_over_forking_floor_ms: round(perTrip - floorPerTrip('direct')),
      overhead_over_launcher_floor_ms: round(perTrip - floorPerTrip('launcher')),
      machinery_alone_ms_per_round_trip: round(median(machinery).elapsed! / (TURNS * 2)),
      machinery_alone_telemetry_on_ms_per_round_trip: round(median(machineryTraced).elapsed! / (TURNS * 2)),
      telemetry_on_cost_ms_per_round_trip: round((median(machineryTraced).elapsed! - median(machinery).elapsed!) / (TURNS * 2)),
      otlp_bytes_received: otlp.bytes(),
      ...(TOOL !== 'exec_command'
        ? {}
        : {
            exec_command_ms_per_round_trip: round(perTool('exec_turn_ms')),
            shell_same_command_ms_per_round_trip: round(perTool('shell_turn_ms')),
            exec_command_over_shell_ms: round(perTool('exec_turn_ms') - perTool('shell_turn_ms')),
          }),
      events: runtime.events,
      events_per_second: Math.round(runtime.events! / (runtime.elapsed! / 1000)),
      runtime_peak_rss_mb: round(runtime.rss_mb!),
      floor_peak_rss_mb: round(median(floors.direct).rss_mb!),
      node: process.version,
    };
    const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, TOOL === 'shell' ? 'turn-overhead.json' : `turn-overhead-${TOOL}.json`), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await model.close();
    await otlp.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

/** The run with the median elapsed time. */
function median(runs: Record<string, number>[]): Record<string, number> {
  return [...runs].sort((a, b) => a.elapsed! - b.elapsed!)[Math.floor(runs.length / 2)]!;
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'runtime' || mode === 'machinery' || FLOORS.some((floor) => mode === `floor-${floor}`)) await runPhase([mode!, ...rest]);
else await main();
