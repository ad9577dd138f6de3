/**
 * "Known safe" — what `untrusted` runs without asking — means the command only reads and
 * prints: no option writes a file, and nothing can make it run a program that someone else
 * (the repository's configuration, an argument) chose.
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadShellParser } from '../lib/exec-policy/shell-script.js';
import { planShell } from '../actors/tools/handlers/shell.js';
import { isKnownSafeCommand } from '../lib/approval/safe-commands.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import { TestResources } from './support/tool-context.js';

beforeAll(loadShellParser);

describe('known safe', () => {
  it.each([
    [['base64', 'file']],
    [['base64', '-d', 'file']],
    [['base64', '--decode', '--ignore-garbage', '-w', '0', 'file']],
    [['numfmt', '--to=iec', '1048576']],
    [['numfmt', '--from=auto', '--field=2', '--header', 'sizes.txt']],
    [['tac', 'log.txt']],
    [['tac', '-r', '-s', 'x.', 'log.txt']],
    [['rg', '-n', 'TODO', 'src']],
    [['rg', '--files', '-g', '*.ts']],
    [['rg', '-i', 'zebra']],
    [['find', '.', '-name', '*.ts', '-newer', 'x', '-print0']],
    [['sort', '-n', '-k1,1', 'a']],
    [['tree', '-L', '2', '-a']],
    [['file', '-b', 'x']],
    [['bash', '-lc', 'cat log | tac | base64 | head -n 3']],
  ])('%j', (argv) => {
    expect(isKnownSafeCommand(argv)).toBe(true);
  });
});

describe('not known safe', () => {
  it.each([
    // git: status runs core.fsmonitor; diff/log/show run external diff drivers, textconv and the
    // pager; all chosen by configuration the repository can carry. No git command is safe.
    [['git', 'status']],
    [['git', 'status', '--short']],
    [['git', 'log', '--oneline', '-5']],
    [['git', 'log', '-p']],
    [['git', 'diff', 'HEAD~1']],
    [['git', 'show', 'HEAD']],
    [['git', 'branch']],
    [['git', 'branch', '--list']],
    [['git', '-C', 'sub', 'status']],
    [['git', '--no-pager', 'log']],
    [['git', '-c', 'core.pager=sh', 'log']],
    [['git', '--exec-path=/tmp', 'status']],
    [['git', '--config-env=core.fsmonitor=X', 'status']],
    [['bash', '-lc', 'git status && git diff --stat']],
    // ripgrep: decompressors, preprocessors, a hostname program.
    [['rg', '--search-zip', 'x']],
    [['rg', '-z', 'x']],
    [['rg', '-nz', 'x']],
    [['rg', '--pre', 'cat', 'x']],
    [['rg', '--pre=cat', 'x']],
    [['rg', '--pre-glob', '*.gz', 'x']],
    [['rg', '--hostname-bin', '/bin/id', 'x']],
    // find actions that delete, run or write.
    [['find', '.', '-delete']],
    [['find', '.', '-exec', 'rm', '{}', ';']],
    [['find', '.', '-execdir', 'ls', ';']],
    [['find', '.', '-ok', 'ls', ';']],
    [['find', '.', '-okdir', 'ls', ';']],
    [['find', '.', '-fprint', 'out']],
    [['find', '.', '-fprint0', 'out']],
    [['find', '.', '-fprintf', 'out', '%p']],
    [['find', '.', '-fls', 'out']],
    // Options that write a file or run a program, however they are spelled.
    [['sort', '-o', 'out', 'in']],
    [['sort', '-no', 'out', 'in']],
    [['sort', '--output=out', 'in']],
    [['sort', '--out=out', 'in']],
    [['sort', '--compress-program=sh', 'in']],
    [['sort', '--compress=sh', 'in']],
    [['file', '-C', '-m', 'magic']],
    [['file', '--compile']],
    [['file', '--comp']],
    [['tree', '-o', 'out']],
    [['tree', '-ao', 'out']],
    [['tree', '-R', '-H', '.']],
    [['tree', '--output=out']],
    [['sed', '-i', 's/a/b/', 'f']],
    [['sed', '-n', '1e id', 'f']],
    [['sed', '-n', '1w out', 'f']],
    [['uniq', 'in', 'out']],
    // Programs that are not on the list at all: they write, run programs, or open a shell.
    [['date', '-s', '2020-01-01']],
    [['less', 'f']],
    [['more', 'f']],
    [['awk', 'BEGIN { system("id") }']],
    [['xxd', '-r', 'dump', 'out']],
    [['tee', 'out']],
    [['perl', '-e', 'print 1']],
    // Wrappers, and above all sudo, are never known safe, whatever they wrap.
    [['sudo', 'ls']],
    [['doas', 'cat', 'f']],
    [['env', 'ls']],
    [['nice', 'ls']],
    [['timeout', '5', 'cat', 'f']],
    [['command', 'ls']],
    [['xargs', 'cat']],
    [['bash', '-lc', 'sudo ls']],
    [['bash', '-lc', 'ls && sudo -n true']],
  ])('%j', (argv) => {
    expect(isKnownSafeCommand(argv)).toBe(false);
  });
});

describe('under untrusted, the plan follows the classifier', () => {
  let home: string;
  let cwd: string;
  beforeAll(async () => {
    home = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-safe-home-')));
    cwd = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-safe-cwd-')));
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
    await rm(cwd, { recursive: true, force: true });
  });

  const plan = (command: string[]) => {
    const settings = settingsFromConfig(
      { cwd, approval_policy: 'untrusted', sandbox_policy: 'danger-full-access' },
      { model: 'test-model', cwd, base_instructions: '' },
    );
    const ctx: ToolContext = {
      sessionId: 's',
      callId: 'c',
      turn: buildTurnContext(settings, 'turn-1', {}),
      signal: new AbortController().signal,
      resources: new TestResources(),
      home,
      emit: () => {},
    };
    return planShell({ command }, ctx, { has: () => false });
  };

  it('asks before git, rg -z and sudo; runs base64, numfmt and tac', async () => {
    for (const command of [
      ['git', 'status'],
      ['git', '-C', '.', 'diff'],
      ['rg', '-z', 'x'],
      ['sudo', 'ls'],
    ]) {
      expect(await plan(command), command.join(' ')).toMatchObject({ kind: 'ask' });
    }
    for (const command of [
      ['base64', '-d', 'x'],
      ['numfmt', '--to=si', '1000'],
      ['tac', 'x'],
    ]) {
      expect(await plan(command), command.join(' ')).toEqual({ kind: 'run', sandboxed: false });
    }
  });
});
