import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import { EventMsg, type AskForApproval, type SandboxPolicy } from '../protocol/index.js';
import { planShell, runShell, shellHandler } from '../actors/tools/handlers/shell.js';
import { detectSandbox } from '../lib/sandbox/detect.js';
import { loadShellParser, parsePlainCommands } from '../lib/exec-policy/shell-script.js';
import { isKnownSafeCommand } from '../lib/approval/safe-commands.js';
import { HeadTailBuffer, truncateMiddle } from '../lib/truncate.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';
import { isAlive } from './support/processes.js';
import { waitFor } from './support/wait.js';

interface FakeContext {
  ctx: ToolContext;
  events: EventMsg[];
  controller: AbortController;
}

function makeContext(cwd: string, policy: AskForApproval = 'on-request', sandbox: SandboxPolicy = 'workspace-write'): FakeContext {
  const settings = settingsFromConfig({ cwd, approval_policy: policy, sandbox_policy: sandbox }, { model: 'test-model', cwd, base_instructions: '' });
  const turn = buildTurnContext(settings, 'turn-1', {});
  const events: EventMsg[] = [];
  const controller = new AbortController();
  const ctx: ToolContext = {
    sessionId: 'session-1',
    callId: 'call-1',
    turn,
    signal: controller.signal,
    resources: new TestResources(),
    // Every event must be valid on the wire.
    emit: (msg) => events.push(EventMsg.parse(msg)),
  };
  return { ctx, events, controller };
}

/** These tests watch host pids and files, so they run outside the sandbox (test/sandbox.test.ts runs inside). */
const UNSANDBOXED = { sandboxed: false, userApproved: false } as const;
const noApprovals = { has: () => false };
const remembered = (...keys: string[]) => ({ has: (key: string) => keys.includes(key) });

