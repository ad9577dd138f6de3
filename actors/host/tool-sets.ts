import type { SessionConfig } from '../../protocol/index.js';
import { sanitizeNamePart, SERVER_TOOL_SEPARATOR } from '../tools/mcp/tool-names.js';
import { ToolRegistry } from '../tools/registry.js';
import type { ToolHandler } from '../tools/tool.js';
import { userToolHandler, type Tool } from '../tools/user-tool.js';
import { TroupeError } from '../../protocol/index.js';

/** Raised when a session's tools cannot be put together, or a tool set cannot be added; the message names the tools involved. */
export class ToolSetError extends TroupeError {
  override readonly name = 'ToolSetError';
  override readonly code = 'bad_request';
}

/** A library session's own tools are a set named with this prefix and a random id; a resumed session gets a new one. */
export const LIBRARY_SET_PREFIX = 'library-';

interface UserTool {
  readonly handler: ToolHandler<unknown>;
  /** Where it came from, for messages: `tool set "x"`, or `the runtime's tools`. */
  readonly origin: string;
}

/**
 * The tools of a host's sessions: the built-ins, the developer's tools every session gets
 * (`createRuntime({ tools })`), and named tool sets a session asks for in `tool_sets` (the
 * modules a worker loads with `--tools`, a library session's own tools). A name is checked
 * against the built-ins when its tool is added, against the other sets and the session's MCP
 * servers when a session puts its tools together.
 */
export class ToolSets {
  /** The built-in tools (core, sub-agent and job tools). */
  readonly builtins: ToolRegistry;
  readonly #everySession: readonly UserTool[];
  readonly #sets = new Map<string, readonly UserTool[]>();

  constructor(builtins: ToolRegistry, everySession: readonly Tool[] = []) {
    this.builtins = builtins;
    this.#everySession = this.#checked(everySession, "the runtime's tools");
  }

  /** Make `tools` available to sessions that name `name` in `tool_sets`. */
  add(name: string, tools: readonly Tool[]): void {
    if (this.#sets.has(name)) throw new ToolSetError(`tool set "${name}" is already loaded`);
    const origin = `tool set "${name}"`;
    const checked = this.#checked(tools, origin);
    for (const tool of checked) {
      const same = this.#everySession.find((t) => t.handler.name === tool.handler.name);
      if (same) throw new ToolSetError(`tool "${tool.handler.name}" of ${origin} has the name of a tool of ${same.origin}`);
    }
    this.#sets.set(name, checked);
  }

  remove(name: string): void {
    this.#sets.delete(name);
  }

  has(name: string): boolean {
    return this.#sets.has(name);
  }

  /**
   * The tools of a regular session: the built-ins, the tools of every session, the sets it
   * names. A set this host lacks, two sets with a tool of the same name, or a tool named like
   * the tools of one of the session's MCP servers (`server__tool`) refuses the session.
   */
  forSession(config: Pick<SessionConfig, 'tool_sets'>, mcpServers: Iterable<string>): ToolRegistry {
    const chosen: UserTool[] = [...this.#everySession];
    for (const name of new Set(config.tool_sets ?? [])) {
      const set = this.#sets.get(name);
      if (!set) {
        const loaded = [...this.#sets.keys()].filter((n) => !n.startsWith(LIBRARY_SET_PREFIX));
        const hint = name.startsWith(LIBRARY_SET_PREFIX)
          ? ': it held the tools the session was opened with; give them again (resumeSession(target, config, { tools }))'
          : ` (it has: ${loaded.length > 0 ? loaded.join(', ') : 'none'}; load it with troupe worker --tools)`;
        throw new ToolSetError(`the session needs tool set "${name}", which this host does not have${hint}`);
      }
      for (const tool of set) {
        const same = chosen.find((t) => t.handler.name === tool.handler.name);
        if (same) throw new ToolSetError(`tool "${tool.handler.name}" is in both ${same.origin} and ${tool.origin}`);
        chosen.push(tool);
      }
    }
    for (const server of mcpServers) {
      const prefix = `${sanitizeNamePart(server)}${SERVER_TOOL_SEPARATOR}`;
      const clash = chosen.find((t) => t.handler.name.startsWith(prefix));
      if (clash) throw new ToolSetError(`tool "${clash.handler.name}" of ${clash.origin} is named like the tools of MCP server "${server}" (${prefix}<tool>)`);
    }
    return chosen.length === 0 ? this.builtins : this.builtins.extend(chosen.map((t) => t.handler));
  }

  #checked(tools: readonly Tool[], origin: string): UserTool[] {
    const names = new Set<string>();
    return tools.map((tool) => {
      if (this.builtins.get(tool.name)) throw new ToolSetError(`tool "${tool.name}" of ${origin} has the name of the built-in tool ${tool.name}`);
      if (names.has(tool.name)) throw new ToolSetError(`${origin} has two tools named "${tool.name}"`);
      names.add(tool.name);
      return { handler: userToolHandler(tool), origin };
    });
  }
}
