/** Exec sessions (exec_command / write_stdin) driven through their handlers, with real processes. */
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import { EventMsg, type AskForApproval, type SandboxPolicy } from '../protocol/index.js';
import { detectSandbox } from '../lib/sandbox/detect.js';
import { runExecCommand, planExecCommand, userShellArgv } from '../actors/tools/handlers/exec-command.js';
import { runWriteStdin } from '../actors/tools/handlers/write-stdin.js';
import { PtySessionManager } from '../actors/tools/pty/session-manager.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';
import { processesMatching } from './support/processes.js';
import { waitFor } from './support/wait.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[pty tests] skipping the sandboxed exec_command tests: ${availability.reason}`);

const UNSANDBOXED = { sandboxed: false, userApproved: false } as const;

interface Harness {
  ctx: ToolContext;
  events: EventMsg[];
  resources: TestResources;
  controller: AbortController;
}

let dir: string;
let harnesses: Harness[] = [];
beforeEach(async () => {
  dir = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-pty-')));
});
afterEach(async () => {
  for (const h of harnesses) await h.resources.disposeAll();
  harnesses = [];
  await rm(dir, { recursive: true, force: true });
});

function harness(options: { policy?: AskForApproval; sandbox?: SandboxPolicy; resources?: TestResources } = {}): Harness {
  const settings = settingsFromConfig(
    { cwd: dir, approval_policy: options.policy ?? 'on-request', sandbox_policy: options.sandbox ?? 'workspace-write' },
    { model: 'm', cwd: dir, base_instructions: '' },
  );
  const events: EventMsg[] = [];
  const resources = options.resources ?? new TestResources();
  const controller = new AbortController();
  let call = 0;
  const ctx: ToolContext = {
    sessionId: 's',
    get callId() {
      return `call-${call}`;
    },
    turn: buildTurnContext(settings, 't', {}),
    signal: controller.signal,
    resources,
    emit: (msg) => events.push(EventMsg.parse(msg)),
  };
  void call++;
  const h = { ctx, events, resources, controller };
  harnesses.push(h);
  return h;
}

interface ExecJson {
  output: string;
  session_id?: number;
  exit_code?: number;
  wall_time_ms: number;
}
const parse = (text: string) => JSON.parse(text) as ExecJson;

