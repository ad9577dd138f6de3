/**
 * The session's shell snapshots driven directly: a profile that outlives the timeout is killed
 * and the session keeps its login shells, warned once; the variable lines keep to the policy
 * and quote every value; only bash and zsh login shells are rewritten.
 */
import { existsSync, realpathSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeShellEnvironmentPolicy } from '../machines/turn-context.js';
import { profileVariableFilter } from '../actors/tools/environment-policy.js';
import { loginShellCommand, ShellSnapshots, snapshotArgv, variableLines } from '../actors/tools/shell-snapshot.js';
import { processesMatching } from './support/processes.js';
import { waitFor } from './support/wait.js';

let home: string;
beforeEach(async () => {
  home = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-snapshot-unit-')));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('ShellSnapshots', () => {
  it('kills a profile that outlives the timeout, keeps the login shell and warns once', async () => {
    // A duration no other process will have, so its `sleep` can be told from any other.
    const marker = `sleep 30.${process.pid}${Date.now() % 10_000}`;
    await writeFile(path.join(home, '.bash_profile'), `${marker}\n`);
    // The policy's `set` points the commands' HOME, and so the profile, at this test's own.
    const snapshots = new ShellSnapshots(normalizeShellEnvironmentPolicy({ set: { HOME: home } }), { timeoutMs: 300 });
    const warnings: string[] = [];
    try {
      const argv = ['bash', '-lc', 'echo hi'];
      const hooks = { warn: (message: string) => warnings.push(message), confine: (capture: readonly string[]) => Promise.resolve(capture) };
      expect(await snapshots.rewrite(argv, hooks)).toEqual(argv);
      expect(await snapshots.rewrite(['/bin/bash', '-lc', 'echo again'], hooks)).toEqual(['/bin/bash', '-lc', 'echo again']);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/bash could not be snapshotted \(the profile took longer than 0\.3 s\)/);
      await waitFor(() => processesMatching(marker).length === 0, 'the slow profile to be killed');
    } finally {
      const dirs = snapshots.directories;
      expect(dirs).toHaveLength(1);
      snapshots.dispose();
      for (const dir of dirs) expect(existsSync(dir)).toBe(false);
    }
  });

  it('rewrites only bash and zsh login shells', () => {
    expect(loginShellCommand(['bash', '-lc', 'ls', 'arg0', 'arg1'])).toEqual({ shell: 'bash', script: 'ls', rest: ['arg0', 'arg1'] });
    expect(loginShellCommand(['/usr/bin/zsh', '-lc', 'ls'])).toMatchObject({ shell: '/usr/bin/zsh' });
    for (const argv of [
      ['sh', '-lc', 'ls'],
      ['bash', '-c', 'ls'],
      ['bash', '-l', '-c', 'ls'],
      ['bash', '-lc'],
      ['ls', '-lc', 'x'],
    ])
      expect(loginShellCommand(argv)).toBeUndefined();
    const file = "/tmp/odd 'dir'/bash.sh";
    expect(snapshotArgv({ shell: 'bash', script: 'ls', rest: ['a0'] }, file)).toEqual(['bash', '-c', `. '/tmp/odd '\\''dir'\\''/bash.sh'\nls`, 'a0']);
    expect(snapshotArgv({ shell: 'zsh', script: "echo 'x'", rest: [] }, '/s.sh')).toEqual(['zsh', '-c', `. '/s.sh'\neval 'echo '\\''x'\\'''`]);
  });
});

describe('the variable lines of a snapshot', () => {
  const before = { PATH: '/usr/bin', KEEP: 'same', GONE: 'x', CI: 'policy' };
  const after = (entries: Record<string, string>) =>
    Object.entries(entries)
      .map(([name, value]) => `${name}=${value}`)
      .join('\0');

  it('exports what the profile changed, unsets what it removed, and keeps to the policy', () => {
    const allowed = profileVariableFilter(normalizeShellEnvironmentPolicy({ exclude: ['AWS_*'], set: { CI: 'policy' } }));
    const lines = variableLines(
      after({
        PATH: '/home/u/bin:/usr/bin',
        KEEP: 'same',
        NEW: "it's $(x)",
        CI: 'profile',
        OPENAI_API_KEY: 'sk',
        openai_base_url: 'u',
        GITHUB_TOKEN: 't',
        AWS_REGION: 'r',
        PWD: '/x',
        SHLVL: '2',
        'BASH_FUNC_f%%': '() { :; }',
      }),
      before,
      allowed,
    );
    expect(lines).toEqual([`export PATH='/home/u/bin:/usr/bin'`, `export NEW='it'\\''s $(x)'`, 'unset -v GONE']);
  });

  it('ignore_default_excludes lets *TOKEN* through, never OPENAI_*; include_only keeps only its names', () => {
    const open = profileVariableFilter(normalizeShellEnvironmentPolicy({ ignore_default_excludes: true }));
    expect(variableLines(after({ GITHUB_TOKEN: 't', OPENAI_API_KEY: 'k' }), {}, open)).toEqual([`export GITHUB_TOKEN='t'`]);
    const only = profileVariableFilter(normalizeShellEnvironmentPolicy({ include_only: ['PATH'] }));
    expect(variableLines(after({ PATH: '/p', OTHER: 'o' }), {}, only)).toEqual([`export PATH='/p'`]);
  });
});
