/**
 * Login shells that start once per session. A command given as `bash -lc SCRIPT` (or zsh) would
 * run the user's login profile again each time: seconds on machines with pyenv, nvm or conda,
 * and an interrupt in the middle of the profile can leave its lock files behind. Instead, the
 * first such command of a session runs the profile once, in a login shell that prints what it
 * set up (exported variables, functions, aliases, the shell options worth keeping); troupe
 * writes that as a script of its own, and every command then runs as `bash -c` with the
 * script sourced first. When the profile fails or takes longer than SNAPSHOT_TIMEOUT_MS, the
 * session's commands keep their login shells, and the user is warned once. The sessions of a
 * tree share it: a sub-agent with the same shell and shell_environment_policy as its parent
 * sources the snapshot the parent took (or is taking) rather than running the profile again;
 * when that one failed, the sub-agent tries once with one of its own.
 *
 * Why it is safe to share:
 * - The snapshot is taken in a private empty directory, not the session's cwd, so a profile
 *   that reads the current directory (`. ./.env`, a version file) cannot be steered by the
 *   repository. It therefore does not depend on cwd and is never taken again within a session.
 * - The profile runs as confined as the command that asked for it would be: in the sandbox
 *   (with the private directory as its cwd and so its writable root) for a sandboxed command,
 *   so a profile the model could rewrite (HOME inside a writable root) runs no more freely than
 *   it did with `-lc`.
 * - Variables are compared with the environment the profile started from; only what it changed
 *   is written, and only names the session's shell_environment_policy lets through (a profile
 *   exporting OPENAI_API_KEY or GITHUB_TOKEN does not give it to commands). Values are
 *   written single-quoted by troupe, never as the shell printed them, so no value can become
 *   code.
 * - The file lives in a directory made with mkdtemp (mode 0700), read-only inside the
 *   sandbox of every session that sources it (so a sandboxed command cannot plant code that a
 *   later command outside it would source), and removed when the last session using it closes.
 * - Only sessions of the same tree, in the same process, with the same policy share one: the
 *   policy decides which variables the file holds.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ResolvedShellEnvironmentPolicy } from '../../machines/turn-context.js';
import { processIsRunning } from '../../lib/processes.js';
import { commandEnvironment, profileVariableFilter, type Environment } from './environment-policy.js';
import { processLauncher, type LaunchedProcess } from './launcher/launcher.js';
import { shellQuote } from './shell-quote.js';
import type { SessionResource, ToolContext } from './tool.js';

/** How long the profile may take before the session falls back to login shells. */
export const SNAPSHOT_TIMEOUT_MS = 10_000;

/** The per-session resource key (ToolContext.resources). */
export const SHELL_SNAPSHOT_RESOURCE = 'shell-snapshot';

/** Shells whose login profile is snapshotted; any other keeps its `-lc`. */
const SNAPSHOT_SHELLS = new Set(['bash', 'zsh']);

/** Set by the shell itself, or meaningless in another process: never restored. */
const SHELL_OWN_VARIABLES = new Set(['PWD', 'OLDPWD', 'SHLVL', '_', 'SHELLOPTS', 'BASHOPTS', 'ZDOTDIR_ORIG']);

/** bash `set -o` options a profile may set that change how a script runs; interactive ones are left out. */
const BASH_SET_OPTIONS = new Set(['allexport', 'errexit', 'errtrace', 'functrace', 'noclobber', 'noglob', 'nounset', 'pipefail', 'posix']);
/** bash `shopt` options about globbing and matching, kept; the rest are interactive or read-only. */
const BASH_SHOPT_OPTIONS = new Set([
  'dotglob',
  'extglob',
  'failglob',
  'globasciiranges',
  'globstar',
  'inherit_errexit',
  'lastpipe',
  'nocaseglob',
  'nocasematch',
  'nullglob',
  'xpg_echo',
]);
/** zsh options (as `setopt` prints them, lower case without underscores) kept. */
const ZSH_OPTIONS = new Set([
  'extendedglob',
  'globdots',
  'nullglob',
  'nonomatch',
  'ksharrays',
  'shwordsplit',
  'pipefail',
  'errexit',
  'nounset',
  'noclobber',
  'noglob',
  'globstarshort',
  'nocaseglob',
  'rematchpcre',
]);

