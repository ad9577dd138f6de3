/**
 * exec_command's programs start in the launcher process, like shell's: on pipes and on a
 * terminal, with their input sent over, their exit status as a shell reports it, and a
 * launcher that dies under them reported as such and replaced.
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventMsg } from '../protocol/index.js';
import { runExecCommand } from '../actors/tools/handlers/exec-command.js';
import { runWriteStdin } from '../actors/tools/handlers/write-stdin.js';
import { ProcessLauncher, processLauncher, type LaunchedProcess } from '../actors/tools/launcher/launcher.js';
import { PtySessionManager } from '../actors/tools/pty/session-manager.js';
import { makeToolContext, TestResources } from './support/tool-context.js';
import { childrenOf, isAlive } from './support/processes.js';
import { waitFor } from './support/wait.js';

const UNSANDBOXED = { sandboxed: false, userApproved: false } as const;

interface ExecJson {
  output: string;
  session_id?: number;
  exit_code?: number;
}
const parse = (text: string) => JSON.parse(text) as ExecJson;

// The commands run in the user's shell; a login bash reads a profile whose programs share the
// terminal with the test's input (and lose a line of it now and then, with or without troupe).
const userShell = process.env.SHELL;
beforeAll(() => {
  process.env.SHELL = '/bin/sh';
});
afterAll(() => {
  if (userShell === undefined) delete process.env.SHELL;
  else process.env.SHELL = userShell;
});

let dir: string;
const resources: TestResources[] = [];
beforeEach(async () => {
  dir = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-exec-launcher-')));
});
afterEach(async () => {
  for (const r of resources.splice(0)) await r.disposeAll();
  await rm(dir, { recursive: true, force: true });
});

function harness() {
  const { ctx, events } = makeToolContext(dir, { approval: 'never', sandbox: 'danger-full-access' });
  resources.push(ctx.resources as TestResources);
  const manager = () => ctx.resources.get('pty', () => new PtySessionManager());
  return { ctx, events, manager };
}

const count = (events: EventMsg[], type: EventMsg['type']) => events.filter((e) => e.type === type).length;

describe('exec_command over the launcher', () => {
  for (const tty of [false, true]) {
    const on = tty ? 'a terminal' : 'pipes';

    it(`runs its program on ${on} as a child of the launcher, not of the host`, async () => {
      const { ctx, events, manager } = harness();
      // The pause after the echo keeps this about input and output, not about output printed in
      // the very instant a program exits, which a terminal has been seen to lose under load.
      const first = parse((await runExecCommand({ cmd: 'read line; echo "got $line"; sleep 0.1', tty, yield_time_ms: 500 }, ctx, UNSANDBOXED)).text);
      expect(first.session_id).toBeTypeOf('number');
      const pid = manager().get(first.session_id!)!.pid;
      expect(childrenOf(processLauncher().pid!).map((c) => c.pid)).toContain(pid);
      expect(childrenOf(process.pid).map((c) => c.pid)).not.toContain(pid);

      const second = parse((await runWriteStdin({ session_id: first.session_id!, chars: 'abc\n', yield_time_ms: 5_000 }, ctx)).text);
      expect(second.exit_code).toBe(0);
      expect(first.output + second.output).toContain('got abc');
      expect(count(events, 'exec_command_begin')).toBe(1);
      expect(count(events, 'exec_command_end')).toBe(1);
      expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 0 });
    });

    it(`reports a program killed by a signal on ${on} as 128 + its number`, async () => {
      const { ctx, events } = harness();
      const out = parse((await runExecCommand({ cmd: 'kill -TERM $$', tty, yield_time_ms: 10_000 }, ctx, UNSANDBOXED)).text);
      expect(out.exit_code).toBe(143);
      expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 143 });
    });

    it(`reports its programs on ${on} as failed when the launcher dies, then starts a new launcher`, async () => {
      const { ctx, events, manager } = harness();
      let inUse = 0;
      const slots = { acquire: async () => (inUse++, true), release: () => void inUse-- };
      ctx.resources.get('pty', () => new PtySessionManager(16, slots));
      const started = parse((await runExecCommand({ cmd: 'echo up; sleep 1007', tty, yield_time_ms: 300 }, ctx, UNSANDBOXED)).text);
      const session = manager().get(started.session_id!)!;
      expect(inUse).toBe(1);

      const launcher = processLauncher().pid!;
      process.kill(launcher, 'SIGKILL');
      const after = parse((await runWriteStdin({ session_id: started.session_id!, chars: '', yield_time_ms: 10_000 }, ctx)).text);
      expect(after.exit_code).toBe(137);
      expect(after.output).toMatch(/the process launcher was killed by SIGKILL while the program ran; the program was killed/);
      await waitFor(() => !isAlive(session.pid), 'the program to be killed');
      await waitFor(() => inUse === 0, 'its tree slot to be given back');
      expect(count(events, 'exec_command_end')).toBe(1);
      expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 137 });

      const again = parse((await runExecCommand({ cmd: 'echo back', tty, yield_time_ms: 10_000 }, ctx, UNSANDBOXED)).text);
      expect(again).toMatchObject({ exit_code: 0, output: expect.stringContaining('back') });
      expect(processLauncher().pid).not.toBe(launcher);
    });
  }

  it('reports a program that cannot start as exit code 127, with a begin and an end', async () => {
    const { ctx, events } = harness();
    process.env.SHELL = path.join(dir, 'no-such-shell');
    try {
      const out = parse((await runExecCommand({ cmd: 'true', yield_time_ms: 10_000 }, ctx, UNSANDBOXED)).text);
      expect(out.exit_code).toBe(127);
      expect(out.output).toContain(`failed to start ${path.join(dir, 'no-such-shell')}`);
    } finally {
      process.env.SHELL = '/bin/sh';
    }
    expect(events.map((e) => e.type)).toEqual(['exec_command_begin', 'exec_command_output_delta', 'exec_command_end']);
  });
});

describe('the launcher with input', () => {
  let launcher: ProcessLauncher;
  beforeAll(() => {
    launcher = new ProcessLauncher();
  });
  afterAll(() => launcher.close());

  function collect(launched: LaunchedProcess): { text: string } {
    const out = { text: '' };
    launched.onOutput((_stream, chunk) => (out.text += chunk));
    return out;
  }

  it('feeds a program on pipes and on a terminal what is written to it', async () => {
    const piped = launcher.launch(['sh', '-c', 'read a; echo "<$a>"'], { cwd: dir, stdio: 'pipe' });
    const pipedOut = collect(piped);
    expect(await piped.started).toBe(true);
    piped.write('one\n');
    expect(await piped.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    expect(pipedOut.text).toBe('<one>\n');

    const terminal = launcher.launch(['sh', '-c', '[ -t 0 ] && echo tty; read a; echo "<$a>"'], { cwd: dir, stdio: 'tty' });
    const terminalOut = collect(terminal);
    await waitFor(() => terminalOut.text.includes('tty'), 'the terminal program to start');
    terminal.write('two\r');
    expect(await terminal.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    expect(terminalOut.text).toContain('<two>');
  });

  it('keeps a program without input on /dev/null, and drops input after the end', async () => {
    const launched = launcher.launch(['sh', '-c', 'cat; echo "status $?"'], { cwd: dir });
    const out = collect(launched);
    launched.write('ignored\n');
    expect(await launched.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    expect(out.text).toBe('status 0\n');
    launched.write('after the end\n');
  });

  it('says a program that did not start never started', async () => {
    const launched = launcher.launch(['no-such-program-anywhere'], { cwd: dir, stdio: 'pipe' });
    expect(await launched.started).toBe(false);
    expect(await launched.outcome).toMatchObject({ kind: 'not_started', code: 'ENOENT' });
  });
});
