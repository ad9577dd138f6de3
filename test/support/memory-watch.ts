/**
 * Helpers for tests of a client that stops reading: a watch on a process's resident memory,
 * and floods of model output whose every piece names its place, so that a lost or moved
 * delta shows.
 */
import type { ResponseStep, ScriptItem } from '../../testing/fake-model-server.js';
import { residentBytes } from './processes.js';

/** What a server may grow by, above its baseline, while its client does not read. */
export const MEMORY_BOUND = 64 * 1024 * 1024;

/** The log line troupe writes (at debug level) when it starts holding back. */
export const HOLDING = 'the reader is behind';

export const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

/**
 * Samples a process's VmRSS every 10 ms and remembers the highest value; `check` throws as soon
 * as the growth over `baseline` passed MEMORY_BOUND, so a server without backpressure fails fast.
 */
export class MemoryWatch {
  peak = 0;
  readonly #timer: NodeJS.Timeout;
  #stopped = false;

  constructor(
    readonly pid: number,
    readonly baseline: number,
  ) {
    this.#timer = setInterval(() => this.sample(), 10);
  }

  sample(): void {
    const rss = residentBytes(this.pid);
    if (rss !== null && rss > this.peak) this.peak = rss;
  }

  get growth(): number {
    return this.peak - this.baseline;
  }

  check(): void {
    this.sample();
    if (this.growth > MEMORY_BOUND) {
      throw new Error(`the server grew by ${mib(this.growth)} MiB while its client did not read (bound ${mib(MEMORY_BOUND)} MiB)`);
    }
  }

  /** Stop sampling (the client reads again) and say what was seen. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    console.info(`peak growth while the client was stuck: ${mib(this.growth)} MiB above a baseline of ${mib(this.baseline)} MiB`);
  }
}

/** Poll `condition` until it holds (checking `watch` each time); fail naming `what` and `state()`. */
export async function until(condition: () => boolean, what: string, watch: MemoryWatch | null, state: () => string, timeoutMs = 25_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    watch?.check();
    if (condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${state()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * The flood: 768 messages of 32 KiB in 2 KiB deltas, 24 MiB of deltas and 24 MiB of messages,
 * in eight answers (an answer's completion event repeats all its text, and the SDK takes long
 * to read one huge line).
 */
export const MESSAGES = 768;
export const STREAMS = 8;
export const DELTA_CHARS = 2 * 1024;
export const DELTAS_PER_MESSAGE = 16;

/** Message `m` of a flood, made of deltas that each name their place. */
export function floodMessage(m: number, tag: string): string {
  let text = '';
  for (let d = 0; d < DELTAS_PER_MESSAGE; d++) text += `<${tag}${m}.${d}>`.padEnd(DELTA_CHARS, 'abcdefgh'[d % 8]);
  return text;
}

/** A model answer of `count` flood messages. */
export function flood(count: number, tag: string): { texts: string[]; step: ResponseStep } {
  const texts = Array.from({ length: count }, (_, m) => floodMessage(m, tag));
  return { texts, step: { kind: 'response', deltaChars: DELTA_CHARS, items: texts.map((text): ScriptItem => ({ type: 'message', text })) } };
}
