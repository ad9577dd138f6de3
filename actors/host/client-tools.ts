import { z } from 'zod';
import type { ClientToolSpec } from '../../protocol/index.js';
import { SERVER_TOOL_SEPARATOR, sanitizeNamePart } from '../tools/mcp/tool-names.js';
import type { ToolRegistry } from '../tools/registry.js';
import { defineTool, type ToolHandler } from '../tools/tool.js';
import { TroupeError } from '../../protocol/index.js';

/** A client tool whose name is taken; the message names both. */
export class ClientToolError extends TroupeError {
  override readonly name = 'ClientToolError';
  override readonly code = 'bad_request';
}

/** A client tool's arguments: any JSON object (the client checks them against its own schema). */
const ClientToolArgs = z.record(z.string(), z.unknown());

/**
 * A tool the client answers (`client_tools`): its plan hands the call to the client, and the call
 * waits in the ToolCallMachine's `awaitingClient` state until `client_tool_output` arrives; that
 * answer is the output `execute` returns (ToolGateway.execute), so `run` is never reached then.
 */
function clientTool(spec: ClientToolSpec): ToolHandler<unknown> {
  return defineTool({
    name: spec.name,
    description: spec.description,
    args: ClientToolArgs,
    parameters: spec.parameters,
    plan: (args) => ({ kind: 'client', arguments: args }),
    run: async () => ({ text: `client tool ${spec.name} has no answer from its client`, success: false }),
  });
}

/**
 * `tools` plus the session's client tools. A name the session's tools already have, or one in the
 * name space of one of its MCP servers (`<server>__<tool>`), is refused here, naming both: the
 * session is not created.
 */
export function withClientTools(
  tools: ToolRegistry,
  specs: readonly ClientToolSpec[] | undefined,
  mcpServers: Iterable<string>,
  builtins: Pick<ToolRegistry, 'get'> = tools,
): ToolRegistry {
  if (!specs || specs.length === 0) return tools;
  const servers = [...mcpServers];
  for (const spec of specs) {
    if (tools.get(spec.name))
      throw new ClientToolError(`client_tools: "${spec.name}" has the name of the ${builtins.get(spec.name) ? 'built-in ' : ''}tool ${spec.name}`);
    const server = servers.find((s) => spec.name.startsWith(`${sanitizeNamePart(s)}${SERVER_TOOL_SEPARATOR}`));
    if (server !== undefined) {
      throw new ClientToolError(
        `client_tools: "${spec.name}" clashes with the tools of MCP server "${server}" (named ${sanitizeNamePart(server)}${SERVER_TOOL_SEPARATOR}<tool>)`,
      );
    }
  }
  return tools.extend(specs.map(clientTool));
}
