import { z } from 'zod';
import { McpServerConfig } from './common.js';

/**
 * `TROUPE_HOME/config.json`: defaults every session of that home starts with. A session's own
 * config wins where both name the same thing (for MCP servers: the same server name).
 */
export const HomeConfig = z.object({
  mcp_servers: z.record(z.string(), McpServerConfig).optional(),
});
export type HomeConfig = z.infer<typeof HomeConfig>;
