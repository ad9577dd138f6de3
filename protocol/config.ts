import { z } from 'zod';
import { AgentRole, McpServerConfig, ShellEnvironmentPolicy, ToolName } from './common.js';

/**
 * `TROUPE_HOME/config.json`: defaults every session of that home starts with. A session's own
 * config wins where both name the same thing (for MCP servers: the same server name; a
 * session's `shell_environment_policy` replaces the home's as a whole, nothing is merged).
 */
export const HomeConfig = z.object({
  mcp_servers: z.record(z.string(), McpServerConfig).optional(),
  shell_environment_policy: ShellEnvironmentPolicy.optional(),
  project_doc_max_bytes: z.number().int().min(0).optional(),
  /** Roles every session of this home may start (a session's own `agent_roles` win by name). */
  agent_roles: z.record(ToolName, AgentRole).optional(),
});
export type HomeConfig = z.infer<typeof HomeConfig>;
