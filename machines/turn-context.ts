import type {
  AgentRole,
  AskForApproval,
  ReasoningEffort,
  ReasoningSummary,
  SandboxPolicy,
  SandboxPolicyObject,
  SessionConfig,
  ShellEnvironmentPolicy,
  TurnOverrides,
} from '../protocol/index.js';

/** The settings a session holds between turns (changed by `override_turn_context`). */
export interface SessionSettings {
  readonly model: string;
  readonly cwd: string;
  readonly approval_policy: AskForApproval;
  readonly sandbox_policy: SandboxPolicyObject;
  readonly effort?: ReasoningEffort | undefined;
  /** The reasoning summary asked of the Responses API; absent or `none`: none is asked for. */
  readonly reasoning_summary?: ReasoningSummary | undefined;
  readonly base_instructions: string;
  readonly developer_instructions?: string | undefined;
  /** The model review threads use (`review_model`); the session's model when absent. */
  readonly review_model?: string | undefined;
  /** Compact when this many tokens are in use; absent: 90% of the model's context window. */
  readonly auto_compact_token_limit?: number | undefined;
  /**
   * The environment of the commands the model runs: the session's policy, else TROUPE_HOME's,
   * else the default. Absent (contexts built by hand): the default policy.
   */
  readonly shell_environment_policy?: ResolvedShellEnvironmentPolicy | undefined;
  /** The tool sets the session's tools come from; its sub-agents need them too. */
  readonly tool_sets?: readonly string[] | undefined;
  /** The roles its `spawn_agent` may start. */
  readonly agent_roles?: Readonly<Record<string, AgentRole>> | undefined;
  /** The role this session plays, when a parent started it as one. */
  readonly agent_role?: string | undefined;
}

/** A `shell_environment_policy` with its defaults filled in (actors/tools/environment-policy.ts applies it). */
export interface ResolvedShellEnvironmentPolicy {
  readonly inherit: 'all' | 'core' | 'none';
  readonly exclude: readonly string[];
  /** Absent: no restriction. */
  readonly include_only?: readonly string[] | undefined;
  readonly set: Readonly<Record<string, string>>;
  readonly ignore_default_excludes: boolean;
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
  return { ...policy, writable_roots: policy.writable_roots ?? [], network_access: policy.network_access ?? false };
}

/**
 * The policy with its defaults filled in, as a new frozen object. Each session gets its own, so
 * its commands' environment is read from the process when its first command runs.
 */
export function normalizeShellEnvironmentPolicy(policy: ShellEnvironmentPolicy | ResolvedShellEnvironmentPolicy | undefined): ResolvedShellEnvironmentPolicy {
  return Object.freeze({
    inherit: policy?.inherit ?? 'all',
    exclude: Object.freeze([...(policy?.exclude ?? [])]),
    ...(policy?.include_only ? { include_only: Object.freeze([...policy.include_only]) } : {}),
    set: Object.freeze({ ...policy?.set }),
    ignore_default_excludes: policy?.ignore_default_excludes ?? false,
  });
}

/** The policy as a session config spells it: what a child session (sub-agent, reviewer) is given. */
export function shellEnvironmentPolicyConfig(policy: ResolvedShellEnvironmentPolicy | undefined): ShellEnvironmentPolicy {
  const resolved = policy ?? normalizeShellEnvironmentPolicy(undefined);
  return {
    inherit: resolved.inherit,
    exclude: [...resolved.exclude],
    ...(resolved.include_only ? { include_only: [...resolved.include_only] } : {}),
    set: { ...resolved.set },
    ignore_default_excludes: resolved.ignore_default_excludes,
  };
}

export function settingsFromConfig(
  config: SessionConfig,
  defaults: {
    model: string;
    cwd: string;
    base_instructions: string;
    /** What TROUPE_HOME/config.json (or its profile) sets; absent: the built-in defaults. */
    approval_policy?: AskForApproval | undefined;
    sandbox_policy?: SandboxPolicy | undefined;
    effort?: ReasoningEffort | undefined;
    reasoning_summary?: ReasoningSummary | undefined;
    shell_environment_policy?: ShellEnvironmentPolicy | undefined;
    /** The roles as resolved (built-ins, home, config); absent: the config's. */
    agent_roles?: Readonly<Record<string, AgentRole>> | undefined;
  },
): SessionSettings {
  return {
    model: config.model ?? defaults.model,
    cwd: config.cwd ?? defaults.cwd,
    approval_policy: config.approval_policy ?? defaults.approval_policy ?? DEFAULT_APPROVAL_POLICY,
    sandbox_policy: normalizeSandboxPolicy(config.sandbox_policy ?? defaults.sandbox_policy),
    effort: config.effort ?? defaults.effort,
    reasoning_summary: config.reasoning_summary ?? defaults.reasoning_summary,
    base_instructions: config.base_instructions ?? defaults.base_instructions,
    developer_instructions: config.developer_instructions,
    review_model: config.review_model,
    auto_compact_token_limit: config.auto_compact_token_limit,
    shell_environment_policy: normalizeShellEnvironmentPolicy(config.shell_environment_policy ?? defaults.shell_environment_policy),
    tool_sets: config.tool_sets,
    agent_roles: defaults.agent_roles ?? config.agent_roles,
    agent_role: config.agent_role,
  };
}

/** Apply overrides (from `user_turn` or `override_turn_context`) to settings. */
export function applyOverrides(settings: SessionSettings, overrides: TurnOverrides): SessionSettings {
  return {
    ...settings,
    model: overrides.model ?? settings.model,
    cwd: overrides.cwd ?? settings.cwd,
    approval_policy: overrides.approval_policy ?? settings.approval_policy,
    sandbox_policy: overrides.sandbox_policy !== undefined ? normalizeSandboxPolicy(overrides.sandbox_policy) : settings.sandbox_policy,
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
