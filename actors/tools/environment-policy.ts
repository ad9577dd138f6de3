/**
 * The environment of the commands the model runs (`shell`, `exec_command`), decided by the
 * session's `shell_environment_policy` (protocol/common.ts). troupe's own process holds the
 * model provider's key and often more (`GITHUB_TOKEN`, cloud credentials); a command that can
 * read its environment can write it to a file or, with network access, send it away. So the
 * environment a command gets is filtered: by default everything whose name looks like a
 * secret, and always troupe's own credentials, are left out.
 *
 * Filtering is by name only. A value holding a secret under an innocuous name (a URL with a
 * password in it, say) passes; `include_only` or `inherit: "core"` are the tools for that.
 *
 * Steps, in order: `inherit` picks the starting set; the default excludes and troupe's own
 * are removed; `exclude` removes more; `include_only` keeps only what matches; `set` adds
 * last. Patterns are case-insensitive (`*token*` removes `MY_Token_2`).
 *
 * A host runs this once per session (per policy object), not per command: the result is a
 * frozen object kept in a WeakMap, and sessions whose environments come out the same share
 * one object, which the launcher recognises by identity and does not send again.
 */
import type { ShellEnvironmentPolicy } from '../../protocol/index.js';
import { normalizeShellEnvironmentPolicy, shellEnvironmentPolicyConfig, type ResolvedShellEnvironmentPolicy } from '../../machines/turn-context.js';

export type Environment = Readonly<Record<string, string>>;

/** Names that usually hold secrets; removed unless `ignore_default_excludes`. */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze(['*KEY*', '*SECRET*', '*TOKEN*', '*PASSWORD*', '*CREDENTIAL*']);

/**
 * troupe's own credentials (the model provider's key and base URL, the NATS server's user,
 * password, token, nkey and TLS files): removed even with `ignore_default_excludes`. Only `set`
 * can give one to a command, and then it is the value written there, not troupe's.
 */
export const TROUPE_EXCLUDES: readonly string[] = Object.freeze(['OPENAI_*', 'TROUPE_NATS_*']);

/** What `inherit: "core"` keeps (exact, case-sensitive names), plus every `LC_*`. */
export const CORE_VARIABLES: ReadonlySet<string> = new Set(['HOME', 'LOGNAME', 'PATH', 'SHELL', 'USER', 'USERNAME', 'TMPDIR', 'TEMP', 'TMP', 'LANG', 'TERM']);

const EMPTY_LIST: readonly string[] = Object.freeze([]);
const EMPTY_SET: Environment = Object.freeze({});

/**
 * One anchored, case-insensitive expression matching any of `patterns`; `*` is any run of
 * characters (none included), `?` exactly one, everything else itself. Null for no patterns.
 */
