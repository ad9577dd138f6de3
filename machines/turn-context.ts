import type {
  AskForApproval,
  ReasoningEffort,
  SandboxPolicy,
  SandboxPolicyObject,
  SessionConfig,
  TurnOverrides,
} from '../protocol/index.js';

/** The settings a session holds between turns (changed by `override_turn_context`). */
export interface SessionSettings {
  readonly model: string;
  readonly cwd: string;
  readonly approval_policy: AskForApproval;
  readonly sandbox_policy: SandboxPolicyObject;
  readonly effort?: ReasoningEffort | undefined;
  readonly base_instructions: string;
  readonly developer_instructions?: string | undefined;
  /** The model review threads use (`review_model`); the session's model when absent. */
  readonly review_model?: string | undefined;
  /** Compact when this many tokens are in use; absent: 90% of the model's context window. */
  readonly auto_compact_token_limit?: number | undefined;
}

/** Everything a turn runs under. Built once per turn and never changed while the turn runs. */
export interface TurnContext extends SessionSettings {
  readonly turn_id: string;
  readonly final_output_json_schema?: Record<string, unknown> | undefined;
}

export const DEFAULT_APPROVAL_POLICY: AskForApproval = 'on-request';

/** The string form of a sandbox policy is shorthand for the object form with defaults. */
export function normalizeSandboxPolicy(policy: SandboxPolicy | undefined): SandboxPolicyObject {
  if (policy === undefined) return { mode: 'workspace-write', writable_roots: [], network_access: false };
  if (typeof policy === 'string') return { mode: policy, writable_roots: [], network_access: false };
  return { mode: policy.mode, writable_roots: policy.writable_roots ?? [], network_access: policy.network_access ?? false };
}

export function settingsFromConfig(
  config: SessionConfig,
  defaults: { model: string; cwd: string; base_instructions: string },
): SessionSettings {
  return {
    model: config.model ?? defaults.model,
    cwd: config.cwd ?? defaults.cwd,
    approval_policy: config.approval_policy ?? DEFAULT_APPROVAL_POLICY,
    sandbox_policy: normalizeSandboxPolicy(config.sandbox_policy),
    effort: config.effort,
    base_instructions: config.base_instructions ?? defaults.base_instructions,
    developer_instructions: config.developer_instructions,
    review_model: config.review_model,
    auto_compact_token_limit: config.auto_compact_token_limit,
  };
}

/** Apply overrides (from `user_turn` or `override_turn_context`) to settings. */
export function applyOverrides(settings: SessionSettings, overrides: TurnOverrides): SessionSettings {
  return {
    ...settings,
    model: overrides.model ?? settings.model,
    cwd: overrides.cwd ?? settings.cwd,
    approval_policy: overrides.approval_policy ?? settings.approval_policy,
    sandbox_policy:
      overrides.sandbox_policy !== undefined ? normalizeSandboxPolicy(overrides.sandbox_policy) : settings.sandbox_policy,
    effort: overrides.effort ?? settings.effort,
  };
}

export function buildTurnContext(
  settings: SessionSettings,
  turnId: string,
  overrides: TurnOverrides & { final_output_json_schema?: Record<string, unknown> | undefined },
): TurnContext {
  return Object.freeze({
    ...applyOverrides(settings, overrides),
    turn_id: turnId,
    final_output_json_schema: overrides.final_output_json_schema,
  });
}
