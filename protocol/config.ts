import { z } from 'zod';
import { AgentRole, McpServerConfig, ShellEnvironmentPolicy, ToolName } from './common.js';

/**
 * `TROUPE_HOME/config.json`: defaults every session of that home starts with. A session's own
 * config wins where both name the same thing (for MCP servers: the same server name; a
 * session's `shell_environment_policy` replaces the home's as a whole, nothing is merged).
 */
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

export const HomeConfig = z.object({
  mcp_servers: z.record(z.string(), McpServerConfig).optional(),
  shell_environment_policy: ShellEnvironmentPolicy.optional(),
  project_doc_max_bytes: z.number().int().min(0).optional(),
  /** Roles every session of this home may start (a session's own `agent_roles` win by name). */
  agent_roles: z.record(ToolName, AgentRole).optional(),
  otel: OtelConfig.optional(),
});
export type HomeConfig = z.infer<typeof HomeConfig>;
