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

let bootId: string | null | undefined;

/**
 * Which start of a process `pid` is: this boot's id and the process's start time (clock ticks
 * after boot, field 22 of its stat line), so a pid the kernel has given to another process
 * since, or after a reboot, does not match. Null where there is no /proc, or no such process.
 */
export function processStart(pid: number | 'self'): string | null {
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    } catch {
      bootId = null;
    }
  }
  const started = procStat(pid)?.[19];
  return bootId !== null && started !== undefined ? `${bootId}/${started}` : null;
}
