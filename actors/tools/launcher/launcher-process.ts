/**
 * The launcher process: starts the programs a host's tools run, and relays their output and
 * exit over IPC. It exists because starting a program forks the process that asks for it, and
 * forking costs in proportion to that process's memory: a host holding many sessions blocks
 * its event loop for milliseconds on every spawn, where this small process takes about one.
 *
 * While idle it keeps a spare shell forked (spare-shell.ts), which becomes the next program
 * without a fork on that program's path.
 *
 * It loads nothing but Node's own modules, keeps no state beyond the running programs and the
 * spare, and exits when its host goes away. Plain `child_process` rather than execa: it only
 * relays raw events, so a promise API, buffering and error shaping would be overhead here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { onExitDrained } from '../child-process.js';
import { DRAIN_GRACE_MS, type LauncherReply, type LauncherRequest, type OutputStream } from './messages.js';
import { SpareShell } from './spare-shell.js';

/** Output messages not yet written to the channel, per program, before its pipes are paused. */
const MAX_IN_FLIGHT = 64;

function send(reply: LauncherReply, sent?: () => void): void {
  if (!process.connected) return;
  process.send?.(reply, undefined, undefined, sent);
}

/** The environment of the latest request that carried one (requests omit an unchanged one). */
let env: Readonly<Record<string, string>> = {};

/** Programs started and not yet settled. */
let running = 0;

let spare: SpareShell | null = null;

/**
 * Fork the next spare, once nothing runs: the fork stops this process's event loop meanwhile.
 * A /bin/sh that cannot start fails the environment's probe first, so no spare is tried.
 */
function replenishSpare(): void {
  if (running > 0 || (spare?.alive && spare.serves(env))) return;
  spare?.discard();
  spare = SpareShell.start(env, replenishSpare);
}

type ProgramChild = ChildProcess & { readonly stdout: Readable; readonly stderr: Readable };

function run(request: LauncherRequest): void {
  const { id } = request;
  if (request.env) env = request.env;
  const handedOff = spare?.handOff(request.file, request.args, request.cwd, env) ?? null;
  let child: ProgramChild;
  if (handedOff) {
    child = handedOff;
    spare = null;
    send({ type: 'spawned', id, pid: child.pid! });
  } else {
    try {
      child = spawn(request.file, [...request.args], {
        cwd: request.cwd,
        env,
        // Leader of its own process group, so the host can kill everything it starts at once.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      send({ type: 'not_started', id, code: errnoCode(error), message: (error as Error).message });
      return;
    }
    child.once('spawn', () => send({ type: 'spawned', id, pid: child.pid! }));
  }
  running += 1;

  let settled = false;
  const settle = (reply: LauncherReply) => {
    if (settled) return;
    settled = true;
    running -= 1;
    send(reply);
    setImmediate(replenishSpare);
  };
  child.once('error', (error) => {
    // After a successful spawn an 'error' is a failed kill or similar: the exit still comes.
    if (child.pid === undefined) settle({ type: 'not_started', id, code: errnoCode(error), message: error.message });
  });

  // Relay output without letting a fast writer pile up messages the host has not taken yet.
  let inFlight = 0;
  const relayText = (stream: OutputStream, text: string) => {
    if (text === '') return;
    inFlight += 1;
    if (inFlight >= MAX_IN_FLIGHT) {
      child.stdout.pause();
      child.stderr.pause();
    }
    send({ type: 'output', id, stream, text }, () => {
      inFlight -= 1;
      if (inFlight === MAX_IN_FLIGHT / 2) {
        child.stdout.resume();
        child.stderr.resume();
      }
    });
  };
  const relay = (stream: OutputStream, pipe: Readable) => {
    // One decoder per stream, so a character split across two reads is never garbled.
    const decoder = new StringDecoder('utf8');
    pipe.on('data', (chunk: Buffer) => relayText(stream, decoder.write(chunk)));
    pipe.once('end', () => relayText(stream, decoder.end()));
  };
  relay('stdout', child.stdout);
  relay('stderr', child.stderr);

  onExitDrained(child, DRAIN_GRACE_MS, (code, signal) => settle({ type: 'exited', id, code, signal }));
}

function errnoCode(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : null;
}

process.on('message', (request: LauncherRequest) => {
  if (request.type === 'spawn') run(request);
});
// The host is gone: nobody is left to read the output. The programs themselves keep running,
// exactly as they would had the host spawned them directly and died.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
