/**
 * macOS backend: Seatbelt, through `/usr/bin/sandbox-exec -p <profile>`. Paths reach the
 * profile as parameters (`-D NAME=value`) rather than being spliced into its text, so a
 * directory name with quotes or parentheses cannot change the profile's meaning.
 * Untested on real macOS (there is none in CI); the unit tests check the generated profile.
 */
import type { SandboxSpec } from './spec.js';

export const SANDBOX_EXEC_PATH = '/usr/bin/sandbox-exec';

export interface SeatbeltProfile {
  readonly profile: string;
  /** `-D` parameters the profile refers to. */
  readonly params: Readonly<Record<string, string>>;
}

/** Everything the policy forbids is denied by default; reads are open, writes are listed. */
const BASE = `(version 1)
(deny default)
(allow process-exec)
(allow process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))
(allow file-read*)
(allow sysctl-read)
(allow mach-lookup)
(allow ipc-posix-shm-read-data)
(allow ipc-posix-sem)
(allow iokit-open (iokit-registry-entry-class "RootDomainUserClient"))
(allow pseudo-tty)
(allow file-ioctl (literal "/dev/tty") (regex #"^/dev/ttys[0-9]+$"))
(allow file-write-data (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty") (regex #"^/dev/ttys[0-9]+$"))`;

export function seatbeltProfile(spec: SandboxSpec): SeatbeltProfile {
  const params: Record<string, string> = {};
  const writeRules: string[] = [];
  // Protected names are refused where they exist and where they could be created: Seatbelt,
  // unlike bubblewrap, can deny a path that does not exist yet.
  const readOnly = [...new Set([...spec.readOnlyPaths, ...spec.protectedSpots])];
  spec.writableRoots.forEach((root, i) => {
    const rootParam = `WRITABLE_ROOT_${i}`;
    params[rootParam] = root;
    const excluded = readOnly
      .filter((p) => p === root || p.startsWith(`${root}/`))
      .map((p, j) => {
        const name = `${rootParam}_RO_${j}`;
        params[name] = p;
        return `(require-not (subpath (param "${name}")))`;
      });
    writeRules.push(excluded.length === 0 ? `(subpath (param "${rootParam}"))` : `(require-all (subpath (param "${rootParam}")) ${excluded.join(' ')})`);
  });
  const parts = [BASE];
  if (writeRules.length > 0) parts.push(`(allow file-write*\n  ${writeRules.join('\n  ')})`);
  if (spec.networkAccess) parts.push('(allow network-outbound)\n(allow network-inbound)\n(allow system-socket)');
  return { profile: `${parts.join('\n')}\n`, params };
}

/**
 * The argv that runs `command` under the profile. The file-size limit is set by the shell
 * (`ulimit -f` counts 512-byte blocks in a POSIX shell); macOS counts processes per user, not
 * per command, so there is no process limit here.
 */
export function seatbeltCommand(spec: SandboxSpec, command: readonly string[]): string[] {
  const { profile, params } = seatbeltProfile(spec);
  const defines = Object.entries(params).flatMap(([name, value]) => ['-D', `${name}=${value}`]);
  const blocks = String(Math.max(1, Math.floor(spec.limits.maxFileSizeBytes / 512)));
  return [SANDBOX_EXEC_PATH, '-p', profile, ...defines, '--', '/bin/sh', '-c', 'ulimit -f "$0" && exec "$@"', blocks, ...command];
}
