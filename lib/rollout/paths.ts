import { homedir } from 'node:os';
import { join } from 'node:path';
import { RolloutError } from './errors.js';

/** Where troupe keeps its state: `TROUPE_HOME`, else `~/.troupe`. */
export function troupeHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.TROUPE_HOME;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.troupe');
}

export function sessionsDir(home: string): string {
  return join(home, 'sessions');
}

/**
 * `2026-11-22T02-04-25`: UTC to the second, with dashes instead of colons so the name is a
 * valid filename on every platform. Always 19 characters, which makes file names parseable
 * even though session ids themselves contain dashes.
 */
export function rolloutTimestamp(createdAt: Date): string {
  if (Number.isNaN(createdAt.getTime())) throw new RolloutError('rollout creation time is not a valid date');
  return createdAt.toISOString().slice(0, 19).replaceAll(':', '-');
}

/** `<home>/sessions/YYYY/MM/DD/rollout-<timestamp>-<session_id>.jsonl` (PROTOCOL.md §8). */
export function rolloutPath(home: string, sessionId: string, createdAt: Date): string {
  assertFileSafeId(sessionId);
  const stamp = rolloutTimestamp(createdAt);
  const [yyyy, mm, dd] = [stamp.slice(0, 4), stamp.slice(5, 7), stamp.slice(8, 10)];
  return join(sessionsDir(home), yyyy, mm, dd, `rollout-${stamp}-${sessionId}.jsonl`);
}

const FILE_NAME = /^rollout-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})-(.+)\.jsonl$/;

/** The parts of a rollout file name, or null when `name` is not one. */
export function parseRolloutFileName(name: string): { timestamp: string; sessionId: string } | null {
  const match = FILE_NAME.exec(name);
  if (!match?.[1] || !match[2]) return null;
  return { timestamp: match[1], sessionId: match[2] };
}

/** Session ids end up in file names, and may come from a client: never let one escape its directory. */
export function isFileSafeId(sessionId: string): boolean {
  return sessionId !== '' && sessionId !== '.' && sessionId !== '..' && !/[/\\\0]/.test(sessionId);
}

function assertFileSafeId(sessionId: string): void {
  if (!isFileSafeId(sessionId)) {
    throw new RolloutError(`session id ${JSON.stringify(sessionId)} cannot be used in a file name`);
  }
}
