/**
 * The launcher process: starts the programs a host's tools run, and relays their output and
 * exit over IPC, and their input the other way. It exists because starting a program forks the
 * process that asks for it, and forking costs in proportion to that process's memory: a host
 * holding many sessions blocks its event loop for milliseconds on every spawn, where this small
 * process takes about one.
 *
 * While idle it keeps a spare shell forked (spare-shell.ts), which becomes the next program
 * on pipes (a command, or an exec session without a terminal) with no fork on its path.
 *
 * It loads nothing but Node's own modules until a program asks for a terminal, when it loads
 * node-pty. It keeps no state beyond the running programs and the spare, and exits when its
 * host goes away. Plain `child_process` rather than execa: it only relays raw events, so a
 * promise API, buffering and error shaping would be overhead here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { procStat, processIsRunning } from '../../../lib/processes.js';
import { onExitDrained } from '../child-process.js';
import { MAX_ENVIRONMENTS, NO_PTY, type LauncherReply, type LauncherRequest, type OutputStream } from './messages.js';
import { SpareShell } from './spare-shell.js';

/** Output messages not yet written to the channel, per program, before its output is paused. */
const MAX_IN_FLIGHT = 64;
/**
 * After a program exits, a background child of it may still hold its pipes open: the rest of
 * the output is awaited this long, then no longer read. Shorter for exec sessions, whose
 * caller is waiting to report the exit.
 */
const DRAIN_GRACE_MS = 500;
const SESSION_DRAIN_MS = 300;
/** A terminal's last output can trail its exit notice: it is done once quiet this long (or after SESSION_DRAIN_MS). */
const TERMINAL_QUIET_MS = 40;

function send(reply: LauncherReply, sent?: () => void): void {
  if (!process.connected) return;
  process.send?.(reply, undefined, undefined, sent);
}

type Env = Readonly<Record<string, string>>;

/** The environments the host sent, by number, oldest first: one object each, which spares know them by. */
const environments = new Map<number, Env>();

/** The environment of the latest request: the one the next spare is forked with. */
let env: Env = {};

/**
 * Commands (programs with stdin on /dev/null) started and not yet settled: someone waits for
 * each. Exec sessions are not counted: one may run for hours, and the spare would wait as long.
 */
let running = 0;

let spare: SpareShell | null = null;

/** Where the input of each program started with `pipe` or `tty` goes, until it settles. */
const inputs = new Map<number, (data: string) => void>();

/**
 * Fork the next spare once no command runs: the fork stops this process's event loop meanwhile.
 * A /bin/sh that cannot start fails the environment's probe first, so no spare is tried.
 */
function replenishSpare(): void {
  if (running > 0 || (spare?.alive && spare.serves(env, replenishSpare))) return;
  spare?.discard();
  spare = SpareShell.start(env, replenishSpare);
}

type SpawnRequest = Extract<LauncherRequest, { type: 'spawn' }>;
type ProgramChild = ChildProcess & { readonly stdout: Readable; readonly stderr: Readable };

/**
 * A started program's bookkeeping: relaying its output with backpressure, and settling it once.
 * `command`: it counts as a running command (see `running`).
 */
function track(id: number, command: boolean, pause: () => void, resume: () => void) {
  if (command) running += 1;
  let settled = false;
  const settle = (reply: LauncherReply) => {
    if (settled) return;
    settled = true;
    if (command) running -= 1;
    inputs.delete(id);
    send(reply);
    setImmediate(replenishSpare);
  };
  // Relay output without letting a fast writer pile up messages the host has not taken yet.
  let inFlight = 0;
  const relay = (stream: OutputStream, text: string) => {
    if (text === '') return;
    inFlight += 1;
    if (inFlight >= MAX_IN_FLIGHT) pause();
    send({ type: 'output', id, stream, text }, () => {
      inFlight -= 1;
      if (inFlight === MAX_IN_FLIGHT / 2) resume();
    });
  };
  return { settle, relay };
}

