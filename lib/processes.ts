/**
 * What this machine says about a process, by pid: whether it exists, and its line in /proc.
 * Node built-ins only: the tools' launcher process uses it too.
 */
import { readFileSync } from 'node:fs';

/** Whether process `pid` exists (it may be another user's, or a zombie not yet waited for). */
export function processIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The fields of `/proc/<pid>/stat` after the command name, from the state on (Linux; null
 * elsewhere, or once the process is gone). The name is in parentheses and may contain spaces
 * and parentheses itself, so the fields start after the last `)`.
 */
export function procStat(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}