export function globsToRegExp(patterns: readonly string[]): RegExp | null {
  if (patterns.length === 0) return null;
  const alternatives = patterns.map((pattern) =>
    [...pattern].map((char) => (char === '*' ? '.*' : char === '?' ? '.' : char.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join(''),
  );
  return new RegExp(`^(?:${alternatives.join('|')})$`, 'is');
}

/** Whether `name` matches one of `patterns` (case-insensitive globs). */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return globsToRegExp(patterns)?.test(name) ?? false;
}

function isCore(name: string): boolean {
  return CORE_VARIABLES.has(name) || name.startsWith('LC_');
}

const TROUPE_OWN = globsToRegExp(TROUPE_EXCLUDES)!;
const DEFAULT_SECRETS = globsToRegExp(DEFAULT_EXCLUDES)!;

/**
 * The filters of `policy` other than `inherit`, as one test of a variable's name: troupe's own
 * credentials, the default excludes, `exclude`, `include_only`.
 */
function passesFilters(policy: ShellEnvironmentPolicy | ResolvedShellEnvironmentPolicy | undefined): (name: string) => boolean {
  const exclude = globsToRegExp(policy?.exclude ?? EMPTY_LIST);
  const includeOnly = policy?.include_only ? globsToRegExp(policy.include_only) : undefined;
  const secrets = policy?.ignore_default_excludes === true ? null : DEFAULT_SECRETS;
  return (name) => {
    if (TROUPE_OWN.test(name)) return false;
    if (secrets?.test(name)) return false;
    if (exclude?.test(name)) return false;
    // An empty include_only keeps nothing: present means "only these", and these are none.
    return includeOnly === undefined || (includeOnly?.test(name) ?? false);
  };
}

/**
 * The environment `policy` gives a command, from `source` (the pure function: no caching).
 * `defaults` are added after the filters and before `set`, so `set` can override them.
 */
export function filterEnvironment(
  policy: ShellEnvironmentPolicy | ResolvedShellEnvironmentPolicy | undefined,
  source: NodeJS.ProcessEnv,
  defaults: Environment = EMPTY_SET,
): Record<string, string> {
  const inherit = policy?.inherit ?? 'all';
  const passes = passesFilters(policy);
  const out: Record<string, string> = {};
  if (inherit !== 'none') {
    for (const name of Object.keys(source)) {
      const value = source[name];
      if (value === undefined) continue;
      if (inherit === 'core' && !isCore(name)) continue;
      if (passes(name)) out[name] = value;
    }
  }
  Object.assign(out, defaults, policy?.set);
  return out;
}

/**
 * Which variables a login profile sets that may reach commands under `policy` (shell-snapshot.ts):
 * the same filters as troupe's own environment, except `inherit`, which is about troupe's
 * environment only; a name the policy `set`s keeps the policy's value.
 */
export function profileVariableFilter(policy: ResolvedShellEnvironmentPolicy | undefined): (name: string) => boolean {
  const passes = passesFilters(policy);
  return (name) => passes(name) && !Object.hasOwn(policy?.set ?? EMPTY_SET, name);
}

/** The default policy, for a context that carries none (handlers driven directly, in tests). */
const DEFAULT_POLICY = normalizeShellEnvironmentPolicy(undefined);

/** Per policy object, per `defaults` object: the environment it gives. */
const computed = new WeakMap<ResolvedShellEnvironmentPolicy, Map<Environment, Environment>>();

/** Environments made lately, by policy and defaults: equal results are shared, not copied. */
const interned = new Map<string, Environment>();
const MAX_INTERNED = 32;

/**
 * The environment of a command run under `policy`, read from this process's environment the
 * first time the policy object is seen and kept from then on (frozen: never change it). Costs
 * two map look-ups after the first call.
 */
export function commandEnvironment(policy: ResolvedShellEnvironmentPolicy | undefined, defaults: Environment = EMPTY_SET): Environment {
  const key = policy ?? DEFAULT_POLICY;
  let byDefaults = computed.get(key);
  if (!byDefaults) {
    byDefaults = new Map();
    computed.set(key, byDefaults);
  }
  let env = byDefaults.get(defaults);
  if (!env) {
    env = intern(`${JSON.stringify(shellEnvironmentPolicyConfig(key))}\0${JSON.stringify(defaults)}`, filterEnvironment(key, process.env, defaults));
    byDefaults.set(defaults, env);
  }
  return env;
}

function intern(key: string, env: Record<string, string>): Environment {
  const known = interned.get(key);
  if (known && sameEntries(known, env)) return known;
  const frozen = Object.freeze(env);
  interned.delete(key);
  interned.set(key, frozen);
  if (interned.size > MAX_INTERNED) interned.delete(interned.keys().next().value!);
  return frozen;
}

function sameEntries(a: Environment, b: Environment): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}

const CORE_POLICY = normalizeShellEnvironmentPolicy({ inherit: 'core' });

/**
 * The core variables of troupe's environment (HOME, PATH, USER, LANG, …) and nothing else:
 * what an MCP server a session starts gets besides its config's `env`, and all the process
 * launcher holds (a command outside the sandbox can read its parent's environment in /proc,
 * and each program the launcher starts gets the environment its own request names).
 */
export function coreEnvironment(): Environment {
  return commandEnvironment(CORE_POLICY);
}
