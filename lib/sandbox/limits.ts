/**
 * Resource limits of a sandboxed command: how many tasks it may have alive at once, and how
 * large a file it may write. Both are inherited by everything the command starts.
 *
 * The file size is an rlimit (RLIMIT_FSIZE), set by `prlimit` just before the command runs.
 * The process count takes more, because the kernel never applies RLIMIT_NPROC to root:
 * - for other users, bubblewrap runs the command in a user namespace of its own, where the
 *   kernel counts RLIMIT_NPROC per namespace, so `prlimit --nproc` inside the sandbox counts
 *   this command's tasks and no one else's;
 * - for root, the command joins a pids cgroup of its own (cgroup v1's pids hierarchy, or a v2
 *   cgroup delegated with the pids controller) whose `pids.max` is the limit. A host where root
 *   has neither gets no process limit, and says so once in the log.
 */
import { accessSync, constants, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { log as rootLog } from '../log.js';
import { processIsRunning } from '../processes.js';
import type { SandboxLimits } from './spec.js';

const log = rootLog.child({ component: 'sandbox' });

/** The argv that runs `command` under the limits; used inside the sandbox. */
export function withRlimits(prlimit: string, limits: SandboxLimits, command: readonly string[]): string[] {
  return [prlimit, `--nproc=${limits.maxProcesses}`, `--fsize=${limits.maxFileSizeBytes}`, '--', ...command];
}

/**
 * For root: the argv that moves itself into a fresh pids cgroup capped at the limit and then
 * runs `command` (the sandbox), or `command` unchanged where no cgroup can be had.
 */
export function inPidsCgroup(limits: SandboxLimits, command: readonly string[]): string[] {
  const parent = pidsCgroupParent();
  if (parent === undefined) return [...command];
  const dir = newCgroup(parent, limits.maxProcesses);
  if (dir === undefined) return [...command];
  // The shell joins before it execs, so the sandbox and all it starts are counted.
  return ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...command];
}

let parentLookup: { dir: string | undefined } | undefined;

/** A cgroup directory with the pids controller that this process may create children in. */
function pidsCgroupParent(): string | undefined {
  if (parentLookup === undefined) {
    const dir = findPidsCgroup();
    if (dir === undefined) log.warn('no pids cgroup can be created here: sandboxed commands run by root have no process limit');
    else removeOrphans(dir);
    parentLookup = { dir };
  }
  return parentLookup.dir;
}

function findPidsCgroup(): string | undefined {
  let membership: string;
  try {
    membership = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of membership.split('\n')) {
    const [, controllers, own] = line.split(':');
    if (own === undefined) continue;
    // cgroup v1: a hierarchy of its own for pids.
    if (controllers?.split(',').includes('pids')) {
      const dir = path.join('/sys/fs/cgroup/pids', own);
      if (writableDir(dir)) return dir;
    }
    // cgroup v2 (pure or hybrid): usable when pids is enabled for our cgroup's children.
    if (controllers === '') {
      for (const mount of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
        const dir = path.join(mount, own);
        if (writableDir(dir) && readOr(path.join(dir, 'cgroup.subtree_control')).split(/\s+/).includes('pids')) return dir;
      }
    }
  }
  return undefined;
}

/**
 * Cgroups made for commands, with when each was made. One is removed once empty (rmdir refuses
 * a cgroup that has tasks), but only after a grace period: a cgroup is empty from when it is
 * made until its command's shell joins it, and must not be swept in between.
 */
const made = new Map<string, number>();
const SWEEP_GRACE_MS = 60_000;
let counter = 0;

function newCgroup(parent: string, maxProcesses: number): string | undefined {
  sweep(Date.now() - SWEEP_GRACE_MS);
  const dir = path.join(parent, `troupe-${process.pid}-${++counter}`);
  try {
    mkdirSync(dir);
    made.set(dir, Date.now());
    writeFileSync(path.join(dir, 'pids.max'), String(maxProcesses));
    return dir;
  } catch (error) {
    log.warn({ err: error, dir }, 'could not make a pids cgroup; this command runs without a process limit');
    return undefined;
  }
}

/** Removes the empty cgroups made before `madeBefore`. */
function sweep(madeBefore: number): void {
  for (const [dir, at] of made) {
    if (at > madeBefore) continue;
    try {
      rmdirSync(dir);
      made.delete(dir);
    } catch {
      // Still has tasks: its command is running.
    }
  }
}

// At exit every command is on its way out with us (bubblewrap dies with its parent).
process.on('exit', () => sweep(Infinity));

/** Cgroups left by troupe processes that are gone (killed before they could sweep). */
function removeOrphans(parent: string): void {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return;
  }
  for (const entry of entries) {
    const owner = /^troupe-(\d+)-\d+$/.exec(entry)?.[1];
    if (owner === undefined || processIsRunning(Number(owner))) continue;
    try {
      rmdirSync(path.join(parent, entry));
    } catch {
      // Still has tasks, or already gone.
    }
  }
}

function writableDir(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