/** A command that runs a login shell: `[shell, "-lc", script, ...args]`. */
export interface LoginShellCommand {
  readonly shell: string;
  readonly script: string;
  readonly rest: readonly string[];
}

/** `argv` as a login shell command of bash or zsh, or undefined for any other argv. */
export function loginShellCommand(argv: readonly string[]): LoginShellCommand | undefined {
  const [shell, flag, script, ...rest] = argv;
  if (shell === undefined || flag !== '-lc' || script === undefined) return undefined;
  if (!SNAPSHOT_SHELLS.has(path.basename(shell))) return undefined;
  return { shell, script, rest };
}

/** The argv that runs `command` without a login shell, the snapshot at `file` sourced first. */
export function snapshotArgv(command: LoginShellCommand, file: string): string[] {
  // bash parses a `-c` script one command at a time, so the aliases the snapshot defines apply
  // to the lines after it; zsh parses the whole script first, so there it is handed to eval.
  const script = path.basename(command.shell) === 'zsh' ? `eval ${shellQuote(command.script)}` : command.script;
  return [command.shell, '-c', `. ${shellQuote(file)}\n${script}`, ...command.rest];
}

/**
 * The program `shell` names, as a real path (found on the PATH of `env` when it has no
 * slash), so `bash` and `/bin/bash` share one snapshot; `shell` itself when it is not found.
 */
function resolveShell(shell: string, env: Environment): string {
  const candidates = shell.includes('/')
    ? [shell]
    : (env.PATH ?? '')
        .split(':')
        .filter((dir) => path.isAbsolute(dir))
        .map((dir) => path.join(dir, shell));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return realpathSync(candidate);
    } catch {
      // not this one
    }
  }
  return shell;
}

/** What the capture script prints between its markers. */
interface Captured {
  readonly functions: string;
  readonly aliases: string;
  readonly options: string;
  /** `NAME=value` entries, NUL-separated. */
  readonly variables: string;
}

/**
 * The script run after the profile: four sections, each after a line holding `marker`
 * (random per snapshot, so nothing the profile prints is taken for one).
 */
function captureScript(shell: 'bash' | 'zsh', marker: string): string {
  const mark = `printf '\\n%s\\n' ${shellQuote(marker)}`;
  if (shell === 'zsh') {
    return [
      mark,
      'functions',
      mark,
      'alias -L',
      mark,
      'setopt',
      mark,
      `for n in \${(k)parameters[(R)*export*]}; do printf '%s=%s\\0' "$n" "\${(P)n}"; done`,
    ].join('\n');
  }
  return [mark, 'declare -f', mark, 'alias -p', mark, 'set +o; shopt -p', mark, `for n in $(compgen -e); do printf '%s=%s\\0' "$n" "\${!n}"; done`].join('\n');
}

/** The four sections of the capture's output, or undefined when they are not all there. */
export function parseCapture(stdout: string, marker: string): Captured | undefined {
  const parts = stdout.split(`\n${marker}\n`);
  if (parts.length !== 5) return undefined;
  const [, functions, aliases, options, variables] = parts as [string, string, string, string, string];
  return { functions, aliases, options, variables };
}

/** The option lines worth keeping, from `set +o; shopt -p` (bash) or `setopt` (zsh). */
function keptOptions(shell: 'bash' | 'zsh', options: string): string[] {
  const lines = options.split('\n').map((line) => line.trim());
  if (shell === 'zsh') {
    return lines.filter((name) => ZSH_OPTIONS.has(name.replace(/_/g, '').toLowerCase())).map((name) => `setopt ${name}`);
  }
  return lines.filter((line) => {
    const set = /^set [-+]o (\w+)$/.exec(line);
    if (set) return BASH_SET_OPTIONS.has(set[1]!);
    const shopt = /^shopt -[su] (\w+)$/.exec(line);
    return shopt !== null && BASH_SHOPT_OPTIONS.has(shopt[1]!);
  });
}

