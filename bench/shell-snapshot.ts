/**
 * bench/shell-snapshot: what a slow login profile costs a session's commands.
 *
 * A temporary HOME whose `.bash_profile` sleeps 1 s (BENCH_PROFILE_SLEEP), and ten commands
 * (BENCH_COMMANDS) in one session, each a turn with one `shell` call of `bash -lc`, against the
 * fake model server, outside the sandbox. Two figures: the session as troupe runs it (the
 * profile runs once, for the snapshot, and every command sources it), and the same ten login
 * shells started one after the other through the launcher, which is what each command cost
 * before snapshots (every `bash -lc` re-ran the profile).
 *
 *   npm run bench:shell-snapshot        (writes bench/results/shell-snapshot.json)
 *
 * Target (issue 18): under 2 s for the ten commands, against about 10 s before.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createRuntime } from '../actors/runtime.js';
import { processLauncher } from '../actors/tools/launcher/launcher.js';
import { startFakeModelServer, type RecordedRequest, type ScriptStep } from '../testing/index.js';

const COMMANDS = Number(process.env.BENCH_COMMANDS ?? 10);
const PROFILE_SLEEP = process.env.BENCH_PROFILE_SLEEP ?? '1';
const SCRIPT = 'echo "$BENCH_FROM_PROFILE"';

/** Ten login shells, one after the other, as each command ran before snapshots. */
async function loginShells(cwd: string): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < COMMANDS; i++) {
    const launched = processLauncher().launch(['bash', '-lc', SCRIPT], { cwd, env: process.env });
    let output = '';
    launched.onOutput((_stream, text) => (output += text));
    const outcome = await launched.outcome;
    if (outcome.kind !== 'exited' || outcome.code !== 0 || !output.includes('from-profile')) throw new Error(`the login shell failed: ${output}`);
  }
  return performance.now() - started;
}

/** The same commands through a troupe session: each a turn with one `shell` call. */
async function session(modelUrl: string, home: string, cwd: string): Promise<{ total: number; turns: number[] }> {
  const runtime = createRuntime({ baseURL: modelUrl, apiKey: 'bench', home, cwd, model: 'bench-model' });
  try {
    const session = await runtime.newSession({ approval_policy: 'never', sandbox_policy: 'danger-full-access' });
    const events = session.events();
    const started = performance.now();
    const turns: number[] = [];
    for (let i = 0; i < COMMANDS; i++) {
      const turnStarted = performance.now();
      const id = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: `command ${i}` }] }, `t${i}`);
      for (;;) {
        const next = await events.next();
        if (next.done === true) throw new Error('the session ended');
        const { msg } = next.value;
        if (msg.type === 'exec_command_end' && !msg.aggregated_output.includes('from-profile'))
          throw new Error(`the command missed the profile: ${msg.aggregated_output}`);
        if (msg.type === 'error' || msg.type === 'warning') throw new Error(msg.message);
        if (next.value.id === id && msg.type === 'task_complete') break;
      }
      turns.push(performance.now() - turnStarted);
    }
    return { total: performance.now() - started, turns };
  } finally {
    await runtime.close();
  }
}

async function main(): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'troupe-bench-snapshot-'));
  const home = join(scratch, 'home');
  const cwd = join(scratch, 'work');
  await mkdir(home);
  await mkdir(cwd);
  await writeFile(join(home, '.bash_profile'), `sleep ${PROFILE_SLEEP}\nexport BENCH_FROM_PROFILE=from-profile\n`);
  // The commands' environment is read from this process's on first use: set before anything runs.
  process.env.HOME = home;
  process.env.SHELL = '/bin/bash';
  const model = await startFakeModelServer();
  // Each turn: one `shell` call, then a final message once its output is in.
  const step = (request: RecordedRequest): ScriptStep => {
    const input = request.body.input as { type: string }[];
    if (input.at(-1)?.type === 'function_call_output') return { kind: 'response', items: [{ type: 'message', text: 'done' }] };
    return { kind: 'response', items: [{ type: 'function_call', name: 'shell', arguments: { command: ['bash', '-lc', SCRIPT] } }] };
  };
  model.enqueue(...Array.from({ length: COMMANDS * 2 }, (): ScriptStep => ({ kind: 'reply', handler: step })));
  try {
    const before = await loginShells(cwd);
    const now = await session(model.url, join(scratch, 'troupe-home'), cwd);
    const result = {
      commands: COMMANDS,
      profile_sleep_s: Number(PROFILE_SLEEP),
      login_shells_ms: Math.round(before),
      session_with_snapshot_ms: Math.round(now.total),
      // The first turn takes the snapshot (the profile's run); the others only source it.
      first_turn_ms: Math.round(now.turns[0]!),
      later_turns_median_ms: Math.round([...now.turns.slice(1)].sort((a, b) => a - b)[Math.floor((now.turns.length - 1) / 2)] ?? 0),
      target_ms: 2000,
    };
    console.log(JSON.stringify(result, null, 2));
    const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'shell-snapshot.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await model.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
