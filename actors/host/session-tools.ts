import { agentTools } from '../agents/tools.js';
import { coreTools } from '../tools/index.js';
import type { ToolRegistry } from '../tools/registry.js';

/** The tools of a regular session: the core tools and the sub-agent tools. */
export function sessionTools(): ToolRegistry {
  const tools = coreTools();
  for (const tool of agentTools) tools.register(tool);
  return tools;
}
