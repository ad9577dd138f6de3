import { z } from 'zod';
import {
  AgentRole,
  AskForApproval,
  McpServerConfig,
  ReasoningEffort,
  ReasoningSummary,
  SandboxMode,
  SandboxPolicyObject,
  ShellEnvironmentPolicy,
  ToolName,
} from './common.js';

/**
 * The `otel` section: where troupe sends its OpenTelemetry traces and log events. Telemetry is
 * off unless this section or the standard OTEL_EXPORTER_OTLP_* environment names an exporter.
 * Unknown keys are an error (a misspelt key would otherwise switch nothing on, silently).
 */
export const OtelConfig = z.strictObject({
  /** `otlp-http` (protobuf), `otlp-http-json`, or `none` (off, whatever the environment says). */
  exporter: z.enum(['otlp-http', 'otlp-http-json', 'none']).optional(),
  /** Base URL of the collector; `/v1/traces` and `/v1/logs` are added. Overrides OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint: z.url({ protocol: /^https?$/ }).optional(),
  /** Headers sent with every export (for example an API key), on top of OTEL_EXPORTER_OTLP_HEADERS. */
  headers: z.record(z.string(), z.string()).optional(),
  /** Goes out as the resource attribute `deployment.environment.name`. */
  environment: z.string().min(1).optional(),
  /** Put the text of user prompts in `troupe.user_prompt` log events (default: only their length). */
  log_user_prompt: z.boolean().optional(),
});
export type OtelConfig = z.infer<typeof OtelConfig>;

/**
 * An object of the config file: unknown keys are refused, and the message says which keys
 * there are (a misspelt key would otherwise change nothing, silently).
 */
function strictSection<S extends z.core.$ZodLooseShape>(shape: S) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown key (expected one of: ${known})` : undefined) });
}

/** `sandbox_policy` in the config file: a mode, or the object form with its keys checked. */
const ConfigSandboxPolicy = z.union([SandboxMode, strictSection(SandboxPolicyObject.shape)], {
  error: `expected one of ${SandboxMode.options.join(', ')}, or an object { mode, writable_roots, network_access, max_processes, max_file_size_bytes }`,
});

/** `mcp_servers` entries in the config file, with their keys checked. */
const ConfigMcpServer = z.union([strictSection(McpServerConfig.options[0].shape), strictSection(McpServerConfig.options[1].shape)], {
  error: 'expected { command, args, env, cwd } (a server troupe starts) or { url, headers } (a server over HTTP)',
});

/**
 * What a session starts with unless it says otherwise: the top level of the config file, and
 * each of its `profiles`. A profile's value replaces the file's as a whole (nothing is merged
 * inside `sandbox_policy` or `shell_environment_policy`).
 */
const SESSION_DEFAULTS = {
  model: z.string().min(1).optional(),
  /** How the model provider is spoken to; read when the process starts (the model client is built then). */
  wire_api: z.enum(['responses', 'chat']).optional(),
  approval_policy: AskForApproval.optional(),
  sandbox_policy: ConfigSandboxPolicy.optional(),
  reasoning_effort: ReasoningEffort.optional(),
  reasoning_summary: ReasoningSummary.optional(),
  shell_environment_policy: ShellEnvironmentPolicy.optional(),
  project_doc_max_bytes: z.number().int().min(0).optional(),
};

export const ConfigProfile = strictSection(SESSION_DEFAULTS);
export type ConfigProfile = z.infer<typeof ConfigProfile>;

/** The settings a profile may hold, in the order `troupe config` shows them. */
export const PROFILE_KEYS = Object.keys(SESSION_DEFAULTS) as (keyof ConfigProfile)[];

/**
 * `TROUPE_HOME/config.json` (PROTOCOL.md, "The config file"). Every level is strict: an
 * unknown key or a bad value refuses the file, with the key path named.
 */
export const HomeConfig = strictSection({
  ...SESSION_DEFAULTS,
  mcp_servers: z.record(z.string(), ConfigMcpServer).optional(),
  /** Roles every session of this home may start (a session's own `agent_roles` win by name). */
  agent_roles: z.record(ToolName, AgentRole).optional(),
  otel: OtelConfig.optional(),
  /** Named sets of defaults, one chosen with `--profile NAME` or TROUPE_PROFILE. */
  profiles: z.record(z.string().min(1), ConfigProfile).optional(),
});
export type HomeConfig = z.infer<typeof HomeConfig>;
