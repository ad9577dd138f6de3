import { existsSync } from 'node:fs';
import { PROFILE_KEYS, type ConfigProfile, type HomeConfig } from '../protocol/index.js';
import { DEFAULT_APPROVAL_POLICY } from '../machines/turn-context.js';
import { homeConfigPath, layeredDefaults, loadHomeConfig, type Sourced } from '../actors/host/home-config.js';
import { DEFAULT_PROJECT_DOC_MAX_BYTES } from '../lib/prompts/project-docs.js';
import { troupeHome } from '../lib/rollout/paths.js';
import { DEFAULT_MODEL } from '../actors/runtime.js';
import { checkedProfile, MODEL_FLAGS, parseArgs, PROFILE_FLAG, UsageError, wireApiFlag } from './flags.js';

/** What a session starts with when nothing names a setting; null: nothing is sent. */
const BUILT_IN: { readonly [K in keyof ConfigProfile]-?: unknown } = {
  model: DEFAULT_MODEL,
  wire_api: 'responses',
  approval_policy: DEFAULT_APPROVAL_POLICY,
  sandbox_policy: 'workspace-write',
  reasoning_effort: null,
  reasoning_summary: null,
  shell_environment_policy: { inherit: 'all' },
  project_doc_max_bytes: DEFAULT_PROJECT_DOC_MAX_BYTES,
};

/** The sections of the file that are not session defaults, and what there is without them. */
const SECTIONS: readonly (readonly [keyof HomeConfig, unknown])[] = [
  ['mcp_servers', {}],
  ['agent_roles', {}],
  ['otel', null],
];

/**
 * `troupe config [--profile NAME] [--json]`: each setting a new session of this machine starts
 * with, and where it came from (a flag, the environment, a profile, the config file, or the
 * built-in default). The same precedence the sessions get: flag > environment > profile >
 * config file > default.
 */
export async function runConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({ args: [...argv], strict: true, options: { ...MODEL_FLAGS, ...PROFILE_FLAG, json: { type: 'boolean', default: false } } });
  const home = troupeHome(env);
  const path = homeConfigPath(home);
  const profile = checkedProfile(values, env, home);
  const file = loadHomeConfig(home);
  const layered = layeredDefaults(file, path, profile);
  const pinned: Partial<Record<keyof ConfigProfile, Sourced<unknown>>> = {};
  const envWire = env.TROUPE_WIRE_API || undefined;
  if (envWire !== undefined && envWire !== 'responses' && envWire !== 'chat')
    throw new UsageError(`TROUPE_WIRE_API must be "responses" or "chat", got "${envWire}"`);
  if (values.model !== undefined) pinned.model = { value: values.model, source: 'flag --model' };
  else if (env.TROUPE_MODEL) pinned.model = { value: env.TROUPE_MODEL, source: 'env TROUPE_MODEL' };
  const wireFlag = wireApiFlag(values['wire-api']);
  if (wireFlag !== undefined) pinned.wire_api = { value: wireFlag, source: 'flag --wire-api' };
  else if (envWire !== undefined) pinned.wire_api = { value: envWire, source: 'env TROUPE_WIRE_API' };

  const settings: Record<string, Sourced<unknown>> = {};
  for (const key of PROFILE_KEYS) settings[key] = pinned[key] ?? layered[key] ?? { value: BUILT_IN[key], source: 'default' };
  for (const [key, none] of SECTIONS) settings[key] = file[key] !== undefined ? { value: file[key], source: path } : { value: none, source: 'default' };

  const profileSource = values.profile !== undefined ? 'flag --profile' : profile !== undefined ? 'env TROUPE_PROFILE' : null;
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ file: path, file_exists: existsSync(path), profile: profile ?? null, profile_source: profileSource, settings })}\n`,
    );
    return 0;
  }
  const lines = [
    `config file: ${path}${existsSync(path) ? '' : ' (none)'}`,
    `profile: ${profile === undefined ? '(none)' : `${profile} (${profileSource})`}`,
    '',
    ...Object.entries(settings).map(([key, { value, source }]) => `${key.padEnd(26)}${show(value).padEnd(30)} ${source}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function show(value: unknown): string {
  if (value === null) return '(none)';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
