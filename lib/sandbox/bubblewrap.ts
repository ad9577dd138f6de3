/**
 * Linux backend: bubblewrap (`bwrap`). The command sees the host file system read-only, with
 * the writable roots bound read-write on top and protected paths (`.git`, …) bound read-only
 * again on top of those. It gets fresh /dev (only the harmless nodes: a host /dev would expose
 * block devices to a root user) and /proc, its own PID namespace (so /proc shows no host
 * process whose /proc/<pid>/root could lead out) and, without network access, its own empty
 * network namespace: not even the host's loopback is reachable. Inside, `prlimit` sets the
 * command's limits (limits.ts) before it runs.
 */
import { withRlimits } from './limits.js';
import { DEFAULT_MAX_FILE_SIZE_BYTES, DEFAULT_MAX_PROCESSES, type SandboxSpec } from './spec.js';

export interface BubblewrapOptions {
  /**
   * Start the command in a new terminal session so it cannot push input into our terminal
   * (TIOCSTI). Off for PTY sessions, whose programs need the PTY as controlling terminal.
   */
  readonly newSession: boolean;
  /** Running as root: capabilities must be dropped explicitly, or the command could remount. */
  readonly isRoot: boolean;
  /** Where `prlimit` is (util-linux), which sets the limits inside the sandbox. */
  readonly prlimit: string;
}

export function bubblewrapArgs(spec: SandboxSpec, command: readonly string[], options: BubblewrapOptions): string[] {
  const args = ['--die-with-parent', '--unshare-pid', '--unshare-ipc'];
  if (options.newSession) args.push('--new-session');
  if (options.isRoot) args.push('--cap-drop', 'ALL');
  if (!spec.networkAccess) args.push('--unshare-net');
  args.push('--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc');
  for (const root of spec.writableRoots) args.push('--bind', root, root);
  // `-try`: a path gone since the spec was made (another session's shell snapshot, removed as
  // that session closed) has nothing left to protect, and must not fail the command.
  for (const p of spec.readOnlyPaths) args.push('--ro-bind-try', p, p);
  args.push('--chdir', spec.cwd, '--', ...withRlimits(options.prlimit, spec.limits, command));
  return args;
}

/** A minimal sandbox, as strict as any we build, to learn whether bwrap works on this host. */
export function bubblewrapProbeArgs(isRoot: boolean, prlimit: string): string[] {
  const spec: SandboxSpec = {
    mode: 'read-only',
    writableRoots: [],
    readOnlyPaths: [],
    protectedSpots: [],
    networkAccess: false,
    cwd: '/',
    limits: { maxProcesses: DEFAULT_MAX_PROCESSES, maxFileSizeBytes: DEFAULT_MAX_FILE_SIZE_BYTES },
  };
  return bubblewrapArgs(spec, ['true'], { newSession: true, isRoot, prlimit });
}
