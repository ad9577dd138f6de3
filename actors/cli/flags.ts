import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AskForApproval, SandboxMode, type SessionConfig, TroupeError } from '../../protocol/index.js';

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
