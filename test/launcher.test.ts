/** The launcher process that starts the programs tools run (actors/tools/launcher). */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessLauncher, type LaunchedProcess } from '../actors/tools/launcher/launcher.js';
import { childrenOf, isAlive } from './support/processes.js';
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

  it('recognises a frozen environment by identity, and still tells frozen ones apart', async () => {
    const greeting = async (env: Readonly<Record<string, string>>) => {
      const launched = launcher.launch(['sh', '-c', 'echo "${GREETING-unset}"'], { cwd: dir, env });
      const text = collect(launched);
      await launched.outcome;
      return text.stdout.trim();
    };
    const a = Object.freeze({ PATH: process.env.PATH!, GREETING: 'a' });
    const b = Object.freeze({ PATH: process.env.PATH!, GREETING: 'b' });
    const seen = [await greeting(a), await greeting(a), await greeting(b), await greeting(a), await greeting(Object.freeze({ PATH: process.env.PATH! }))];
    expect(seen).toEqual(['a', 'a', 'b', 'a', 'unset']);
  });

  it.skipIf(process.platform !== 'linux')("runs without the host's credentials in its own environment", async () => {
    process.env.TROUPE_TEST_LAUNCHER_TOKEN = 'launcher-secret';
    const fresh = new ProcessLauncher();
    try {
      const launched = fresh.launch(['true'], { cwd: dir });
      await launched.outcome;
      const environ = await readFile(`/proc/${fresh.pid}/environ`, 'utf8');
      expect(environ).toContain('PATH=');
      expect(environ).not.toContain('launcher-secret');
      expect(environ).not.toContain('OPENAI_');
    } finally {
      fresh.close();
      delete process.env.TROUPE_TEST_LAUNCHER_TOKEN;
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

  it.runIf(process.platform === 'linux')("holds a terminal program's side of its terminal while it runs, and lets go once it has ended", async () => {
    /** The launcher's descriptors open on a terminal device. */
    const held = async (terminal: string) => {
      const fds = await readdir(`/proc/${launcher.pid}/fd`);
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${launcher.pid}/fd/${fd}`).catch(() => '')));
      return targets.filter((target) => target === terminal).length;
    };
    const terminalOf = async (launched: LaunchedProcess) => {
      const text = collect(launched);
      await waitFor(() => text.stdout.includes('\n'), 'the program to print its terminal');
      return text.stdout.split(/\r?\n/)[0]!;
    };

    // Ends by itself, with its own status.
    const plain = launcher.launch(['sh', '-c', 'tty; read line; exit 3'], { cwd: dir, stdio: 'tty' });
    const plainTerminal = await terminalOf(plain);
    expect(plainTerminal).toMatch(/^\/dev\/pts\/\d+$/);
    expect(await held(plainTerminal)).toBe(1);
    plain.write('go\n');
    expect(await plain.outcome).toEqual({ kind: 'exited', code: 3, signal: null });
    expect(await held(plainTerminal)).toBe(0);

    // Has closed its own stdin, stdout and stderr and is killed: nothing else ends the hold.
    const closed = launcher.launch(['sh', '-c', 'tty; exec 0<&- 1>&- 2>&-; sleep 300'], { cwd: dir, stdio: 'tty' });
    const closedTerminal = await terminalOf(closed);
    await waitFor(async () => (await readlink(`/proc/${closed.pid}/fd/1`).catch(() => null)) === null, 'the program to close its stdout');
    expect(await held(closedTerminal)).toBe(1);
    closed.kill();
    expect(await closed.outcome).toEqual({ kind: 'exited', code: 137, signal: null });
    expect(await held(closedTerminal)).toBe(0);
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

describe('the spare shell', () => {
  let dir: string;
  const launchers: ProcessLauncher[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'troupe-spare-'));
  });
  afterAll(async () => {
    for (const launcher of launchers) launcher.close();
    await rm(dir, { recursive: true, force: true });
  });

  function newLauncher(): ProcessLauncher {
    const launcher = new ProcessLauncher();
    launchers.push(launcher);
    return launcher;
  }

  /** The launcher's idle spare, once it has forked one. */
  async function spareOf(launcher: ProcessLauncher): Promise<number> {
    let spare: number | undefined;
    await waitFor(() => {
      spare = childrenOf(launcher.pid!).find((child) => child.command === '/bin/sh -s')?.pid;
      return spare !== undefined;
    }, 'the spare shell');
    return spare!;
  }

  async function runIn(launcher: ProcessLauncher, argv: string[], env: NodeJS.ProcessEnv) {
    const launched = launcher.launch(argv, { cwd: dir, env });
    const text = collect(launched);
    return { outcome: await launched.outcome, pid: launched.pid, ...text };
  }

  /** `argv` run twice by a new launcher: spawned (it has no spare yet), then by its spare. */
  async function spawnedThenSpare(argv: string[], env: NodeJS.ProcessEnv = process.env) {
    const launcher = newLauncher();
    const spawned = await runIn(launcher, argv, env);
    const spare = await spareOf(launcher);
    const fromSpare = await runIn(launcher, argv, env);
    expect(fromSpare.pid).toBe(spare);
    expect(spawned.pid).not.toBe(spare);
    return { spawned, fromSpare };
  }

  it('becomes the next program, which gets the same environment as a spawned one', async () => {
    const env = {
      PATH: process.env.PATH,
      // The shell would set PWD to its directory and SHLVL to 1, and add OLDPWD after its cd.
      PWD: '/stale/directory',
      SHLVL: '7',
      TRICKY: `it's "quoted", $HOME \`x\` *\nand a second line`,
    };
    const { spawned, fromSpare } = await spawnedThenSpare(['env'], env);
    expect(fromSpare.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    const lines = (text: string) =>
      text
        .split(/\n(?=[A-Za-z_]+=)/)
        .map((line) => line.trimEnd())
        .sort();
    expect(lines(fromSpare.stdout)).toEqual(lines(spawned.stdout));
    expect(lines(fromSpare.stdout)).toEqual(
      Object.entries(env)
        .map(([name, value]) => `${name}=${value}`)
        .sort(),
    );

    const bare = { PATH: process.env.PATH };
    const again = await spawnedThenSpare(['env'], bare);
    expect(again.fromSpare.stdout).toBe(`PATH=${process.env.PATH}\n`);
  });

  it('passes arguments through untouched, in the working directory, with stdin on /dev/null and signals as spawned', async () => {
    const args = ["it's", 'a b', '$HOME', '`id`', '*', '', '-n', 'line\nbreak', '\\', '"'];
    const printed = await spawnedThenSpare(['printf', '%s|', ...args]);
    expect(printed.fromSpare.stdout).toBe(`${args.join('|')}|`);
    expect(printed.fromSpare.stdout).toBe(printed.spawned.stdout);

    // Also the signal mask and ignored signals, which a shell could leave changed across exec.
    // Read with the shell's own `read`: while dash forks a command it blocks every signal, so a
    // forked `grep` could see that passing mask instead of the program's.
    const status = 'while read -r line; do case $line in SigBlk:*|SigIgn:*) echo "$line";; esac; done < /proc/$$/status';
    const where = await spawnedThenSpare(['sh', '-c', `pwd -P; readlink /proc/$$/fd/0; grep ^flags /proc/$$/fdinfo/0; ${status}; cat`]);
    expect(where.fromSpare.stdout).toBe(where.spawned.stdout);
    expect(where.fromSpare.stdout.split('\n').slice(0, 2)).toEqual([await realpath(dir), '/dev/null']);
  });

  it('serves a program whose environment differs from its own, which gets exactly its own', async () => {
    const launcher = newLauncher();
    // Two environments used in turn, as `shell` and `exec_command` do.
    const a = Object.freeze({ PATH: process.env.PATH!, ONLY_A: 'a', SHARED: 'from a', PWD: '/a' });
    const b = Object.freeze({ PATH: process.env.PATH!, ONLY_B: "it's b\nwith a second line", SHARED: 'from b', SHLVL: '3' });
    const lines = (text: string) =>
      text
        .split(/\n(?=[A-Za-z_]+=)/)
        .map((line) => line.trimEnd())
        .sort();
    const spawned = await runIn(newLauncher(), ['env'], b);
    expect(lines(spawned.stdout)).toEqual(
      Object.entries(b)
        .map(([name, value]) => `${name}=${value}`)
        .sort(),
    );
    // Until the launcher has found out that a spare started with `a` can serve `b`, `b` is spawned.
    let served: Awaited<ReturnType<typeof runIn>> | undefined;
    await waitFor(async () => {
      await runIn(launcher, ['true'], a);
      const spare = await spareOf(launcher);
      if (!(await readFile(`/proc/${spare}/environ`, 'utf8')).includes('ONLY_A=a\0')) return false;
      const run = await runIn(launcher, ['env'], b);
      if (run.pid === spare) served = run;
      return served !== undefined;
    }, 'a spare started with one environment to serve the other');
    expect(served?.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    expect(lines(served!.stdout)).toEqual(lines(spawned.stdout));
  });

  it('becomes a program that takes input too, whose stdin is then a pipe of the kind a spawn makes', async () => {
    const launcher = newLauncher();
    const script = 'readlink /proc/$$/fd/0 | cut -d: -f1; grep ^flags /proc/$$/fdinfo/0; [ -e /proc/$$/fd/3 ] && echo fd3 open; read a; echo "<$a>"';
    const inputOf = async () => {
      const launched = launcher.launch(['sh', '-c', script], { cwd: dir, env: process.env, stdio: 'pipe' });
      const text = collect(launched);
      launched.write('typed\n');
      return { outcome: await launched.outcome, pid: launched.pid, ...text };
    };
    // A new launcher has no spare yet: the first is spawned, the next one is the spare.
    const spawned = await inputOf();
    const spare = await spareOf(launcher);
    const fromSpare = await inputOf();
    expect(fromSpare.pid).toBe(spare);
    expect(spawned.pid).not.toBe(spare);
    for (const run of [fromSpare, spawned]) expect(run).toMatchObject({ outcome: { kind: 'exited', code: 0 }, stderr: '' });
    expect(fromSpare.stdout).toBe(spawned.stdout);
    expect(fromSpare.stdout).toMatch(/^socket\nflags:\s+\d+\n<typed>\n$/);
  });

  it('runs the program as the leader of its own process group and session', async () => {
    const { spawned, fromSpare } = await spawnedThenSpare(['cat', '/proc/self/stat']);
    for (const run of [spawned, fromSpare]) {
      const [pid, , , , pgrp, session] = run.stdout
        .replace(/\(.*\)/, 'name')
        .split(' ')
        .map(Number);
      expect([pgrp, session]).toEqual([pid, pid]);
      expect(pid).toBe(run.pid);
    }
  });

  it('answers a missing program, directory or variable name just as a spawn does', async () => {
    const launcher = newLauncher();
    await runIn(launcher, ['true'], process.env);
    const spare = await spareOf(launcher);
    expect(await launcher.launch(['no-such-program-anywhere'], { cwd: dir }).outcome).toMatchObject({ kind: 'not_started', code: 'ENOENT' });
    expect(await launcher.launch(['./no-such-script'], { cwd: dir }).outcome).toMatchObject({ kind: 'not_started', code: 'ENOENT' });
    expect(await launcher.launch(['true'], { cwd: path.join(dir, 'missing') }).outcome).toMatchObject({ kind: 'not_started', code: 'ENOENT' });
    // A name a shell cannot carry: the spare cannot pass it on, so the program is spawned.
    const odd = await runIn(launcher, ['env'], { PATH: process.env.PATH, 'odd.name-here': 'kept' });
    expect(odd.stdout).toContain('odd.name-here=kept\n');
    expect(odd.pid).not.toBe(spare);
    // The environment changed: the spare forked for the old one goes, and none can serve this one.
    await waitFor(() => !isAlive(spare), 'the stale spare to go');
    expect(childrenOf(launcher.pid!)).toEqual([]);
    // Back to an environment a shell can carry: the next idle moment forks a spare for it.
    await runIn(launcher, ['true'], process.env);
    const next = await spareOf(launcher);
    expect((await runIn(launcher, ['true'], process.env)).pid).toBe(next);
  });

  it('serves only an environment that a probe saw come through the shell intact', async () => {
    const launcher = newLauncher();
    // dash resets these three when it finds them in its environment, bash more.
    const special = { PATH: process.env.PATH!, IFS: 'x y', PPID: '123', OPTIND: '7' };
    const expected = Object.entries(special)
      .map(([name, value]) => `${name}=${value}`)
      .sort();
    const first = await runIn(launcher, ['env'], special);
    // Time for the probe to run and find the environment changed: no spare is forked for it.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(childrenOf(launcher.pid!)).toEqual([]);
    const second = await runIn(launcher, ['env'], special);
    for (const run of [first, second]) expect(run.stdout.trimEnd().split('\n').sort()).toEqual(expected);
    // Another environment is probed on its own, and served once it passes.
    await runIn(launcher, ['true'], process.env);
    const spare = await spareOf(launcher);
    expect((await runIn(launcher, ['true'], process.env)).pid).toBe(spare);
  });

  it('survives a spare killed from outside: the launcher lives on and the next program runs', async () => {
    const launcher = newLauncher();
    await runIn(launcher, ['true'], process.env);
    const first = launcher.pid;
    process.kill(await spareOf(launcher), 'SIGKILL');
    // Handed to the dead spare or spawned, depending on whether the launcher saw it die first.
    const racing = await runIn(launcher, ['echo', 'raced'], process.env);
    expect(racing.outcome.kind).toBe('exited');
    const next = await runIn(launcher, ['echo', 'back'], process.env);
    expect(next).toMatchObject({ outcome: { kind: 'exited', code: 0 }, stdout: 'back\n' });
    expect(launcher.pid).toBe(first);
  });

  it('is killed with the group of the program it became, and goes away with its launcher', async () => {
    const launcher = newLauncher();
    await runIn(launcher, ['true'], process.env);
    const spare = await spareOf(launcher);
    const launched = launcher.launch(['sleep', '300'], { cwd: dir });
    expect(launched.pid ?? (await waitFor(() => launched.pid !== undefined, 'the pid'), launched.pid)).toBe(spare);
    launched.kill();
    expect(await launched.outcome).toEqual({ kind: 'exited', code: null, signal: 'SIGKILL' });

    const idle = await spareOf(launcher);
    launcher.close();
    await waitFor(() => !isAlive(idle), 'the idle spare to exit with its launcher');
  });
});

describe('a launcher that cannot start', () => {
  it('fails its commands with the reason instead of leaving them waiting', async () => {
    // A launcher script that exits at once, quietly (the launcher's stderr is the host's).
    const dir = await mkdtemp(path.join(tmpdir(), 'troupe-launcher-broken-'));
    try {
      const script = path.join(dir, 'launcher.cjs');
      await writeFile(script, 'process.exit(1);\n');
      const broken = new ProcessLauncher(script);
      const launched = broken.launch(['true'], { cwd: tmpdir() });
      expect(await launched.outcome).toEqual({
        kind: 'not_started',
        code: null,
        message: 'the process launcher exited with code 1 before the program started',
      });
      expect(broken.pid).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the launcher and its host', () => {
  it('never keeps the host alive, and exits with it', async () => {
    const module = fileURLToPath(new URL('../dist/actors/tools/launcher/launcher.js', import.meta.url));
    const script = `
      const { processLauncher } = await import(${JSON.stringify(module)});
      const launcher = processLauncher();
      const launched = launcher.launch(['true'], { cwd: '/' });
      const outcome = await launched.outcome;
      // The launcher forks a spare shell once idle; it must not outlive the launcher either.
      const { readdirSync, readFileSync } = await import('node:fs');
      const spareShell = () => readdirSync('/proc').find((pid) => {
        try {
          const stat = readFileSync('/proc/' + pid + '/stat', 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === launcher.pid
            && readFileSync('/proc/' + pid + '/cmdline', 'utf8') === '/bin/sh\\0-s\\0';
        } catch {
          return false;
        }
      });
      let spare;
      while ((spare = spareShell()) === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
      console.log(JSON.stringify({ launcher: launcher.pid, spare: Number(spare), outcome }));
    `;
    // The host script ends after its one command; if the launcher held it, this would time out.
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 });
    const report = JSON.parse(stdout) as { launcher: number; spare: number; outcome: unknown };
    expect(report.outcome).toEqual({ kind: 'exited', code: 0, signal: null });
    await waitFor(() => !isAlive(report.launcher), 'the launcher to exit after its host');
    await waitFor(() => !isAlive(report.spare), 'the spare shell to exit with the launcher');
  });
});