let dir: string;
beforeEach(async () => {
  dir = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-shell-')));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readPid(file: string): Promise<number> {
  return Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
}

const sandbox = await detectSandbox();
if (!sandbox.ok) console.warn(`[tools-shell] skipping the shell plan tests, which plan sandboxed runs: ${sandbox.reason}`);

describe.skipIf(!sandbox.ok)('shell plan', () => {
  it('on-request runs sandboxed unless escalation is asked for', async () => {
    const { ctx } = makeContext(dir, 'on-request');
    expect(await planShell({ command: ['touch', 'x'] }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
    const plan = await planShell(
      { command: ['npm', 'install'], workdir: 'sub', with_escalated_permissions: true, justification: 'needs network' },
      ctx,
      noApprovals,
    );
    expect(plan).toEqual({
      kind: 'ask',
      request: { type: 'exec', command: ['npm', 'install'], cwd: path.join(dir, 'sub'), reason: 'needs network' },
      sandboxedAfterApproval: false,
      approvalKey: 'exec-outside:["npm","install"]',
    });
  });

  it('danger-full-access plans unsandboxed runs', async () => {
    const { ctx } = makeContext(dir, 'on-request', 'danger-full-access');
    expect(await planShell({ command: ['touch', 'x'] }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: false });
  });

  it('untrusted runs known-safe commands and asks for the rest', async () => {
    const { ctx } = makeContext(dir, 'untrusted');
    expect(await planShell({ command: ['ls', '-la'] }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
    expect((await planShell({ command: ['bash', '-lc', 'ls && cat a | wc -l'] }, ctx, noApprovals)).kind).toBe('run');
    const ask = await planShell({ command: ['rm', '-rf', 'build'] }, ctx, noApprovals);
    expect(ask).toMatchObject({
      kind: 'ask',
      request: { type: 'exec', command: ['rm', '-rf', 'build'], cwd: dir, reason: expect.stringContaining('not known to be read-only') },
      sandboxedAfterApproval: true,
      approvalKey: 'exec:["rm","-rf","build"]',
    });
    expect((await planShell({ command: ['bash', '-lc', 'echo hi > f'] }, ctx, noApprovals)).kind).toBe('ask');
  });

  it('a command approved for the session runs without asking again', async () => {
    const { ctx } = makeContext(dir, 'untrusted');
    const approvals = remembered('exec:["rm","-rf","build"]');
    expect(await planShell({ command: ['rm', '-rf', 'build'] }, ctx, approvals)).toEqual({ kind: 'run', sandboxed: true });
    expect((await planShell({ command: ['rm', '-rf', 'dist'] }, ctx, approvals)).kind).toBe('ask');

    const onRequest = makeContext(dir, 'on-request').ctx;
    const escalated = { command: ['curl', 'x'], with_escalated_permissions: true };
    // Approving the command inside the sandbox does not approve leaving it.
    expect((await planShell(escalated, onRequest, remembered('exec:["curl","x"]'))).kind).toBe('ask');
    expect(await planShell(escalated, onRequest, remembered('exec-outside:["curl","x"]'))).toEqual({ kind: 'run', sandboxed: false });
  });

  it('never refuses escalation and runs everything else', async () => {
    const { ctx } = makeContext(dir, 'never');
    const plan = await planShell({ command: ['curl', 'x'], with_escalated_permissions: true }, ctx, remembered('exec-outside:["curl","x"]'));
    expect(plan.kind).toBe('reject');
    if (plan.kind === 'reject') expect(plan.reason).toMatch(/never/);
    expect(await planShell({ command: ['rm', 'x'] }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
  });

  it('on-failure runs sandboxed without asking, even when escalation is asked for', async () => {
    const { ctx } = makeContext(dir, 'on-failure');
    expect(await planShell({ command: ['rm', 'x'] }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
    expect(await planShell({ command: ['rm', 'x'], with_escalated_permissions: true }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
  });

  it('the handler exposes the plan and validates arguments with ShellArgs', () => {
    expect(shellHandler.name).toBe('shell');
    expect(shellHandler.args.safeParse({ command: [] }).success).toBe(false);
    expect(shellHandler.args.safeParse({ command: ['ls'], timeout_ms: 10 }).success).toBe(true);
  });
});

describe('shell run', () => {
  it('emits begin, output deltas and end, and formats the output for the model', async () => {
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['echo', 'hello'] }, ctx, UNSANDBOXED);
    expect(out.success).toBe(true);
    expect(out.text).toMatch(/^Exit code: 0\nWall time: \d+\.\d seconds\nOutput:\nhello\n$/);
    expect(events[0]).toEqual({ type: 'exec_command_begin', call_id: 'call-1', turn_id: 'turn-1', command: ['echo', 'hello'], cwd: dir });
    expect(events.filter((e) => e.type === 'exec_command_output_delta')).toEqual([
      { type: 'exec_command_output_delta', call_id: 'call-1', stream: 'stdout', chunk: 'hello\n' },
    ]);
    const end = events.at(-1);
    expect(end).toMatchObject({
      type: 'exec_command_end',
      call_id: 'call-1',
      turn_id: 'turn-1',
      exit_code: 0,
      stdout: 'hello\n',
      stderr: '',
      aggregated_output: 'hello\n',
    });
  });

  it('streams stdout and stderr separately and aggregates them in arrival order', async () => {
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['sh', '-c', 'echo out; sleep 0.2; echo err >&2; sleep 0.2; echo out2'] }, ctx, UNSANDBOXED);
    const deltas = events.flatMap((e) => (e.type === 'exec_command_output_delta' ? [[e.stream, e.chunk]] : []));
    expect(deltas).toEqual([
      ['stdout', 'out\n'],
      ['stderr', 'err\n'],
      ['stdout', 'out2\n'],
    ]);
    const end = events.at(-1);
    expect(end).toMatchObject({ stdout: 'out\nout2\n', stderr: 'err\n', aggregated_output: 'out\nerr\nout2\n' });
    expect(out.text.endsWith('Output:\nout\nerr\nout2\n')).toBe(true);
  });

  it('reports non-zero exit codes as failures', async () => {
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['sh', '-c', 'echo failing >&2; exit 3'] }, ctx, UNSANDBOXED);
    expect(out.success).toBe(false);
    expect(out.text).toMatch(/^Exit code: 3\n/);
    expect(out.text).toContain('failing');
    expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 3 });
  });

  it('reports death by signal as 128 + the signal number', async () => {
    const { ctx } = makeContext(dir);
    const out = await runShell({ command: ['sh', '-c', 'kill -TERM $$'] }, ctx, UNSANDBOXED);
    expect(out.text).toMatch(/^Exit code: 143\n/);
  });

  it('turns a missing program into exit code 127, not an exception', async () => {
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['troupe-no-such-program-xyz', '--help'] }, ctx, UNSANDBOXED);
    expect(out.success).toBe(false);
    expect(out.text).toMatch(/^Exit code: 127\n/);
    expect(out.text).toContain('command not found: troupe-no-such-program-xyz');
    expect(events.map((e) => e.type)).toEqual(['exec_command_begin', 'exec_command_end']);
    expect(events.at(-1)).toMatchObject({ exit_code: 127 });
  });

  it('kills a command that runs past its timeout with exit code 124, leaving nothing behind', async () => {
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['sh', '-c', 'echo $$ > shell.pid; sleep 100 & echo $! > bg.pid; sleep 100'], timeout_ms: 500 }, ctx, UNSANDBOXED);
    expect(out.success).toBe(false);
    expect(out.text).toMatch(/^Exit code: 124\nWall time: [\d.]+ seconds\nCommand timed out after 500 ms\nOutput:\n/);
    expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 124 });
    const pids = [await readPid(path.join(dir, 'shell.pid')), await readPid(path.join(dir, 'bg.pid'))];
    await waitFor(() => pids.every((pid) => !isAlive(pid)), 'the process group to die');
  });

  it('abort kills the whole process tree and the run resolves', async () => {
    const { ctx, events, controller } = makeContext(dir);
    const running = runShell({ command: ['sh', '-c', 'echo $$ > shell.pid; sleep 60 & echo $! > pidfile; sleep 60'], timeout_ms: 60_000 }, ctx, UNSANDBOXED);
    await waitFor(() => existsSync(path.join(dir, 'pidfile')) && readFileSync(path.join(dir, 'pidfile'), 'utf8').endsWith('\n'), 'pidfile');
    const shellPid = await readPid(path.join(dir, 'shell.pid'));
    const backgroundPid = await readPid(path.join(dir, 'pidfile'));
    expect(isAlive(shellPid)).toBe(true);
    expect(isAlive(backgroundPid)).toBe(true);

    controller.abort();
    const out = await running;
    expect(out.success).toBe(false);
    expect(out.text).toContain('Command was interrupted');
    expect(events.at(-1)).toMatchObject({ type: 'exec_command_end', exit_code: 137 });
    await waitFor(() => !isAlive(shellPid) && !isAlive(backgroundPid), 'both processes to die');
  });

  it('returns when the command exits even if a background child still holds its output open', async () => {
    const { ctx } = makeContext(dir);
    let backgroundPid: number | undefined;
    try {
      // Without the drain limit this would wait for the background sleep, i.e. hit the timeout.
      const out = await runShell({ command: ['sh', '-c', 'sleep 30 & echo $! > bg.pid; echo hi'], timeout_ms: 20_000 }, ctx, UNSANDBOXED);
      backgroundPid = await readPid(path.join(dir, 'bg.pid'));
      expect(out.text).toMatch(/^Exit code: 0\n/);
      expect(out.text.endsWith('Output:\nhi\n')).toBe(true);
    } finally {
      if (backgroundPid !== undefined && isAlive(backgroundPid)) process.kill(backgroundPid, 'SIGKILL');
    }
  });

  it('reports a program that is not executable as exit code 126', async () => {
    const { ctx } = makeContext(dir);
    const out = await runShell({ command: [dir] }, ctx, UNSANDBOXED);
    expect(out.text).toMatch(/^Exit code: 126\n/);
  });

  it('does not start anything when the turn is already aborted', async () => {
    const { ctx, controller } = makeContext(dir);
    controller.abort();
    const out = await runShell({ command: ['sh', '-c', 'touch started'] }, ctx, UNSANDBOXED);
    expect(out.success).toBe(false);
    expect(existsSync(path.join(dir, 'started'))).toBe(false);
  });

  it('middle-truncates large output for the model but keeps both ends', async () => {
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['seq', '1', '100000'] }, ctx, UNSANDBOXED);
    expect(out.success).toBe(true);
    const body = out.text.slice(out.text.indexOf('Output:\n') + 'Output:\n'.length);
    expect(body.startsWith('1\n2\n3\n')).toBe(true);
    expect(body.endsWith('99999\n100000\n')).toBe(true);
    expect(body).toMatch(/\[… \d+ lines \(\d+ bytes\) omitted …\]/);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(10 * 1024);
    expect(body.split('\n').length - 1).toBeLessThanOrEqual(256);
    // The event keeps the whole output (within its memory bound).
    const end = events.at(-1);
    expect(end?.type === 'exec_command_end' && end.stdout.split('\n').length).toBe(100001);
  });

  it('never splits a multi-byte character across chunks', async () => {
    const { ctx, events } = makeContext(dir);
    const script = "process.stdout.write('€'.repeat(200000))";
    await runShell({ command: [process.execPath, '-e', script] }, ctx, UNSANDBOXED);
    const end = events.at(-1);
    if (end?.type !== 'exec_command_end') throw new Error('no end event');
    expect(end.stdout).toBe('€'.repeat(200000));
    const streamed = events.flatMap((e) => (e.type === 'exec_command_output_delta' ? [e.chunk] : [])).join('');
    expect(streamed).toBe(end.stdout);
  });

  it('resolves a relative workdir against the turn cwd', async () => {
    await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
    const { ctx, events } = makeContext(dir);
    const out = await runShell({ command: ['pwd'], workdir: 'sub/deeper' }, ctx, UNSANDBOXED);
    expect(out.text.endsWith(`Output:\n${path.join(dir, 'sub', 'deeper')}\n`)).toBe(true);
    expect(events[0]).toMatchObject({ type: 'exec_command_begin', cwd: path.join(dir, 'sub', 'deeper') });
    const absolute = await runShell({ command: ['pwd'], workdir: '/' }, makeContext(dir).ctx, UNSANDBOXED);
    expect(absolute.text.endsWith('Output:\n/\n')).toBe(true);
  });

  it('reports a missing workdir in the output', async () => {
    const { ctx } = makeContext(dir);
    const out = await runShell({ command: ['ls'], workdir: 'nope' }, ctx, UNSANDBOXED);
    expect(out.success).toBe(false);
    expect(out.text).toContain(`working directory does not exist: ${path.join(dir, 'nope')}`);
  });
});

