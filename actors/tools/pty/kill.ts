/**
 * Ending everything an exec session started. Its first process leads a new session (node-pty
 * and `detached` both call setsid), so the session id names the whole tree even when a shell
 * with job control moved some jobs into process groups of their own: we signal the group,
 * then every process of the session found in /proc.
 */
import { readdirSync } from 'node:fs';
import { procStat } from '../../../lib/processes.js';
import { killProcessGroup } from '../process-group.js';

export function killSession(sid: number): void {
  killProcessGroup(sid);
  for (const pid of sessionMembers(sid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone in the meantime.
    }
  }
}

/** Pids whose session id is `sid` (Linux; elsewhere the group kill has to do). */
export function sessionMembers(sid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    // Null: the process ended while we looked.
    const fields = procStat(entry);
    if (fields !== null && Number(fields[3]) === sid) out.push(Number(entry));
  }
  return out;
}
