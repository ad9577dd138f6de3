import { performance } from 'node:perf_hooks';
import type { ElicitRequest, ElicitResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { EventMsg, McpServerConfig } from '../../../protocol/index.js';
import type { Logger } from '../../../lib/log.js';
import { planApproval, type ApprovalNeed } from '../orchestrator.js';
import type { ApprovalMemory, SessionResource, ToolContext, ToolHandler, ToolOutput, ToolPlan } from '../tool.js';
import { McpConnection, describeError } from './connection.js';
import { UnknownElicitationError } from './errors.js';
import { resultText } from './result-text.js';
import { assignToolNames, type McpToolRef } from './tool-names.js';

/** How long a server has to start, initialize and list its tools. */
export const DEFAULT_MCP_START_TIMEOUT_MS = 30_000;
/** How long one tool call may take (time spent waiting on the user for an elicitation excluded). */
export const DEFAULT_MCP_CALL_TIMEOUT_MS = 120_000;

export interface McpManagerHooks {
  /** Session-level events: `warning` and `elicitation_request`. */
  emit(msg: EventMsg): void;
  readonly log: Logger;
}

export interface McpManagerOptions {
  /** Where stdio servers without a `cwd` start, and what a relative `cwd` is resolved against (the session's cwd). */
  readonly cwd?: string | undefined;
  readonly startTimeoutMs?: number | undefined;
  readonly callTimeoutMs?: number | undefined;
  /** Model-facing names already used by other tools, which MCP tools must not take. */
  readonly reservedNames?: Iterable<string> | undefined;
}

export type ElicitationDecision = 'accept' | 'decline' | 'cancel';

/** Arguments pass through untouched: the model saw the server's JSON schema, and the server validates. */
const PassThroughArgs = z.record(z.string(), z.unknown());
type McpArgs = z.infer<typeof PassThroughArgs>;

interface PendingElicitation {
  readonly resolve: (result: ElicitResult) => void;
}

/**
 * A session's MCP servers: started together when the session starts, their tools offered to
 * the model as `<server>__<tool>`, closed with the session (it is a SessionResource).
 */
export class McpManager implements SessionResource {
  readonly #connections = new Map<string, McpConnection>();
  readonly #hooks: McpManagerHooks;
  readonly #startTimeoutMs: number;
  readonly #callTimeoutMs: number;
  readonly #reserved: ReadonlySet<string>;
  readonly #pending = new Map<string, PendingElicitation>();
  readonly #listeners = new Set<() => void>();
  #names = new Map<string, McpToolRef>();
  #disposed = false;

  private constructor(hooks: McpManagerHooks, options: McpManagerOptions) {
    this.#hooks = hooks;
    this.#startTimeoutMs = options.startTimeoutMs ?? DEFAULT_MCP_START_TIMEOUT_MS;
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_MCP_CALL_TIMEOUT_MS;
    this.#reserved = new Set(options.reservedNames ?? []);
  }

  /**
   * Start every server in parallel. One that fails (cannot spawn, exits, does not answer in
   * time, refuses the handshake) is reported with a `warning` naming it and left out; the
   * others are used. Never rejects because of a server.
   */
  static async start(servers: Readonly<Record<string, McpServerConfig>>, hooks: McpManagerHooks, options: McpManagerOptions = {}): Promise<McpManager> {
    const manager = new McpManager(hooks, options);
    const cwd = options.cwd ?? process.cwd();
    await Promise.all(
      Object.entries(servers).map(async ([name, config]) => {
        const connection = new McpConnection(name, config, cwd, manager.#connectionHooks(name));
        try {
          await connection.connect(manager.#startTimeoutMs);
          manager.#connections.set(name, connection);
        } catch (error) {
          hooks.log.warn({ err: error, server: name }, 'MCP server failed to start');
          hooks.emit({ type: 'warning', message: describeError(error) });
        }
      }),
    );
    manager.#rename();
    return manager;
  }

  /** Names of the servers that started. */
  get servers(): string[] {
    return [...this.#connections.keys()].sort();
  }

  /** Process id of a stdio server while it runs. */
  pid(server: string): number | null {
    return this.#connections.get(server)?.pid ?? null;
  }

  /** The tools of every running server, as handlers for the session's ToolRegistry. */
  tools(): ToolHandler<unknown>[] {
    const handlers: ToolHandler<unknown>[] = [];
    for (const [name, ref] of this.#names) {
      const tool = this.#connections.get(ref.server)?.tools.find((t) => t.name === ref.tool);
      if (tool) handlers.push(this.#handler(name, ref.server, tool));
    }
    return handlers;
  }

  /** Called whenever `tools()` would return something different; returns the unsubscribe. */
  onToolsChanged(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Answer a server's `elicitation_request` (the `resolve_elicitation` op). */
  resolveElicitation(server: string, requestId: string | number, decision: ElicitationDecision, content?: Record<string, unknown>): void {
    const key = elicitationKey(server, requestId);
    const pending = this.#pending.get(key);
    if (!pending) {
      throw new UnknownElicitationError(`no elicitation request ${JSON.stringify(requestId)} from MCP server "${server}" is waiting for an answer`);
    }
    this.#pending.delete(key);
    pending.resolve(decision === 'accept' ? { action: 'accept', content: (content ?? {}) as NonNullable<ElicitResult['content']> } : { action: decision });
  }

  /** Close every client; stdio servers are stopped (stdin closed, then SIGTERM, then SIGKILL). */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const pending of this.#pending.values()) pending.resolve({ action: 'cancel' });
    this.#pending.clear();
    this.#listeners.clear();
    const results = await Promise.allSettled([...this.#connections.values()].map((c) => c.close()));
    for (const result of results) {
      if (result.status === 'rejected') this.#hooks.log.warn({ err: result.reason }, 'an MCP server did not close cleanly');
    }
  }

  #connectionHooks(server: string): ConstructorParameters<typeof McpConnection>[3] {
    return {
      log: this.#hooks.log,
      onToolsChanged: () => {
        if (this.#disposed || !this.#connections.has(server)) return;
        this.#rename();
        for (const listener of [...this.#listeners]) listener();
      },
      onElicitation: (requestId, params, signal) => this.#elicit(server, requestId, params, signal),
      onLost: (reason) => {
        this.#hooks.log.warn({ server, reason }, 'MCP server connection lost');
        this.#hooks.emit({ type: 'warning', message: `MCP server "${server}" stopped: ${reason}; it will be restarted on its next tool call` });
      },
    };
  }

  #rename(): void {
    const refs: McpToolRef[] = [];
    for (const [server, connection] of this.#connections) for (const tool of connection.tools) refs.push({ server, tool: tool.name });
    this.#names = assignToolNames(refs, this.#reserved);
  }

  #elicit(server: string, requestId: string | number, params: ElicitRequest['params'], signal: AbortSignal): Promise<ElicitResult> {
    // Only form mode is declared in our capabilities; anything else is declined.
    if (!('requestedSchema' in params) || this.#disposed) return Promise.resolve({ action: 'decline' });
    const key = elicitationKey(server, requestId);
    // A second question under the id of one still open: the user could answer only one of
    // them, and the other would wait for ever. The second is declined at once.
    if (this.#pending.has(key)) return Promise.resolve({ action: 'decline' });
    return new Promise<ElicitResult>((resolve) => {
      const onAbort = (): void => {
        if (this.#pending.get(key)?.resolve === settle) this.#pending.delete(key);
        resolve({ action: 'cancel' });
      };
      const settle = (result: ElicitResult): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      };
      this.#pending.set(key, { resolve: settle });
      signal.addEventListener('abort', onAbort, { once: true });
      this.#hooks.emit({
        type: 'elicitation_request',
        server,
        request_id: requestId,
        message: params.message,
        requested_schema: params.requestedSchema,
      });
    });
  }

  #handler(name: string, server: string, tool: Tool): ToolHandler<unknown> {
    const readOnly = tool.annotations?.readOnlyHint === true;
    const handler: ToolHandler<McpArgs> = {
      name,
      description: tool.description ?? tool.title ?? `Tool ${tool.name} of the MCP server ${server}.`,
      args: PassThroughArgs,
      parameters: modelParameters(tool.inputSchema),
      plan: (args: McpArgs, ctx: ToolContext, approvals: ApprovalMemory): ToolPlan => {
        const need: ApprovalNeed =
          ctx.turn.approval_policy !== 'untrusted' || readOnly
            ? { kind: 'none' }
            : {
                kind: 'ask',
                request: {
                  type: 'exec',
                  command: ['mcp', server, tool.name],
                  cwd: ctx.turn.cwd,
                  reason: `MCP tool call with arguments ${JSON.stringify(args)}`,
                },
                approvalKey: `mcp:${JSON.stringify([server, tool.name])}`,
              };
        // MCP servers run outside our sandbox, so there is no sandbox to speak of either way.
        return planApproval(need, approvals, false);
      },
      run: (args: McpArgs, ctx: ToolContext): Promise<ToolOutput> => this.#call(server, tool.name, args, ctx),
    };
    return handler;
  }

  async #call(server: string, tool: string, args: McpArgs, ctx: ToolContext): Promise<ToolOutput> {
    const started = performance.now();
    const elapsed = (): number => Math.max(0, Math.round(performance.now() - started));
    ctx.emit({ type: 'mcp_tool_call_begin', call_id: ctx.callId, server, tool, arguments: args });
    const connection = this.#connections.get(server);
    try {
      if (!connection || this.#disposed) throw new Error('the server is not available in this session');
      const result = await connection.call(tool, args, ctx.signal, this.#callTimeoutMs, this.#startTimeoutMs);
      ctx.emit({ type: 'mcp_tool_call_end', call_id: ctx.callId, result, duration_ms: elapsed() });
      return { text: resultText(result), success: result.isError !== true };
    } catch (error) {
      const message = describeError(error);
      ctx.emit({ type: 'mcp_tool_call_end', call_id: ctx.callId, error: message, duration_ms: elapsed() });
      return { text: `The MCP tool ${tool} of server ${server} failed: ${message}`, success: false };
    }
  }
}

function elicitationKey(server: string, requestId: string | number): string {
  return `${server}\u0000${JSON.stringify(requestId)}`;
}

/** The server's input schema as the model gets it; `type: "object"` is what the providers require. */
function modelParameters(schema: Tool['inputSchema']): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
  return { ...rest, type: 'object', properties: schema.properties ?? {} };
}
