import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AskForApproval, SandboxMode, type SessionConfig, TroupeError } from '../protocol/index.js';
import { homeConfigPath, loadHomeConfig, sessionDefaults } from '../actors/host/home-config.js';
import { troupeHome } from '../lib/rollout/paths.js';

/** Raised for bad command-line input: printed without a stack trace, exit code 2. */
export class UsageError extends TroupeError {
  override readonly name = 'UsageError';
  override readonly code = 'bad_request';
}

/** Flags shared by the commands that run sessions. */
export const MODEL_FLAGS = {
  model: { type: 'string' },
  'wire-api': { type: 'string' },
} as const;

/** `--profile NAME`: the commands that start sessions take their defaults from that profile of the config file. */
export const PROFILE_FLAG = { profile: { type: 'string' } } as const;

/**
 * The profile the flags or TROUPE_PROFILE choose, once TROUPE_HOME/config.json is known to be
 * good and to have it: a bad file or an unknown profile stops the command before anything
 * starts (main prints the HomeConfigError and exits 2). A gateway (--nats) hosts no sessions:
 * it has no profile.
 */
export function checkedProfile(
  values: { readonly profile?: string | undefined },
  env: NodeJS.ProcessEnv,
  home: string = troupeHome(env),
  gateway = false,
): string | undefined {
  if (gateway) {
    // The sessions run on workers, under their config files and profiles.
    if (values.profile !== undefined) throw new UsageError("--profile: with --nats the sessions take the workers' defaults; start the workers with --profile");
    return undefined;
  }
  const profile = values.profile ?? (env.TROUPE_PROFILE || undefined);
  sessionDefaults(loadHomeConfig(home), homeConfigPath(home), profile);
  return profile;
}

export function wireApiFlag(value: string | undefined): 'responses' | 'chat' | undefined {
  if (value === undefined || value === 'responses' || value === 'chat') return value;
  throw new UsageError(`--wire-api must be "responses" or "chat", got "${value}"`);
}

/** The flags that name session settings, as parsed (all optional). */
export interface SessionFlagValues {
  readonly 'approval-policy'?: string | undefined;
  readonly sandbox?: string | undefined;
  readonly cd?: string | undefined;
  readonly model?: string | undefined;
  readonly nats?: string | undefined;
}

/**
 * The session settings the flags name: only those given, so that a resumed session keeps the
 * rest of what it was created with. `-C` must be a directory here, unless the session runs on
 * a worker (--nats), whose disk this machine cannot see.
 */
export function configFromFlags(values: SessionFlagValues): SessionConfig {
  const config: { -readonly [K in keyof SessionConfig]: SessionConfig[K] } = {};
  if (values['approval-policy'] !== undefined) {
    const policy = AskForApproval.safeParse(values['approval-policy']);
    if (!policy.success) throw new UsageError(`--approval-policy must be one of ${AskForApproval.options.join(', ')}`);
    config.approval_policy = policy.data;
  }
  if (values.sandbox !== undefined) {
    const sandbox = SandboxMode.safeParse(values.sandbox);
    if (!sandbox.success) throw new UsageError(`--sandbox must be one of ${SandboxMode.options.join(', ')}`);
    config.sandbox_policy = sandbox.data;
  }
  if (values.cd !== undefined) {
    const cwd = isAbsolute(values.cd) ? values.cd : resolve(values.cd);
    if (!runsOnNats(values) && statSync(cwd, { throwIfNoEntry: false })?.isDirectory() !== true) throw new UsageError(`-C ${values.cd}: not a directory`);
    config.cwd = cwd;
  }
  if (values.model !== undefined) config.model = values.model;
  return config;
}

/** Whether the session runs on a worker (--nats or TROUPE_NATS_URL), whose disk this machine cannot see. */
export function runsOnNats(values: Pick<SessionFlagValues, 'nats'>): boolean {
  return (values.nats ?? process.env.TROUPE_NATS_URL ?? '').trim() !== '';
}

export { parseArgs };
