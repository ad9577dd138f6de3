/**
 * Linux backend: bubblewrap (`bwrap`). The command sees the host file system read-only, with
 * the writable roots bound read-write on top and protected paths (`.git`, …) bound read-only
 * again on top of those. It gets fresh /dev (only the harmless nodes: a host /dev would expose
 * block devices to a root user) and /proc, its own PID namespace (so /proc shows no host
 * process whose /proc/<pid>/root could lead out) and, without network access, its own empty
 * network namespace: not even the host's loopback is reachable.
 */
import type { SandboxSpec } from './spec.js';

export interface BubblewrapOptions {
  /**
   * Start the command in a new terminal session so it cannot push input into our terminal
   * (TIOCSTI). Off for PTY sessions, whose programs need the PTY as controlling terminal.
   */
  readonly newSession: boolean;
  /** Running as root: capabilities must be dropped explicitly, or the command could remount. */
  readonly isRoot: boolean;
}

export function bubblewrapArgs(spec: SandboxSpec, command: readonly string[], options: BubblewrapOptions): string[] {
  const args = ['--die-with-parent', '--unshare-pid', '--unshare-ipc'];
  if (options.newSession) args.push('--new-session');
  if (options.isRoot) args.push('--cap-drop', 'ALL');
  if (!spec.networkAccess) args.push('--unshare-net');
  args.push('--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc');
  for (const root of spec.writableRoots) args.push('--bind', root, root);
  for (const p of spec.readOnlyPaths) args.push('--ro-bind', p, p);
  args.push('--chdir', spec.cwd, '--', ...command);
  return args;
}

/** A minimal sandbox, as strict as any we build, to learn whether bwrap works on this host. */
export function bubblewrapProbeArgs(isRoot: boolean): string[] {
  return bubblewrapArgs({ mode: 'read-only', writableRoots: [], readOnlyPaths: [], networkAccess: false, cwd: '/' }, ['true'], {
    newSession: true,
    isRoot,
  });
}
