/**
 * Small helpers for programs started with node:child_process. Node built-ins only: the launcher
 * process loads this too, and it must stay small.
 */
import type { ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';

/** An environment as spawn wants it: without the keys whose value is undefined. */
export function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  return out;
}

/**
 * Calls `done` once `child` has exited and its pipes are closed. A background child of the
 * program may keep them open forever, so after `graceMs` they are destroyed instead.
 */
export function onExitDrained(child: ChildProcess, graceMs: number, done: (code: number | null, signal: NodeJS.Signals | null) => void): void {
  child.once('exit', (code, signal) => {
    const grace = setTimeout(() => {
      for (const pipe of child.stdio) pipe?.destroy();
      done(code, signal);
    }, graceMs);
    child.once('close', () => {
      clearTimeout(grace);
      done(code, signal);
    });
  });
}

/**
 * Whether `dir` can be a working directory (spawn reports a missing one as ENOENT, like a
 * missing program). A sync stat: an async one costs a trip through the thread pool, and a
 * host checks the cwd of every session it starts.
 */
export function isDirectory(dir: string): boolean {
  try {
    return statSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}
