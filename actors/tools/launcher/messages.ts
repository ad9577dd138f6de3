/**
 * What the host and its launcher process say to each other over their IPC channel (JSON: the
 * launcher decodes output to text, which is what the tools want, and small JSON messages cost
 * less to send and read than the structured-clone format). Both ends are this package at the
 * same version, started together, so the types are the contract; nothing else speaks this
 * channel.
 */

export type OutputStream = 'stdout' | 'stderr';

export type LauncherRequest = {
  readonly type: 'spawn';
  readonly id: number;
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /**
   * The program's environment; left out when it is the same as the previous request's, as it
   * nearly always is. Copying a few kilobytes of environment through both ends of the channel
   * would be most of a request's cost.
   */
  readonly env?: Readonly<Record<string, string>>;
};

export type LauncherReply =
  /** The launcher listens: requests sent from now on are served. */
  | { readonly type: 'ready' }
  | { readonly type: 'spawned'; readonly id: number; readonly pid: number }
  /** Output as UTF-8 text; a character split across reads is sent whole, with the later read. */
  | { readonly type: 'output'; readonly id: number; readonly stream: OutputStream; readonly text: string }
  /** The program exited and its pipes are drained (or were given up on after the grace period). */
  | { readonly type: 'exited'; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  /** The program never ran. `code` is the errno name when there is one (ENOENT, EACCES, …). */
  | { readonly type: 'not_started'; readonly id: number; readonly code: string | null; readonly message: string };

/**
 * After a program exits, a background child of it may still hold the pipes open. The launcher
 * waits this long for the rest of the output, then stops reading.
 */
export const DRAIN_GRACE_MS = 500;
