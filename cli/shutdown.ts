import type { Runtime } from '../actors/runtime.js';
import { UsageError } from './flags.js';

/**
 * Shutting down within a bound. A process on NATS delivers what it still holds before it exits
 * (ops to the sessions, the sessions' last events), and with the broker away that could take
 * forever: every command that ends on its own (`app-server` at the end of stdin, `exec`, a
 * worker's drain) gives it TROUPE_SHUTDOWN_TIMEOUT_MS (default 10 s), then says on stderr what
 * was not delivered and exits non-zero.
 */

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** How much longer the process waits for itself to exit once it gave up (it is held by reconnect timers). */
const EXIT_GRACE_MS = 1_000;

/** TROUPE_SHUTDOWN_TIMEOUT_MS, in milliseconds, or the default. */
export function shutdownTimeoutMs(env: NodeJS.ProcessEnv): number {
  const raw = env.TROUPE_SHUTDOWN_TIMEOUT_MS;
  if (raw === undefined || raw.trim() === '') return DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`TROUPE_SHUTDOWN_TIMEOUT_MS must be a positive number of milliseconds, got "${raw}"`);
  }
  return value;
}

/** One deadline for a whole shutdown, however many steps it takes; the clock starts with the first step. */
export class ShutdownBound {
  #deadline: number | null = null;

  constructor(readonly timeoutMs: number) {}

  /** Start the clock now (if it has not started). */
  start(): void {
    this.#deadline ??= Date.now() + this.timeoutMs;
  }

  /** True when `work` settled before the deadline; false when the time ran out first (it goes on). */
  async within(work: Promise<unknown>): Promise<boolean> {
    this.start();
    const left = Math.max(0, (this.#deadline ?? 0) - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const settled = work.then(
      () => true,
      () => true,
    );
    const outcome = await Promise.race([settled, new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), left)))]);
    clearTimeout(timer);
    return outcome;
  }
}

/**
 * Close a runtime within `bound`. The code is 0 when it closed in time, or when nothing was
 * left undelivered; otherwise `stderr` names what the gateway did not deliver (ops still
 * waiting, sessions whose shutdown was not confirmed) and the code is 1. When it gives up, the
 * bus is closed without waiting for it; the caller may `exitSoon` (something may still hold
 * the process, such as a NATS client reconnecting to a broker that is gone).
 */
export async function closeRuntime(
  runtime: Runtime,
  bound: ShutdownBound,
  stderr: NodeJS.WritableStream = process.stderr,
): Promise<{ readonly code: number; readonly gaveUp: boolean }> {
  if (await bound.within(runtime.close())) return { code: 0, gaveUp: false };
  const { submissions, openSessions } = runtime.gateway.undelivered();
  const lines = [
    ...submissions.map((s) => `op ${s.op.type} (id ${s.id})${s.session_id ? ` for session ${s.session_id}` : ''} was not delivered`),
    ...openSessions.map((id) => `session ${id} did not confirm its shutdown: its last events may not have reached this client`),
  ];
  const lost = lines.length > 0;
  stderr.write(`troupe: gave up shutting down after ${bound.timeoutMs} ms (TROUPE_SHUTDOWN_TIMEOUT_MS)${lost ? '; not delivered:' : ''}\n`);
  for (const line of lines) stderr.write(`troupe:   ${line}\n`);
  void runtime.bus.close().catch(() => undefined);
  return { code: lost ? 1 : 0, gaveUp: true };
}

/**
 * The process exits by itself once nothing holds it; a NATS client reconnecting to a broker
 * that is gone does. This timer does not hold the process, and ends it if something else does.
 */
export function exitSoon(code: number): void {
  setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
}