describe('exec_command', () => {
  it('returns the exit code as soon as a short command ends, with begin/delta/end events', async () => {
    const { ctx, events } = harness();
    const out = await runExecCommand({ cmd: 'echo hello; exit 3', yield_time_ms: 20_000 }, ctx, UNSANDBOXED);
    const body = parse(out.text);
    expect(body).toMatchObject({ output: 'hello\n', exit_code: 3 });
    expect(body.session_id).toBeUndefined();
    expect(body.wall_time_ms).toBeLessThan(20_000);
    expect(out.success).toBe(false);
    expect(events[0]).toMatchObject({ type: 'exec_command_begin', command: userShellArgv('echo hello; exit 3'), cwd: dir });
    expect(
      events
        .filter((e) => e.type === 'exec_command_output_delta')
        .map((e) => (e.type === 'exec_command_output_delta' ? e.chunk : ''))
        .join(''),
    ).toBe('hello\n');
    expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 3, aggregated_output: 'hello\n' });
  });

  it('an interactive PTY round trip: cat echoes what write_stdin sent, across calls', async () => {
    const { ctx } = harness();
    const first = parse((await runExecCommand({ cmd: 'cat', tty: true, yield_time_ms: 300 }, ctx, UNSANDBOXED)).text);
    expect(first.session_id).toBeTypeOf('number');
    expect(first.exit_code).toBeUndefined();
    const second = parse((await runWriteStdin({ session_id: first.session_id!, chars: 'ping\n', yield_time_ms: 500 }, ctx)).text);
    // The terminal echoes the line, then cat prints it back.
    expect(second.output).toBe('ping\r\nping\r\n');
    expect(second.session_id).toBe(first.session_id);
    const third = parse((await runWriteStdin({ session_id: String(first.session_id), chars: '\u0004', yield_time_ms: 5_000 }, ctx)).text);
    expect(third.exit_code).toBe(0);
    const gone = await runWriteStdin({ session_id: first.session_id!, chars: 'x' }, ctx);
    expect(gone.success).toBe(false);
    expect(gone.text).toMatch(/no exec session/);
  });

  it('a terminal program that closes its own stdin, stdout and stderr is not hung up: its exit status is its own', async () => {
    // GNU cat closes all three just before it exits; a hangup in that moment killed it (129).
    // Here the moment is made long: the shell closes them, then sleeps before it exits.
    const { ctx } = harness();
    const out = parse(
      (await runExecCommand({ cmd: 'echo bye; exec 0<&- 1>&- 2>&-; sleep 1; exit 7', tty: true, yield_time_ms: 20_000 }, ctx, UNSANDBOXED)).text,
    );
    expect(out).toMatchObject({ output: 'bye\r\n', exit_code: 7 });
  });

  it('works on plain pipes too, and the program sees no terminal', async () => {
    const { ctx } = harness();
    const first = parse(
      (await runExecCommand({ cmd: '[ -t 0 ] && echo tty || echo pipe; read line; echo got:$line', yield_time_ms: 2_000 }, ctx, UNSANDBOXED)).text,
    );
    expect(first.output).toBe('pipe\n');
    const second = parse((await runWriteStdin({ session_id: first.session_id!, chars: 'abc\n', yield_time_ms: 5_000 }, ctx)).text);
    expect(second).toMatchObject({ output: 'got:abc\n', exit_code: 0 });
  });

  it('caps the output of one call at 128 KiB, cut in the middle, and honours max_output_tokens', async () => {
    const { ctx } = harness();
    const big = parse((await runExecCommand({ cmd: 'seq 1 200000', yield_time_ms: 20_000 }, ctx, UNSANDBOXED)).text);
    expect(big.exit_code).toBe(0);
    expect(Buffer.byteLength(big.output)).toBeLessThanOrEqual(128 * 1024);
    expect(big.output.startsWith('1\n2\n')).toBe(true);
    expect(big.output.endsWith('199999\n200000\n')).toBe(true);
    expect(big.output).toMatch(/omitted/);
    const small = parse((await runExecCommand({ cmd: 'seq 1 200000', yield_time_ms: 20_000, max_output_tokens: 100 }, ctx, UNSANDBOXED)).text);
    expect(Buffer.byteLength(small.output)).toBeLessThanOrEqual(400);
    expect(small.output.endsWith('200000\n')).toBe(true);
  });

  it('clamps the yield time: a tiny yield still waits 250 ms, and output keeps for the next call', async () => {
    const { ctx } = harness();
    const out = parse((await runExecCommand({ cmd: 'echo late; sleep 30', yield_time_ms: 1 }, ctx, UNSANDBOXED)).text);
    expect(out.wall_time_ms).toBeGreaterThanOrEqual(240);
    expect(out.session_id).toBeDefined();
    const more = parse((await runWriteStdin({ session_id: out.session_id!, chars: '', yield_time_ms: 2_000 }, ctx)).text);
    expect(out.output + more.output).toBe('late\n');
  });

  it('refuses a 17th live session with a clear error', async () => {
    const { ctx, resources } = harness();
    const manager = resources.get('pty', () => new PtySessionManager(2));
    expect(manager.maxSessions).toBe(2);
    for (let i = 0; i < 2; i++) expect(parse((await runExecCommand({ cmd: 'sleep 30', yield_time_ms: 250 }, ctx, UNSANDBOXED)).text).session_id).toBeDefined();
    const third = await runExecCommand({ cmd: 'sleep 30', yield_time_ms: 250 }, ctx, UNSANDBOXED);
    expect(third.success).toBe(false);
    expect(third.text).toMatch(/too many exec sessions: 2 are still running/);
    expect(new PtySessionManager().maxSessions).toBe(16);
  });

  it('counts live programs against the session tree, and gives the slot back when one ends', async () => {
    const { ctx, resources } = harness();
    // A tree allowing one live program, shared with sibling sessions.
    let inUse = 0;
    const slots = {
      acquire: async () => (inUse >= 1 ? false : (inUse++, true)),
      release: () => void inUse--,
    };
    resources.get('pty', () => new PtySessionManager(16, slots));
    const first = parse((await runExecCommand({ cmd: 'sleep 0.5', yield_time_ms: 250 }, ctx, UNSANDBOXED)).text);
    expect(first.session_id).toBeDefined();
    const refused = await runExecCommand({ cmd: 'echo no', yield_time_ms: 250 }, ctx, UNSANDBOXED);
    expect(refused.success).toBe(false);
    expect(refused.text).toMatch(/too many exec sessions in this session tree/);
    await runWriteStdin({ session_id: first.session_id!, chars: '', yield_time_ms: 2_000 }, ctx);
    for (let i = 0; i < 50 && inUse > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(inUse).toBe(0);
    const again = parse((await runExecCommand({ cmd: 'echo yes', yield_time_ms: 1_000 }, ctx, UNSANDBOXED)).text);
    expect(again.output).toBe('yes\n');
  });

  it('closing the session kills every program and what it started, terminal or not', async () => {
    const { ctx, resources } = harness();
    const marker = `troupe-pty-orphan-${process.pid}`;
    // Durations no other process will have (other test files run beside this one).
    const tag = `${process.pid}${Date.now() % 10_000}`;
    const sleeps = ['1001', '1002', '1003', '1004'].map((n) => `sleep ${n}.${tag}`);
    await runExecCommand({ cmd: `sleep 1001.${tag} & sleep 1002.${tag}; : ${marker}`, tty: true, yield_time_ms: 300 }, ctx, UNSANDBOXED);
    await runExecCommand({ cmd: `(setsid_free=1 sleep 1003.${tag} &) ; sleep 1004.${tag}; : ${marker}`, yield_time_ms: 300 }, ctx, UNSANDBOXED);
    await waitFor(() => sleeps.every((sleep) => processesMatching(sleep).length > 0), 'the programs to start');
    await resources.disposeAll();
    await waitFor(() => sleeps.every((sleep) => processesMatching(sleep).length === 0), 'every program to die');
  });

  it('an interrupt kills the program and returns', async () => {
    const { ctx, controller, events } = harness();
    const sleep = `sleep 1005.${process.pid}${Date.now() % 10_000}`;
    const running = runExecCommand({ cmd: `echo started; ${sleep}`, yield_time_ms: 30_000 }, ctx, UNSANDBOXED);
    await waitFor(() => events.some((e) => e.type === 'exec_command_output_delta'), 'the program to start');
    controller.abort();
    const out = parse((await running).text);
    expect(out.output).toMatch(/started[\s\S]*interrupted/);
    await waitFor(() => processesMatching(sleep).length === 0, 'the program to die');
  });

  it('reports a missing working directory without starting anything', async () => {
    const { ctx } = harness();
    const out = await runExecCommand({ cmd: 'true', workdir: 'nope' }, ctx, UNSANDBOXED);
    expect(out).toEqual({ text: `working directory does not exist: ${path.join(dir, 'nope')}`, success: false });
  });
});