describe('isKnownSafeCommand', () => {
  beforeAll(loadShellParser);

  it.each([
    [['ls', '-la']],
    [['cat', 'README.md']],
    [['head', '-n', '5', 'a']],
    [['wc', '-l', 'a']],
    [['pwd']],
    [['echo', 'hi']],
    [['grep', '-rn', 'TODO', 'src']],
    [['rg', '--files']],
    [['find', '.', '-name', '*.ts']],
    [['sed', '-n', '1,20p', 'file.txt']],
    [['sed', '-n', '$p', 'file.txt']],
    [['sort', '-n', 'a']],
    [['uniq', '-c', 'a']],
    [['tree', '-L', '2']],
    [['bash', '-lc', 'ls && pwd']],
    [['bash', '-lc', "grep -n 'a b' x.txt | head -n 3; echo done || true"]],
    [['bash', '-lc', 'cd src && rg "foo bar" -n']],
  ])('%j is safe', (argv) => {
    expect(isKnownSafeCommand(argv)).toBe(true);
  });

  it.each([
    [['rm', '-rf', '/']],
    [['./ls']],
    [['/tmp/cat', 'x']],
    // Each can run a program the repository or the arguments name (fsmonitor, diff drivers, a decompressor).
    [['rg', '--search-zip', 'x']],
    [['git', 'status']],
    [['git', 'log', '--oneline', '-5']],
    [['git', 'diff', 'HEAD~1']],
    [['git', 'show', 'HEAD']],
    [['git', 'branch']],
    [['git', 'branch', '-a', '-v']],
    [['git', 'branch', '--list', 'feat*']],
    [['sh', '-c', 'git status && git diff --stat']],
    [['rg', '--pre', 'sh', 'x']],
    [['rg', '--pre=sh', 'x']],
    [['find', '.', '-delete']],
    [['find', '.', '-exec', 'rm', '{}', ';']],
    [['find', '.', '-fprint', 'out']],
    [['sed', '-i', 's/a/b/', 'f']],
    [['sed', '-n', '1e id', 'f']],
    [['sed', 's/a/b/', 'f']],
    [['git', 'commit', '-m', 'x']],
    [['git', 'branch', 'new-branch']],
    [['git', 'branch', '-D', 'old']],
    [['git', '-c', 'core.pager=sh', 'log']],
    [['git', 'diff', '--output=/tmp/x']],
    [['git', 'diff', '--ext-diff']],
    [['sort', '-o', 'out', 'in']],
    [['sort', '--output=out', 'in']],
    [['uniq', 'in', 'out']],
    [['tree', '-o', 'out']],
    [['bash', '-lc', 'echo hi > file']],
    [['bash', '-lc', 'cat < file']],
    [['bash', '-lc', 'echo $(rm -rf x)']],
    [['bash', '-lc', 'echo `id`']],
    [['bash', '-lc', 'echo "$HOME"']],
    [['bash', '-lc', 'ls & rm x']],
    [['bash', '-lc', 'ls && rm x']],
    [['bash', '-lc', '(ls)']],
    [['bash', '-lc', 'ls *']],
    [['bash', '-lc', 'FOO=1 ls']],
    [['bash', '-lc', 'ls &&']],
    [['bash', '-lc', "echo 'unterminated"]],
    [['bash', '-lc', 'ls\nrm x']],
    [['bash', '-x', 'ls']],
    [['python3', '-c', 'print(1)']],
  ])('%j is not known safe', (argv) => {
    expect(isKnownSafeCommand(argv)).toBe(false);
  });

  it('parses quoted words of a simple script', () => {
    expect(parsePlainCommands(`grep -n 'a b'"c" x && echo "d e"`)).toEqual([
      ['grep', '-n', 'a bc', 'x'],
      ['echo', 'd e'],
    ]);
    expect(parsePlainCommands('')).toBeUndefined();
  });
});

