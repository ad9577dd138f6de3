/** The launcher process that starts the programs tools run (actors/tools/launcher). */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessLauncher, type LaunchedProcess } from '../actors/tools/launcher/launcher.js';
import { isAlive } from './support/processes.js';
import { waitFor } from './support/wait.js';

const run = promisify(execFile);

function collect(launched: LaunchedProcess): { stdout: string; stderr: string } {
  const text = { stdout: '', stderr: '' };
  launched.onOutput((stream, chunk) => {
    text[stream] += chunk;
  });
  return text;
}

describe('ProcessLauncher', () => {
  let dir: string;
  let launcher: ProcessLauncher;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'troupe-launcher-'));
    launcher = new ProcessLauncher();
  });
  afterAll(async () => {
    launcher.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a program in its cwd and environment and relays both streams and the exit code', async () => {
    const launched = launcher.launch(['sh', '-c', 'pwd; echo "$GREETING"; echo oops >&2; exit 7'], { cwd: dir, env: { ...process.env, GREETING: 'hello' } });
    const text = collect(launched);
    expect(await launched.outcome).toEqual({ kind: 'exited', code: 7, signal: null });
    expect(text).toEqual({ stdout: `${dir}\nhello\n`, stderr: 'oops\n' });
    expect(launched.pid).toBeGreaterThan(0);
    expect(launcher.pid).not.toBe(process.pid);
  });

  it('gives each program the environment it was launched with, across launches and a new launcher', async () => {
    const greeting = async (through: ProcessLauncher, env: NodeJS.ProcessEnv) => {
      const launched = through.launch(['sh', '-c', 'echo "${GREETING-unset}"'], { cwd: dir, env });
      const text = collect(launched);
      await launched.outcome;
      return text.stdout.trim();
    };
    const hello = { ...process.env, GREETING: 'hello' };
    const other = new ProcessLauncher();
    try {
      const seen = [
        await greeting(other, hello),
        await greeting(other, { ...hello }),
        await greeting(other, { ...process.env, GREETING: 'bye' }),
        await greeting(other, process.env),
        await greeting(other, hello),
      ];
      other.close();
      await waitFor(() => other.pid === undefined);
      seen.push(await greeting(other, hello));
      expect(seen).toEqual(['hello', 'hello', 'bye', 'unset', 'hello', 'hello']);
    } finally {
      other.close();
    }
  });

  it('relays a character split across two writes whole, and a cut one at the end as U+FFFD', async () => {
    const launched = launcher.launch(['sh', '-c', "printf 'a\\342\\202'; sleep 0.1; printf '\\254b\\342'"], { cwd: dir });
    const chunks: string[] = [];
    launched.onOutput((_stream, text) => chunks.push(text));
    expect(await launched.outcome).toMatchObject({ kind: 'exited', code: 0 });
    expect(chunks.join('')).toBe('a€b\uFFFD');
    expect(chunks.every((chunk) => !chunk.includes('\uFFFD') || chunk === '\uFFFD')).toBe(true);
  });

  it('relays large output completely and in order', async () => {
    const launched = launcher.launch(['sh', '-c', 'seq 1 200000'], { cwd: dir });
    const text = collect(launched);
    expect(await launched.outcome).toMatchObject({ kind: 'exited', code: 0 });
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(200_000);
    expect(lines[0]).toBe('1');
    expect(lines.at(-1)).toBe('200000');
  });

  it('says why a program did not start', async () => {
    expect(await launcher.launch(['no-such-program-anywhere'], { cwd: dir }).outcome).toMatchObject({ kind: 'not_started', code: 'ENOENT' });
    expect(await launcher.launch(['true'], { cwd: path.join(dir, 'missing') }).outcome).toMatchObject({ kind: 'not_started', code: 'ENOENT' });
  });

  it('kills the whole process group, also when asked before the program has started', async () => {
    const launched = launcher.launch(['sh', '-c', 'sleep 300 & echo $!; wait'], { cwd: dir });
    const text = collect(launched);
    await waitFor(() => text.stdout.endsWith('\n'), 'the background pid');
    const background = Number(text.stdout.trim());
    expect(isAlive(background)).toBe(true);
    launched.kill();
    expect(await launched.outcome).toEqual({ kind: 'exited', code: null, signal: 'SIGKILL' });
    await waitFor(() => !isAlive(background), 'the background sleep to die');

    const early = launcher.launch(['sleep', '300'], { cwd: dir });
    early.kill();
    expect(await early.outcome).toEqual({ kind: 'exited', code: null, signal: 'SIGKILL' });
  });

  it('stops waiting for pipes a background child keeps open', async () => {
    const launched = launcher.launch(['sh', '-c', 'sleep 300 & echo $!'], { cwd: dir });
    const text = collect(launched);
    expect(await launched.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    const background = Number(text.stdout.trim());
    try {
      expect(isAlive(background)).toBe(true);
    } finally {
      process.kill(background, 'SIGKILL');
    }
  });

  it('reports programs as lost when the launcher dies, kills them, and starts a new launcher', async () => {
    const launched = launcher.launch(['sleep', '300'], { cwd: dir });
    await waitFor(() => launched.pid !== undefined, 'the program to start');
    const first = launcher.pid!;
    process.kill(first, 'SIGKILL');
    const outcome = await launched.outcome;
    expect(outcome).toMatchObject({ kind: 'lost', message: expect.stringContaining('SIGKILL') });
    await waitFor(() => !isAlive(launched.pid!), 'the orphaned program to be killed');

    const again = launcher.launch(['echo', 'back'], { cwd: dir });
    const text = collect(again);
    expect(await again.outcome).toMatchObject({ kind: 'exited', code: 0 });
    expect(text.stdout).toBe('back\n');
    expect(launcher.pid).not.toBe(first);
  });
});

describe('a launcher that cannot start', () => {
  it('fails its commands with the reason instead of leaving them waiting', async () => {
    const broken = new ProcessLauncher(path.join(tmpdir(), 'no-such-launcher-script.js'));
    const launched = broken.launch(['true'], { cwd: tmpdir() });
    expect(await launched.outcome).toEqual({ kind: 'not_started', code: null, message: 'the process launcher exited with code 1 before the program started' });
    expect(broken.pid).toBeUndefined();
  });
});

describe('the launcher and its host', () => {
  it('never keeps the host alive, and exits with it', async () => {
    const module = fileURLToPath(new URL('../dist/actors/tools/launcher/launcher.js', import.meta.url));
    const script = `
      const { processLauncher } = await import(${JSON.stringify(module)});
      const launcher = processLauncher();
      const launched = launcher.launch(['true'], { cwd: '/' });
      console.log(JSON.stringify({ launcher: launcher.pid, outcome: await launched.outcome }));
    `;
    // The host script ends after its one command; if the launcher held it, this would time out.
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 });
    const report = JSON.parse(stdout) as { launcher: number; outcome: unknown };
    expect(report.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    await waitFor(() => !isAlive(report.launcher), 'the launcher to exit after its host');
  });
});
