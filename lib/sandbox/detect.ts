/**
 * Which sandbox backend this host has. Finding `bwrap` is not enough: containers and some
 * distributions forbid the user namespaces it needs, so we run it once on a trivial command
 * and keep the answer for the life of the process.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { bubblewrapArgs, bubblewrapProbeArgs } from './bubblewrap.js';
import { SandboxUnavailableError } from './errors.js';
import { inPidsCgroup } from './limits.js';
import { SANDBOX_EXEC_PATH, seatbeltCommand } from './seatbelt.js';
import type { SandboxSpec } from './spec.js';

export type SandboxBackend =
  { readonly kind: 'bubblewrap'; readonly path: string; readonly prlimit: string } | { readonly kind: 'seatbelt'; readonly path: string };

export type SandboxAvailability = { readonly ok: true; readonly backend: SandboxBackend } | { readonly ok: false; readonly reason: string };

/**
 * `TROUPE_SANDBOX_BACKEND=none` makes the host look as if it had no backend (to see what a user
 * without one gets); anything else, or unset, detects.
 */
export const BACKEND_ENV = 'TROUPE_SANDBOX_BACKEND';

const PROBE_TIMEOUT_MS = 10_000;
const cache = new Map<string, Promise<SandboxAvailability>>();

export function detectSandbox(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Promise<SandboxAvailability> {
  const key = `${platform}\0${env[BACKEND_ENV] ?? ''}\0${env.PATH ?? ''}`;
  let found = cache.get(key);
  if (!found) {
    found = detectUncached(env, platform);
    cache.set(key, found);
  }
  return found;
}

async function detectUncached(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): Promise<SandboxAvailability> {
  if (env[BACKEND_ENV] === 'none') return { ok: false, reason: `${BACKEND_ENV}=none disables every sandbox backend` };
  if (platform === 'darwin') {
    return isExecutable(SANDBOX_EXEC_PATH)
      ? { ok: true, backend: { kind: 'seatbelt', path: SANDBOX_EXEC_PATH } }
      : { ok: false, reason: `${SANDBOX_EXEC_PATH} is missing` };
  }
  if (platform !== 'linux') return { ok: false, reason: `no sandbox backend exists for ${platform}` };
  const bwrap = findOnPath('bwrap', env);
  if (bwrap === undefined) return { ok: false, reason: 'bubblewrap (bwrap) is not installed' };
  const prlimit = findOnPath('prlimit', env);
  if (prlimit === undefined) return { ok: false, reason: 'prlimit (util-linux), which sets the limits of sandboxed commands, is not installed' };
  // execa is loaded here, at the first sandboxed command, not when troupe starts.
  const { execa } = await import('execa');
  const result = await execa(bwrap, bubblewrapProbeArgs(isRoot(), prlimit), { reject: false, timeout: PROBE_TIMEOUT_MS, stdin: 'ignore', all: true });
  if (result.exitCode === 0) return { ok: true, backend: { kind: 'bubblewrap', path: bwrap, prlimit } };
  const detail = (result.all ?? '').toString().trim() || result.shortMessage;
  return {
    ok: false,
    reason: `bubblewrap is installed (${bwrap}) but cannot create a sandbox on this host: ${detail}. User namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, or an AppArmor userns restriction)`,
  };
}

/** What the user is told when a sandboxed policy meets a host without a working backend. */
export function unavailableMessage(reason: string, mode: string): string {
  return (
    `This command must run in the ${mode} sandbox, but no sandbox is available: ${reason}. ` +
    'Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; Arch: pacman -S bubblewrap), ' +
    'or, knowing that commands then run unconfined, choose the sandbox policy "danger-full-access".'
  );
}

/** The argv that runs `command` confined by `spec` on `backend`. */
export function sandboxedArgv(backend: SandboxBackend, spec: SandboxSpec, command: readonly string[], options: { tty: boolean }): string[] {
  switch (backend.kind) {
    case 'bubblewrap': {
      const argv = [backend.path, ...bubblewrapArgs(spec, command, { newSession: !options.tty, isRoot: isRoot(), prlimit: backend.prlimit })];
      // Root is exempt from RLIMIT_NPROC: its process limit is a cgroup's.
      return isRoot() ? inPidsCgroup(spec.limits, argv) : argv;
    }
    case 'seatbelt':
      return seatbeltCommand(spec, command);
  }
}

/** The backend, or an error that says how to get one. Never a silent fallback to no sandbox. */
export async function requireSandbox(spec: SandboxSpec, env: NodeJS.ProcessEnv = process.env): Promise<SandboxBackend> {
  const found = await detectSandbox(env);
  if (!found.ok) throw new SandboxUnavailableError(unavailableMessage(found.reason, spec.mode));
  return found.backend;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function findOnPath(program: string, env: NodeJS.ProcessEnv): string | undefined {
  const dirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const dir of [...dirs, '/usr/bin', '/bin']) {
    const candidate = path.join(dir, program);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