describe.skipIf(!availability.ok)('exec_command in the sandbox', () => {
  it('is planned like shell, and a sandboxed session cannot write outside the writable roots', async () => {
    const outside = realpathSync(await mkdtemp('/var/tmp/troupe-pty-out-'));
    try {
      const { ctx } = harness({ policy: 'on-failure' });
      expect(await planExecCommand({ cmd: 'touch x' }, ctx, { has: () => false })).toEqual({ kind: 'run', sandboxed: true });
      const out = await runExecCommand({ cmd: `touch inside && touch ${outside}/escaped`, tty: true, yield_time_ms: 10_000 }, ctx, {
        sandboxed: true,
        userApproved: false,
      });
      expect(existsSync(path.join(dir, 'inside'))).toBe(true);
      expect(existsSync(path.join(outside, 'escaped'))).toBe(false);
      // on-failure: the denial becomes a request to run it again outside the sandbox.
      expect(out.escalate).toMatchObject({ request: { type: 'exec', command: userShellArgv(`touch inside && touch ${outside}/escaped`) } });
      expect(parse(out.text.split('\n')[0]!).exit_code).not.toBe(0);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('untrusted asks before a command that is not known to be read-only', async () => {
    await mkdir(path.join(dir, 'sub'));
    const { ctx } = harness({ policy: 'untrusted' });
    expect((await planExecCommand({ cmd: 'ls sub' }, ctx, { has: () => false })).kind).toBe('run');
    expect(await planExecCommand({ cmd: 'rm -r sub' }, ctx, { has: () => false })).toMatchObject({
      kind: 'ask',
      request: { command: userShellArgv('rm -r sub') },
    });
  });
});
