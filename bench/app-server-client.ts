/**
 * A lean client of `troupe app-server` over stdio for the benchmarks: submissions go out as
 * JSON lines, and each waits for the first event answering it that passes its test. Unlike the
 * tests' harness it keeps no event list, so thousands of turns cost it nothing per lookup.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export interface WireEvent {
  readonly id: string | null;
  readonly session_id: string | null;
  readonly seq: number | null;
  readonly msg: { readonly type: string; readonly [key: string]: unknown };
}

export type AppServerChild = ChildProcessByStdio<Writable, Readable, null>;

export interface AppServerClient {
  /** Sends `op` and resolves with the first event for it that `until` accepts. */
  submit(op: Record<string, unknown>, sessionId: string | undefined, until: (event: WireEvent) => boolean): Promise<WireEvent>;
}

/** Reads `child`'s stdout (every event goes to `onEvent` first) and writes its stdin. */
export function appServerClient(child: AppServerChild, onEvent: (event: WireEvent) => void = () => undefined): AppServerClient {
  const waiting = new Map<string, (event: WireEvent) => void>();
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    const event = JSON.parse(line) as WireEvent;
    onEvent(event);
    if (event.id !== null) waiting.get(event.id)?.(event);
  });
  let counter = 0;
  return {
    submit(op, sessionId, until) {
      const id = `b${++counter}`;
      return new Promise((resolve) => {
        waiting.set(id, (event) => {
          if (!until(event)) return;
          waiting.delete(id);
          resolve(event);
        });
        child.stdin.write(`${JSON.stringify({ id, ...(sessionId ? { session_id: sessionId } : {}), op })}\n`);
      });
    },
  };
}
