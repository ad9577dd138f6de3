import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { AskForApproval, ReasoningEffort, SandboxMode, type SessionConfig, type UserInput } from '../protocol/index.js';
import type { RuntimeOptions } from '../actors/runtime.js';
import { runsOnNats, UsageError, type SessionFlagValues } from './flags.js';

/**
 * The flags of `codex exec` that the Codex SDK passes, which `troupe exec` takes as well so that
 * the SDK can drive troupe (docs/PROTOCOL.md, "Codex SDK compatibility").
 */
export const CODEX_EXEC_FLAGS = {
  'experimental-json': { type: 'boolean', default: false },
  'output-schema': { type: 'string' },
  'add-dir': { type: 'string', multiple: true },
  image: { type: 'string', short: 'i', multiple: true },
  config: { type: 'string', short: 'c', multiple: true },
  'skip-git-repo-check': { type: 'boolean', default: false },
  'thread-source': { type: 'string' },
} as const;

export interface CodexFlagValues extends SessionFlagValues {
  readonly 'output-schema'?: string | undefined;
  readonly 'add-dir'?: readonly string[] | undefined;
  readonly image?: readonly string[] | undefined;
  readonly config?: readonly string[] | undefined;
}

/** What those flags ask of a turn. */
export interface CodexExecSettings {
  /** Session settings beyond the ones configFromFlags reads; these win over its sandbox. */
  readonly config: SessionConfig;
  /** Images sent with the prompt. */
  readonly images: readonly UserInput[];
  /** The JSON Schema the final answer must match (--output-schema). */
  readonly outputSchema?: Record<string, unknown> | undefined;
  readonly runtime: Pick<RuntimeOptions, 'baseURL' | 'apiKey'>;
}

/** The `--config key=value` keys troupe understands; any other is refused. */
const CONFIG_KEYS = [
  'approval_policy',
  'sandbox_mode',
  'model',
  'model_reasoning_effort',
  'sandbox_workspace_write.network_access',
  'sandbox_workspace_write.writable_roots',
  'openai_base_url',
  'web_search',
] as const;
type ConfigKey = (typeof CONFIG_KEYS)[number];

/**
 * Reads the Codex flags. Explicit flags (--approval-policy, --sandbox, --model) win over
 * `--config`; a later `--config` of the same key wins over an earlier one, as in Codex.
 */
export function codexExecSettings(values: CodexFlagValues, env: NodeJS.ProcessEnv): CodexExecSettings {
  const overrides = new Map<ConfigKey, unknown>();
  for (const entry of values.config ?? []) {
    const [key, value] = configEntry(entry);
    overrides.set(key, value);
  }
  const text = (key: ConfigKey): string | undefined => {
    const value = overrides.get(key);
    if (value === undefined || typeof value === 'string') return value;
    throw new UsageError(`--config ${key} must be a string, got ${JSON.stringify(value)}`);
  };
  const oneOf = <T extends string>(key: ConfigKey, options: readonly T[]): T | undefined => {
    const value = text(key);
    if (value === undefined || (options as readonly string[]).includes(value)) return value as T | undefined;
    throw new UsageError(`--config ${key} must be one of ${options.join(', ')}, got "${value}"`);
  };

  const config: { -readonly [K in keyof SessionConfig]: SessionConfig[K] } = {};
  const approval = oneOf('approval_policy', AskForApproval.options);
  if (approval !== undefined && values['approval-policy'] === undefined) config.approval_policy = approval;
  const model = text('model');
  if (model !== undefined && values.model === undefined) config.model = model;
  const effort = oneOf('model_reasoning_effort', ReasoningEffort.options);
  if (effort !== undefined) config.effort = effort;
  const webSearch = text('web_search');
  if (webSearch !== undefined && webSearch !== 'disabled')
    throw new UsageError(`--config web_search="${webSearch}": troupe has no web search tool (only "disabled")`);

  const mode = (values.sandbox as SandboxMode | undefined) ?? oneOf('sandbox_mode', SandboxMode.options);
  const network = overrides.get('sandbox_workspace_write.network_access');
  if (network !== undefined && typeof network !== 'boolean') throw new UsageError('--config sandbox_workspace_write.network_access must be true or false');
  const roots = overrides.get('sandbox_workspace_write.writable_roots') ?? [];
  if (!Array.isArray(roots) || !roots.every((root) => typeof root === 'string')) {
    throw new UsageError('--config sandbox_workspace_write.writable_roots must be a list of paths');
  }
  const base = resolve(values.cd ?? '.');
  const writableRoots = [...roots, ...(values['add-dir'] ?? [])].map((dir) => resolve(base, dir));
  if (network !== undefined || writableRoots.length > 0) {
    config.sandbox_policy = {
      mode: mode ?? 'workspace-write',
      ...(writableRoots.length > 0 ? { writable_roots: writableRoots } : {}),
      ...(network !== undefined ? { network_access: network } : {}),
    };
  } else if (mode !== undefined) {
    config.sandbox_policy = mode;
  }

  const baseURL = text('openai_base_url');
  const apiKey = env.CODEX_API_KEY || undefined;
  return {
    config,
    images: (values.image ?? []).flatMap((list) => list.split(',')).map((path) => image(path, values)),
    outputSchema: values['output-schema'] === undefined ? undefined : outputSchema(values['output-schema']),
    runtime: { ...(baseURL !== undefined ? { baseURL } : {}), ...(apiKey !== undefined ? { apiKey } : {}) },
  };
}

/**
 * `key=value`, the value a TOML literal as Codex reads it: strings, booleans, numbers and
 * lists of them are written as in JSON; a value that is none of these is taken as a bare string.
 */
function configEntry(entry: string): [ConfigKey, unknown] {
  const equals = entry.indexOf('=');
  if (equals <= 0) throw new UsageError(`--config needs key=value, got "${entry}"`);
  const key = entry.slice(0, equals).trim();
  if (!(CONFIG_KEYS as readonly string[]).includes(key))
    throw new UsageError(`--config ${key}: not a setting troupe knows (it knows ${CONFIG_KEYS.join(', ')})`);
  const raw = entry.slice(equals + 1).trim();
  try {
    return [key as ConfigKey, JSON.parse(raw) as unknown];
  } catch {
    return [key as ConfigKey, raw];
  }
}

function image(path: string, values: CodexFlagValues): UserInput {
  const absolute = resolve(path);
  if (!runsOnNats(values) && statSync(absolute, { throwIfNoEntry: false })?.isFile() !== true) throw new UsageError(`--image ${path}: no such file`);
  return { type: 'local_image', path: absolute };
}

/** A JSON Schema file: it must hold one JSON object. */
function outputSchema(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--output-schema ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--output-schema ${file}: not JSON (${(error as Error).message})`);
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new UsageError(`--output-schema ${file}: the schema must be a JSON object`);
  return schema as Record<string, unknown>;
}
