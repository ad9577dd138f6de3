import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real nats-server for tests: loopback only, a free port, JetStream on with a store in a
 * temporary directory. `stop` kills it and removes the directory; `restart` brings it back on
 * the same port with the same store, as a broker restart would.
 */
export interface NatsServerProcess {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** False after `crash` (or `stop`) until `revive`. */
  readonly running: boolean;
  /** Stop the server (SIGTERM, then SIGKILL) and start it again on the same port and store. */
  restart(): Promise<void>;
  /** Kill the server with SIGKILL, as a crash would, and wait until it is gone. */
  crash(): Promise<void>;
  /** Start a stopped or crashed server again on the same port and store. */
  revive(): Promise<void>;
  /** Stop the server and remove its store. */
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** JetStream on (default true). */
  readonly jetstream?: boolean;
  /** Extra arguments for nats-server. */
  readonly args?: readonly string[];
}

/** The nats-server binary: NATS_SERVER_BIN, then Debian's path, then the PATH. */
export function natsServerBin(): string {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN;
  return existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
}

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

class NatsServerStartError extends Error {
  override readonly name = 'NatsServerStartError';
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerProcess> {
  const storeDir = await mkdtemp(join(tmpdir(), 'troupe-nats-'));
  const port = await freePort();
  const args = ['-a', '127.0.0.1', '-p', String(port), ...(options.jetstream === false ? [] : ['-js', '-sd', storeDir]), ...(options.args ?? [])];
  let child = await launch(args);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return child.pid ?? -1;
    },
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    async restart() {
      await terminate(child);
      child = await launch(args);
    },
    async crash() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
    async revive() {
      if (child.exitCode === null && child.signalCode === null) throw new NatsServerStartError('nats-server is still running');
      child = await launch(args);
    },
    async stop() {
      await terminate(child);
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}

/** Starts nats-server and resolves once it says it is ready to take clients. */
function launch(args: readonly string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(natsServerBin(), [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new NatsServerStartError(`nats-server did not become ready:\n${output}`));
    }, 15_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new NatsServerStartError(`could not start nats-server: ${error.message}`, { cause: error }));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new NatsServerStartError(`nats-server exited with ${code}:\n${output}`));
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Server is ready')) {
        clearTimeout(timer);
        // Keep reading so the pipe never fills up and blocks the server.
        output = '';
        child.stderr?.removeAllListeners('data');
        child.stderr?.resume();
        resolve(child);
      }
    });
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
