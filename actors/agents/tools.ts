import { CloseAgentArgs, ListAgentsArgs, SendInputArgs, SpawnAgentArgs, WaitAgentArgs } from '../../protocol/index.js';
import { defineTool, type ToolContext, type ToolHandler, type AgentControl } from '../tools/tool.js';
import type { ToolOutput } from '../../machines/tool-plan.js';
import { AgentError } from './supervisor.js';
import { describeRoles } from './roles.js';
import type { AgentRole } from '../../protocol/index.js';

export const DEFAULT_WAIT_MS = 30_000;
export const MIN_WAIT_MS = 100;
export const MAX_WAIT_MS = 600_000;

/** Run an agent operation and turn its result, or its refusal, into the tool output. */
async function withAgents(ctx: ToolContext, act: (agents: AgentControl) => Promise<unknown>): Promise<ToolOutput> {
  if (!ctx.agents) return { text: 'sub-agents are not available in this session', success: false };
  try {
    return { text: JSON.stringify(await act(ctx.agents)), success: true };
  } catch (error) {
    if (error instanceof AgentError) return { text: error.message, success: false };
    throw error;
  }
}

const SPAWN_DESCRIPTION =
  'Start a sub-agent on a task and return at once with its agent_id and nickname. The agent works in parallel in its own conversation (it does not see yours unless fork_context is true) with the same working directory and policies. Collect its result with wait_agent; close it with close_agent when done.';

/** spawn_agent as a session with these roles offers it: the description lists them. Made once per set of roles. */
export function spawnAgentToolFor(roles: Readonly<Record<string, AgentRole>>): ToolHandler<unknown> {
  const description = `${SPAWN_DESCRIPTION}\n\nagent_type picks the kind of agent (absent: one like you, without a role):\n${describeRoles(roles)}`;
  let handler = spawnHandlers.get(description);
  if (!handler) {
    handler = defineTool({ ...spawnAgentTool, description });
    spawnHandlers.set(description, handler);
  }
  return handler;
}

const spawnHandlers = new Map<string, ToolHandler<unknown>>();

export const spawnAgentTool: ToolHandler<unknown> = defineTool({
  name: 'spawn_agent',
  description: SPAWN_DESCRIPTION,
  args: SpawnAgentArgs,
  run: (args, ctx) =>
    withAgents(ctx, async (agents) => {
      const spawned = await agents.spawn(
        { message: args.message, agentType: args.agent_type, forkContext: args.fork_context ?? false, model: args.model },
        ctx,
      );
      return { agent_id: spawned.agent_id, nickname: spawned.nickname };
    }),
});

export const sendInputTool: ToolHandler<unknown> = defineTool({
  name: 'send_input',
  description: 'Send a message to one of your sub-agents. With interrupt true, its current turn is stopped first; otherwise the message joins its work.',
  args: SendInputArgs,
  run: (args, ctx) =>
    withAgents(ctx, async (agents) => {
      const agent = await agents.sendInput(args.agent_id, args.message, args.interrupt ?? false);
      return { agent_id: agent.agent_id, delivered: true, status: agent.status };
    }),
});

export const waitAgentTool: ToolHandler<unknown> = defineTool({
  name: 'wait_agent',
  description: `Wait until the given sub-agents finish (return_when "all", the default) or until one of them does ("any"), at most timeout_ms (default ${DEFAULT_WAIT_MS}). Returns each agent's status and final message.`,
  args: WaitAgentArgs,
  run: (args, ctx) =>
    withAgents(ctx, (agents) =>
      agents.wait(args.agent_ids, {
        returnWhen: args.return_when ?? 'all',
        timeoutMs: Math.min(MAX_WAIT_MS, Math.max(MIN_WAIT_MS, args.timeout_ms ?? DEFAULT_WAIT_MS)),
        signal: ctx.signal,
      }),
    ),
});

export const closeAgentTool: ToolHandler<unknown> = defineTool({
  name: 'close_agent',
  description: 'Close a sub-agent and every agent it started; returns its final status.',
  args: CloseAgentArgs,
  run: (args, ctx) => withAgents(ctx, (agents) => agents.close(args.agent_id)),
});

export const listAgentsTool: ToolHandler<unknown> = defineTool({
  name: 'list_agents',
  description:
    'List the live sub-agents of your whole agent tree (yours and those of other agents): id, nickname, role, status, depth and the session that started each.',
  args: ListAgentsArgs,
  run: (args, ctx) => withAgents(ctx, async (agents) => ({ agents: await agents.list(args.id_prefix) })),
});

export const agentTools: readonly ToolHandler<unknown>[] = [spawnAgentTool, sendInputTool, waitAgentTool, closeAgentTool, listAgentsTool];
