import { agentTools } from '../agents/tools.js';
import { jobTools } from '../jobs/tools.js';
import { coreTools } from '../tools/index.js';
import type { ToolRegistry } from '../tools/registry.js';

/** The tools of a regular session: the core tools, the sub-agent tools and the agent job tools. */
export function sessionTools(): ToolRegistry {
  const tools = coreTools();
  for (const tool of [...agentTools, ...jobTools]) tools.register(tool);
  return tools;
}
