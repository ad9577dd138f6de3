/**
 * What the host and its launcher process say to each other over their IPC channel (JSON: the
 * launcher decodes output to text, which is what the tools want, and small JSON messages cost
 * less to send and read than the structured-clone format). Both ends are this package at the
 * same version, started together, so the types are the contract; nothing else speaks this
 * channel.
 */

export type OutputStream = 'stdout' | 'stderr';

/**
 * How a program's input and output are connected:
 * - `null`: stdin is /dev/null, stdout and stderr are two pipes (a command run to its end);
 * - `pipe`: the same with a pipe for stdin, fed by `stdin` requests (an exec session);
 * - `tty`: a pseudo-terminal for all three (an interactive exec session), made with node-pty,
 *   which the launcher loads on first use. Its output all comes as `stdout`.
 */
export type LaunchStdio = 'null' | 'pipe' | 'tty';

export type LauncherRequest =
  | {
      readonly type: 'spawn';
      readonly id: number;
      readonly file: string;
      readonly args: readonly string[];
      readonly cwd: string;
      /** The program's environment, by the number the host gave it (see `env`). */
      readonly envId: number;
      /**
       * The environment numbered `envId`, sent only when the launcher does not hold it: a host
       * uses a handful of environments over and over, and copying a few kilobytes of one
       * through both ends of the channel would be most of a request's cost. Both ends keep the
       * last MAX_ENVIRONMENTS sent and forget the oldest first, so the host knows what the
       * launcher holds.
       */
      readonly env?: Readonly<Record<string, string>>;
      /** Left out for `null`, the common case. */
      readonly stdio?: 'pipe' | 'tty';
    }
  /** Input for a program started with `pipe` or `tty`; dropped once the program has ended. */
  | { readonly type: 'stdin'; readonly id: number; readonly data: string };

export type LauncherReply =
  /** The launcher listens: requests sent from now on are served. */
  | { readonly type: 'ready' }
  | { readonly type: 'spawned'; readonly id: number; readonly pid: number }
  /** Output as UTF-8 text; a character split across reads is sent whole, with the later read. */
  | { readonly type: 'output'; readonly id: number; readonly stream: OutputStream; readonly text: string }
  /**
   * The program exited and its output is drained (or was given up on after the grace period).
   * On a terminal the status comes as the shell reports it: `code` is 128 + the signal's
   * number when a signal ended the program, and `signal` is null.
   */
  | { readonly type: 'exited'; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  /**
   * The program never ran. `code` is the errno name when there is one (ENOENT, EACCES, …), or
   * NO_PTY when a terminal was asked for and node-pty could not be loaded.
   */
  | { readonly type: 'not_started'; readonly id: number; readonly code: string | null; readonly message: string };

export const NO_PTY = 'NO_PTY';

export const MAX_ENVIRONMENTS = 16;
