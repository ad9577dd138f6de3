import { constants } from 'node:os';

/**
 * Commands are spawned as leaders of their own process group (`detached: true`), so that
 * everything they start in the background can be killed with one signal to the group.
 * Killing only the leader would leave `cmd &` children running, still holding our pipes open.
 */
export function killProcessGroup(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    // ESRCH: the whole group is already gone, which is what we wanted.
    if (!isErrnoException(error) || error.code !== 'ESRCH') throw error;
  }
}

/** The shell convention for a process killed by a signal: 128 + the signal's number. */
export function exitCodeForSignal(signal: string): number {
  const number = (constants.signals as Record<string, number | undefined>)[signal];
  return 128 + (number ?? 0);
}

function isErrnoException(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}
