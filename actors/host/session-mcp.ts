import type { EventMsg, McpServerConfig, OpOf } from '../../protocol/index.js';
import { log } from '../../lib/log.js';
import type { McpManager } from '../tools/mcp/index.js';
import type { ToolGateway } from './tool-gateway.js';

/**
 * A session's MCP servers (`mcp_servers`, merged over TROUPE_HOME's): started when the session
 * starts, their tools offered through the session's ToolGateway (again whenever a server's list
 * changes) and the manager kept there until the session closes. Turns and elicitation answers
 * wait for `ready`; a start that fails is a warning, and the session goes on without them.
 */
export class SessionMcp {
  readonly #tools: ToolGateway;
  readonly #emit: (msg: EventMsg) => void;
  #ready: Promise<void> = Promise.resolve();
  #manager: McpManager | null = null;

  constructor(tools: ToolGateway, emit: (msg: EventMsg) => void) {
    this.#tools = tools;
    this.#emit = emit;
  }

  /** Settles once the servers have started, or failed to (at once when there are none). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  start(servers: Readonly<Record<string, McpServerConfig>> | undefined, cwd: string): void {
    if (!servers || Object.keys(servers).length === 0) return;
    const tools = this.#tools;
    // Loaded on first use: most sessions have no MCP servers, and the SDK is not small.
    this.#ready = import('../tools/mcp/index.js')
      .then(({ McpManager }) => McpManager.start(servers, { emit: this.#emit, log }, { cwd, reservedNames: tools.specs().map((s) => s.name) }))
      .then((manager) => {
        this.#manager = manager;
        tools.hold('mcp', manager);
        const refresh = (): void => tools.useTools(manager.tools());
        refresh();
        manager.onToolsChanged(refresh);
      })
      .catch((error: unknown) => {
        this.#emit({ type: 'warning', message: `MCP servers could not start: ${(error as Error).message}` });
      });
  }

  /** The user's answer to an `elicitation_request`; throws when no server of the session asked. */
  resolveElicitation(op: OpOf<'resolve_elicitation'>): void {
    if (!this.#manager) throw new Error(`no MCP server "${op.server}" in this session`);
    this.#manager.resolveElicitation(op.server, op.request_id, op.decision, op.content);
  }
}
