import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { HomeConfig, PROFILE_KEYS, TroupeError, type ConfigProfile } from '../../protocol/index.js';

/** A config file that cannot be used, or a profile it does not have; its message names the file and the key. */
export class HomeConfigError extends TroupeError {
  override readonly name = 'HomeConfigError';
  override readonly code = 'bad_request';
}

export function homeConfigPath(home: string): string {
  return join(home, 'config.json');
}

/** The last config read from each path, with what its file looked like then. */
const cache = new Map<string, { readonly signature: string; readonly config: HomeConfig }>();

/**
 * Read `TROUPE_HOME/config.json`; a missing file is an empty config. A host reads it for every
 * session it starts, so the file is parsed again only when it changed (its inode, size or
 * modification time), and a missing one costs a stat.
 */
export function loadHomeConfig(home: string): HomeConfig {
  const path = homeConfigPath(home);
  let info;
  try {
    info = statSync(path, { throwIfNoEntry: false });
  } catch (error) {
    throw new HomeConfigError(`${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!info) {
    cache.delete(path);
    return {};
  }
  const signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
  const cached = cache.get(path);
  if (cached?.signature === signature) return cached.config;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new HomeConfigError(`${path}: ${(error as Error).message}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new HomeConfigError(`${path}: not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = HomeConfig.safeParse(raw);
  if (!parsed.success) throw new HomeConfigError(`${path}: ${describeConfigIssues(parsed.error.issues, []).join('; ')}`);
  cache.set(path, { signature, config: parsed.data });
  return parsed.data;
}

/**
 * Each problem as `key.path: what was expected`. An unknown key is named with its own path; of
 * a union (a sandbox mode or its object form) the branch the value was meant as is reported.
 */
function describeConfigIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]): string[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${keyPath([...path, key])}: ${issue.message}`);
    if (issue.code === 'invalid_union') {
      // A branch that got past the value's type (into its keys) is the one the value was meant as.
      const meant = issue.errors.filter((branch) => branch.some((inner) => inner.path.length > 0 || inner.code === 'unrecognized_keys'));
      if (meant.length === 1) return describeConfigIssues(meant[0]!, path);
    }
    return [`${keyPath(path)}: ${issue.message}`];
  });
}

function keyPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
}

/** Where a setting's value came from, as `troupe config` shows it. */
export type SettingSource = string;

/** A setting with where it came from. */
export interface Sourced<T> {
  readonly value: T;
  readonly source: SettingSource;
}

/** The session defaults of a config file and one of its profiles, each with its source. */
export type LayeredDefaults = { readonly [K in keyof ConfigProfile]?: Sourced<NonNullable<ConfigProfile[K]>> };

/**
 * The defaults the file gives, with the profile's over them (a profile's value replaces the
 * file's whole). A profile the file does not have is an error naming those it has.
 */
export function layeredDefaults(config: HomeConfig, path: string, profile: string | undefined): LayeredDefaults {
  const layers: [ConfigProfile, SettingSource][] = [[config, path]];
  if (profile !== undefined) layers.push([profileOf(config, path, profile), `profile ${profile} (${path})`]);
  const result: Record<string, Sourced<unknown>> = {};
  for (const [layer, source] of layers) {
    for (const key of PROFILE_KEYS) {
      const value = layer[key];
      if (value !== undefined) result[key] = { value, source };
    }
  }
  return result;
}

/** Just the values of layeredDefaults. */
export function sessionDefaults(config: HomeConfig, path: string, profile: string | undefined): ConfigProfile {
  const layered = layeredDefaults(config, path, profile);
  return Object.fromEntries(Object.entries(layered).map(([key, setting]) => [key, setting.value]));
}

function profileOf(config: HomeConfig, path: string, name: string): ConfigProfile {
  const profiles = config.profiles ?? {};
  if (Object.hasOwn(profiles, name)) return profiles[name]!;
  const names = Object.keys(profiles);
  throw new HomeConfigError(`no profile "${name}" in ${path} (${names.length > 0 ? `its profiles: ${names.join(', ')}` : 'it has no profiles'})`);
}