describe('truncateMiddle', () => {
  it('returns text within the limits unchanged', () => {
    expect(truncateMiddle('a\nb\n', { maxBytes: 100, maxLines: 2 })).toBe('a\nb\n');
  });

  it('keeps whole head and tail lines and counts what it dropped', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `line ${i + 1}\n`).join('');
    const out = truncateMiddle(text, { maxBytes: 100_000, maxLines: 11 });
    const lines = out.split('\n').slice(0, -1);
    expect(lines).toHaveLength(11);
    expect(lines.slice(0, 5)).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
    expect(lines[5]).toMatch(/^\[… 990 lines \(\d+ bytes\) omitted …\]$/);
    expect(lines.slice(6)).toEqual(['line 996', 'line 997', 'line 998', 'line 999', 'line 1000']);
  });

  it('respects the byte limit and cuts a huge line at character boundaries', () => {
    const text = 'é€😀'.repeat(10_000);
    const out = truncateMiddle(text, { maxBytes: 1000, maxLines: 256 });
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(1000);
    expect(out).not.toContain('\uFFFD');
    expect(out.startsWith('é€😀')).toBe(true);
    expect(out.endsWith('é€😀')).toBe(true);
    expect(out).toContain('omitted');
  });

  it('uses defaults of 10 KiB and 256 lines', () => {
    const out = truncateMiddle('x\n'.repeat(1000));
    expect(out.split('\n').length - 1).toBe(256);
    const wide = truncateMiddle(`${'y'.repeat(100)}\n`.repeat(200));
    expect(Buffer.byteLength(wide)).toBeLessThanOrEqual(10 * 1024);
  });

  it('HeadTailBuffer keeps the ends of an unbounded stream', () => {
    const buffer = new HeadTailBuffer(20);
    for (let i = 0; i < 100; i++) buffer.append(`${i % 10}`);
    const text = buffer.toString();
    expect(text.startsWith('0123456789')).toBe(true);
    expect(text.endsWith('0123456789')).toBe(true);
    expect(buffer.omittedBytes).toBe(80);
  });
});