function run(request: SpawnRequest): void {
  if (request.env) {
    environments.set(request.envId, request.env);
    if (environments.size > MAX_ENVIRONMENTS) environments.delete(environments.keys().next().value!);
  }
  const named = environments.get(request.envId);
  if (named === undefined) {
    send({ type: 'not_started', id: request.id, code: null, message: `the process launcher does not hold environment ${request.envId}` });
    return;
  }
  env = named;
  if (request.stdio === 'tty') {
    runOnTerminal(request);
    return;
  }
  const { id } = request;
  const handedOff = spare?.handOff(request.file, request.args, request.cwd, env, request.stdio ?? 'null', replenishSpare) ?? null;
  let child: ProgramChild;
  let stdin: Writable | null;
  if (handedOff) {
    ({ child, stdin } = handedOff);
    spare = null;
    send({ type: 'spawned', id, pid: child.pid! });
  } else {
    try {
      child = spawn(request.file, [...request.args], {
        cwd: request.cwd,
        env,
        // Leader of its own process group, so the host can kill everything it starts at once.
        detached: true,
        stdio: [request.stdio === 'pipe' ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      }) as ProgramChild;
    } catch (error) {
      send({ type: 'not_started', id, code: errnoCode(error), message: (error as Error).message });
      return;
    }
    child.once('spawn', () => send({ type: 'spawned', id, pid: child.pid! }));
    stdin = child.stdin;
  }
  const { settle, relay } = track(
    id,
    request.stdio === undefined,
    () => {
      child.stdout.pause();
      child.stderr.pause();
    },
    () => {
      child.stdout.resume();
      child.stderr.resume();
    },
  );
  child.once('error', (error) => {
    // After a successful spawn an 'error' is a failed kill or similar: the exit still comes.
    if (child.pid === undefined) settle({ type: 'not_started', id, code: errnoCode(error), message: error.message });
  });
  if (stdin) {
    const input = stdin;
    // Writing to a program that already ended is not an error worth dying for.
    input.on('error', () => undefined);
    inputs.set(id, (data) => {
      if (input.writable) input.write(data);
    });
  }
  const decode = (stream: OutputStream, pipe: Readable) => {
    // One decoder per stream, so a character split across two reads is never garbled.
    const decoder = new StringDecoder('utf8');
    pipe.on('data', (chunk: Buffer) => relay(stream, decoder.write(chunk)));
    pipe.once('end', () => relay(stream, decoder.end()));
  };
  decode('stdout', child.stdout);
  decode('stderr', child.stderr);

  const grace = request.stdio === 'pipe' ? SESSION_DRAIN_MS : DRAIN_GRACE_MS;
  onExitDrained(child, grace, (code, signal) => settle({ type: 'exited', id, code, signal }));
}

type PtyModule = typeof import('node-pty');

/** node-pty once loaded, or why it cannot be. Loaded on the first terminal only. */
let ptyModule: PtyModule | Error | undefined;

function loadPty(): PtyModule | Error {
  if (ptyModule === undefined) {
    try {
      ptyModule = createRequire(import.meta.url)('node-pty') as PtyModule;
    } catch (error) {
      ptyModule = error instanceof Error ? error : new Error(String(error));
    }
  }
  return ptyModule;
}

function runOnTerminal(request: SpawnRequest): void {
  const { id } = request;
  const pty = loadPty();
  if (pty instanceof Error) {
    const message = `tty sessions are unavailable: node-pty could not be loaded (${pty.message}); use tty: false`;
    send({ type: 'not_started', id, code: NO_PTY, message });
    return;
  }
  let program: ReturnType<PtyModule['spawn']>;
  try {
    // node-pty makes the program a session leader with the terminal as its controlling one.
    program = pty.spawn(request.file, [...request.args], { name: 'xterm-256color', cols: 120, rows: 40, cwd: request.cwd, env });
  } catch (error) {
    send({ type: 'not_started', id, code: errnoCode(error), message: (error as Error).message });
    return;
  }
  holdTerminal(program);
  send({ type: 'spawned', id, pid: program.pid });
  const { settle, relay } = track(
    id,
    false,
    () => program.pause(),
    () => program.resume(),
  );
  let lastData = Date.now();
  program.onData((chunk) => {
    lastData = Date.now();
    relay('stdout', chunk);
  });
  inputs.set(id, (data) => {
    try {
      program.write(data);
    } catch {
      // The program ended and its terminal is closing: the input has no one to read it.
    }
  });
  program.onExit(({ exitCode, signal }) => {
    releaseTerminal(program.pid);
    const code = signal !== undefined && signal !== 0 ? 128 + signal : exitCode;
    const exited = Date.now();
    const done = () => {
      const now = Date.now();
      if (now - lastData >= TERMINAL_QUIET_MS || now - exited >= SESSION_DRAIN_MS) settle({ type: 'exited', id, code, signal: null });
      else setTimeout(done, TERMINAL_QUIET_MS);
    };
    setTimeout(done, TERMINAL_QUIET_MS);
  });
}

/**
 * A descriptor of each running terminal program's own side of its terminal, by the program's
 * pid, held until the program has exited. node-pty closes its side of a terminal as soon as a
 * read finds nothing left open on the program's side, and that close hangs the terminal up,
 * which sends SIGHUP to the program. A program that closes its stdin, stdout and stderr itself
 * just before it exits (GNU coreutils do, to report a failed write) would be killed by that
 * SIGHUP in the moment between the two, and reported as ended by it (129) instead of with its
 * own status. While the launcher holds this descriptor, the read finds the terminal still
 * open; once the program has exited it is closed, and node-pty sees the end as before.
 */
const heldTerminals = new Map<number, number>();

function holdTerminal(program: ReturnType<PtyModule['spawn']>): void {
  // A Unix terminal's getter, not in node-pty's typings: the path of the program's side.
  const ptsName = (program as { readonly ptsName?: unknown }).ptsName;
  if (typeof ptsName !== 'string') return;
  try {
    heldTerminals.set(program.pid, openSync(ptsName, constants.O_RDWR | constants.O_NOCTTY));
  } catch {
    // Nothing is held: the program's exit status may then be the hangup's, as without this.
  }
}

function releaseTerminal(pid: number): void {
  const fd = heldTerminals.get(pid);
  if (fd === undefined) return;
  heldTerminals.delete(pid);
  closeSync(fd);
}

/**
 * Whether a program has ended: it is a zombie that node-pty's thread has not yet waited for
 * (read from /proc where there is one), or it is gone.
 */
function ended(pid: number): boolean {
  const fields = procStat(pid);
  return fields !== null ? fields[0] === 'Z' || fields[0] === 'X' : !processIsRunning(pid);
}

// A child ended (or stopped): release the terminals of the programs that are gone. node-pty
// reports an exit only once its side of the terminal has closed, so waiting for its report to
// release them would hold every exit back by its fallback of closing after 200 ms.
process.on('SIGCHLD', () => {
  for (const pid of heldTerminals.keys()) if (ended(pid)) releaseTerminal(pid);
});

function errnoCode(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : null;
}

process.on('message', (request: LauncherRequest) => {
  switch (request.type) {
    case 'spawn':
      run(request);
      return;
    case 'stdin':
      inputs.get(request.id)?.(request.data);
      return;
  }
});
// The host is gone: nobody is left to read the output. The programs themselves keep running,
// exactly as they would had the host spawned them directly and died (those on a terminal get
// the hangup of a terminal that closed).
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