/**
 * The variable lines: `export` for what the profile added or changed, `unset` for what it
 * removed, relative to `before`; only names `allowed` lets through.
 */
export function variableLines(variables: string, before: Environment, allowed: (name: string) => boolean): string[] {
  const after = new Map<string, string>();
  for (const entry of variables.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    after.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  const keep = (name: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !SHELL_OWN_VARIABLES.has(name) && allowed(name);
  const lines: string[] = [];
  for (const [name, value] of after) {
    if (before[name] !== value && keep(name)) lines.push(`export ${name}=${shellQuote(value)}`);
  }
  for (const name of Object.keys(before)) {
    if (!after.has(name) && keep(name)) lines.push(`unset -v ${name}`);
  }
  return lines;
}

/** The snapshot script troupe writes from a capture. */
export function snapshotScript(shell: 'bash' | 'zsh', captured: Captured, before: Environment, allowed: (name: string) => boolean): string {
  return [
    `# troupe: what \`${shell} -l\` set up, sourced before each command of this session.`,
    ...variableLines(captured.variables, before, allowed),
    // Aliases could shadow the names of the functions being defined: none until those are.
    shell === 'bash' ? 'unalias -a 2>/dev/null' : 'unalias -m "*" 2>/dev/null',
    captured.functions.trimEnd(),
    captured.aliases.trimEnd(),
    ...keptOptions(shell, captured.options),
    ...(shell === 'bash' ? ['shopt -s expand_aliases'] : []),
    '',
  ].join('\n');
}

const DIR_PREFIX = 'troupe-snapshot-';

/** Snapshot directories of this process still there: removed at exit, whatever closed or not. */
const liveDirectories = new Set<string>();
let swept = false;

/**
 * A new private directory for a session's snapshots, named after this process. The first one a
 * process makes also removes those of dead processes (a host killed before its sessions closed).
 */
function makeSnapshotDirectory(): string {
  if (!swept) {
    swept = true;
    process.on('exit', () => {
      for (const dir of liveDirectories) rmSync(dir, { recursive: true, force: true });
    });
    sweepDeadDirectories();
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  liveDirectories.add(dir);
  return dir;
}

/** A snapshot directory's name: the prefix, then the pid of the process that made it (makeSnapshotDirectory). */
const SNAPSHOT_DIRECTORY = new RegExp(`^${DIR_PREFIX}(\\d+)-`);

/**
 * Every shell snapshot directory in the temporary directory: this session's, its neighbours'
 * and other troupe processes'. The sandbox and apply_patch keep them all read-only: a command
 * that runs outside the sandbox (escalated, or the user's own) sources the snapshot of its
 * session, so a write to any session's snapshot is a way out of the sandbox for whoever makes it.
 */
export function snapshotDirectories(): string[] {
  try {
    return readdirSync(os.tmpdir())
      .filter((entry) => SNAPSHOT_DIRECTORY.test(entry))
      .map((entry) => path.join(os.tmpdir(), entry));
  } catch {
    return [];
  }
}

function sweepDeadDirectories(): void {
  let entries: string[];
  try {
    entries = readdirSync(os.tmpdir());
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = SNAPSHOT_DIRECTORY.exec(entry)?.[1];
    if (pid === undefined || processIsRunning(Number(pid))) continue;
    try {
      rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
    } catch {
      // another user's, or gone already
    }
  }
}

/** What a snapshot needs of the command that asks for it. */
export interface SnapshotHooks {
  /** Tell the user (once per session) that the session keeps its login shells. */
  warn(message: string): void;
  /** The argv that runs `capture` in `cwd` as confined as the asking command would be. */
  confine(capture: readonly string[], cwd: string): Promise<readonly string[]>;
}

/** Why a snapshot could not be taken. */
class SnapshotFailure extends Error {}

/**
 * One snapshot of one shell's profile, in a private directory of its own, taken when it is made
 * and used by one session or by several of a tree. The last user to let go removes the directory
 * (and kills the capture if it still runs).
 */
class Snapshot {
  readonly directory: string;
  /** The script once written; rejects (SnapshotFailure) when the profile could not be snapshotted. */
  readonly file: Promise<string>;
  readonly #timeoutMs: number;
  #capture: LaunchedProcess | undefined;
  #users = 1;

  constructor(shell: string, policy: ResolvedShellEnvironmentPolicy | undefined, timeoutMs: number, confine: SnapshotHooks['confine']) {
    this.#timeoutMs = timeoutMs;
    this.directory = makeSnapshotDirectory();
    this.file = this.#take(shell, policy, confine);
    // Whoever awaits it sees the failure; this only keeps an unawaited one from being unhandled.
    this.file.catch(() => {});
  }

  /** One more session uses it. */
  use(): void {
    this.#users++;
  }

  /** A session is done with it; true when it was the last (the directory is gone then). */
  release(): boolean {
    if (--this.#users > 0) return false;
    this.#capture?.kill('SIGKILL');
    rmSync(this.directory, { recursive: true, force: true });
    liveDirectories.delete(this.directory);
    return true;
  }

  async #take(shell: string, policy: ResolvedShellEnvironmentPolicy | undefined, confine: SnapshotHooks['confine']): Promise<string> {
    const kind = path.basename(shell) === 'zsh' ? 'zsh' : 'bash';
    const marker = `troupe-snapshot-${randomBytes(12).toString('hex')}`;
    const before = commandEnvironment(policy);
    const argv = await confine([shell, '-lc', captureScript(kind, marker)], this.directory);
    if (this.#users === 0) throw new SnapshotFailure('nobody uses the snapshot any more');
    const captured = parseCapture(await this.#run(argv, before), marker);
    if (captured === undefined) throw new SnapshotFailure('the profile ended before the snapshot was printed');
    // A new file of a name nobody could guess, never through a link the profile left where it ran.
    const file = path.join(this.directory, `${kind}-${randomBytes(6).toString('hex')}.sh`);
    writeFileSync(file, snapshotScript(kind, captured, before, profileVariableFilter(policy)), { mode: 0o600, flag: 'wx' });
    return file;
  }

  /** Run the capture in the snapshot's empty private directory; its stdout, or a SnapshotFailure. */
  async #run(argv: readonly string[], env: Environment): Promise<string> {
    const launched = processLauncher().launch(argv, { cwd: this.directory, env });
    this.#capture = launched;
    let stdout = '';
    let stderr = '';
    launched.onOutput((stream, text) => {
      if (stream === 'stdout') stdout += text;
      else stderr += text;
    });
    let timedOut = false;
    // Not tied to any one command: an interrupt must not kill the profile half-way (its locks).
    const timer = setTimeout(() => {
      timedOut = true;
      launched.kill('SIGKILL');
    }, this.#timeoutMs);
    try {
      const outcome = await launched.outcome;
      if (timedOut) throw new SnapshotFailure(`the profile took longer than ${this.#timeoutMs / 1000} s`);
      if (outcome.kind === 'not_started' || outcome.kind === 'lost') throw new SnapshotFailure(outcome.message);
      if (outcome.code !== 0) {
        const detail = stderr.trim().split('\n').slice(-1)[0];
        throw new SnapshotFailure(`the login shell exited with ${outcome.code ?? outcome.signal}${detail ? `: ${detail}` : ''}`);
      }
      return stdout;
    } finally {
      clearTimeout(timer);
      this.#capture = undefined;
    }
  }
}

/**
 * The snapshots the sessions of a tree share in this process, by tree, shell program and
 * environment policy: a sub-agent with its parent's shell and policy sources the parent's
 * snapshot instead of running the profile again. A snapshot leaves when it fails (the next
 * session to need one takes its own) or when its last session closes.
 */
const treeSnapshots = new Map<string, Snapshot>();

/**
 * A session's snapshots, one per shell program, each taken on the first command that needs it
 * (or found in the tree) and shared by the session's later commands. Disposing lets go of them.
 */
export class ShellSnapshots implements SessionResource {
  readonly #policy: ResolvedShellEnvironmentPolicy | undefined;
  readonly #timeoutMs: number;
  readonly #tree: string | undefined;
  /** The snapshot file each program's commands source, or undefined: they keep their login shells. */
  readonly #files = new Map<string, Promise<string | undefined>>();
  /** The program each shell named in a command resolved to. */
  readonly #programs = new Map<string, string>();
  /** The snapshots this session uses (its own and the tree's). */
  readonly #using = new Set<Snapshot>();
  #warned = false;
  #disposed = false;

  /** `tree`: the session tree's root id, to share snapshots with the tree's other sessions (absent: none). */
  constructor(policy: ResolvedShellEnvironmentPolicy | undefined, options: { timeoutMs?: number; tree?: string | undefined } = {}) {
    this.#policy = policy;
    this.#timeoutMs = options.timeoutMs ?? SNAPSHOT_TIMEOUT_MS;
    this.#tree = options.tree;
  }

  /** The private directories of the snapshots this session sources (all of them are kept read-only: snapshotDirectories). */
  get directories(): readonly string[] {
    return [...this.#using].map((snapshot) => snapshot.directory);
  }

  /**
   * The argv to run instead of `argv`: the snapshot form of a bash or zsh login shell command,
   * or `argv` itself (any other command, or when the snapshot failed: then the session is
   * warned once, through `how.warn`). The profile runs as `how.confine` confines it.
   */
  async rewrite(argv: readonly string[], how: SnapshotHooks): Promise<readonly string[]> {
    const command = loginShellCommand(argv);
    if (command === undefined || this.#disposed) return argv;
    let program = this.#programs.get(command.shell);
    if (program === undefined) {
      program = resolveShell(command.shell, commandEnvironment(this.#policy));
      this.#programs.set(command.shell, program);
    }
    let file = this.#files.get(program);
    if (file === undefined) {
      file = this.#snapshotFile(program, command.shell, how);
      this.#files.set(program, file);
    }
    const found = await file;
    return found === undefined || this.#disposed ? argv : snapshotArgv(command, found);
  }

  /** The tree's snapshot of `program` when there is a good one, else one of this session's own. */
  async #snapshotFile(program: string, shell: string, how: SnapshotHooks): Promise<string | undefined> {
    const key = this.#tree === undefined ? undefined : JSON.stringify([this.#tree, program, this.#policy ?? null]);
    const shared = key === undefined ? undefined : treeSnapshots.get(key);
    if (shared !== undefined) {
      shared.use();
      this.#using.add(shared);
      try {
        return await shared.file;
      } catch {
        // The tree's snapshot failed (it left the tree then): this session tries once itself.
        if (this.#disposed) return undefined;
      }
    }
    const own = new Snapshot(program, this.#policy, this.#timeoutMs, how.confine);
    this.#using.add(own);
    if (key !== undefined && !treeSnapshots.has(key)) {
      treeSnapshots.set(key, own);
      own.file.catch(() => {
        if (treeSnapshots.get(key) === own) treeSnapshots.delete(key);
      });
    }
    try {
      return await own.file;
    } catch (error) {
      if (!this.#warned && !this.#disposed) {
        this.#warned = true;
        const reason = error instanceof Error ? error.message : String(error);
        how.warn(
          `The login profile of ${shell} could not be snapshotted (${reason}); this session's commands run login shells instead, which re-run the profile each time.`,
        );
      }
      return undefined;
    }
  }

  dispose(): void {
    this.#disposed = true;
    for (const snapshot of this.#using) {
      if (!snapshot.release()) continue;
      for (const [key, shared] of treeSnapshots) if (shared === snapshot) treeSnapshots.delete(key);
    }
    this.#using.clear();
  }
}

/** The session's snapshots (created on first use, disposed with the session). */
export function shellSnapshotsOf(ctx: ToolContext): ShellSnapshots {
  return ctx.resources.get(SHELL_SNAPSHOT_RESOURCE, () => new ShellSnapshots(ctx.turn.shell_environment_policy, { tree: ctx.rootSessionId }));
}
