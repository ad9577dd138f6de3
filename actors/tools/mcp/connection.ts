import { isAbsolute, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { ElicitRequestSchema, type CallToolResult, type ElicitRequest, type ElicitResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { McpServerConfig } from '../../../protocol/index.js';
import type { Logger } from '../../../lib/log.js';
import { coreEnvironment } from '../environment-policy.js';
import { McpCallError, McpStartError } from './errors.js';

/** The largest delay a Node timer takes: the SDK's own request timeout is pushed out of the way. */
const NO_SDK_TIMEOUT = 2_147_483_647;
/** How much of a stdio server's stderr is kept to explain why it failed. */
const STDERR_TAIL_CHARS = 2_000;

export interface ConnectionHooks {
  readonly log: Logger;
  /** The server's tool list changed (a `tools/list_changed` notification, or a reconnect). */
  onToolsChanged(): void;
  /** The server asks the user for input; resolves to the user's answer. */
  onElicitation(requestId: string | number, params: ElicitRequest['params'], signal: AbortSignal): Promise<ElicitResult>;
  /** The connection ended without us closing it (the server exited or the HTTP session ended). */
  onLost(reason: string): void;
}

/**
 * A call timeout that stops counting while the user is being asked something: an elicitation
 * the server sends during a call is the user's time, not the server's. Only the calls in flight
 * when a question comes are held by it (McpConnection's elicitation handler).
 */
class PausableDeadline {
  readonly #controller = new AbortController();
  #remaining: number;
  #startedAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #holds = 0;

  constructor(ms: number) {
    this.#remaining = ms;
    this.#start();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Stop the clock while a question is open (several may be at once: it runs again after the last). */
  hold(): void {
    if (this.#holds++ > 0 || !this.#timer) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#remaining -= Date.now() - this.#startedAt;
  }

  release(): void {
    if (this.#holds === 0 || --this.#holds > 0) return;
    this.#start();
  }

  #start(): void {
    if (this.#timer || this.#controller.signal.aborted) return;
    this.#startedAt = Date.now();
    this.#timer = setTimeout(() => this.#controller.abort(), Math.max(0, this.#remaining));
  }

  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/**
 * One configured MCP server, through the official SDK client: stdio servers are spawned by the
 * SDK's StdioClientTransport, HTTP ones reached with StreamableHTTPClientTransport. If the
 * server goes away, the connection is marked lost and the next call connects again.
 */
export class McpConnection {
  readonly name: string;
  readonly #config: McpServerConfig;
  readonly #cwd: string;
  readonly #hooks: ConnectionHooks;
  #client: Client | null = null;
  #transport: Transport | null = null;
  #tools: readonly Tool[] = [];
  #stderrTail = '';
  #closed = false;
  #connecting: Promise<void> | null = null;
  readonly #deadlines = new Set<PausableDeadline>();
  /**
   * Aborted when the transport itself fails in a way that dooms every call in flight (a message
   * over its size limit), with the reason: the SDK would only say "Connection closed", and only
   * once the server it is stopping has exited.
   */
  #transportFailure = new AbortController();

  constructor(name: string, config: McpServerConfig, cwd: string, hooks: ConnectionHooks) {
    this.name = name;
    this.#config = config;
    this.#cwd = cwd;
    this.#hooks = hooks;
  }

  get tools(): readonly Tool[] {
    return this.#tools;
  }

  /** The stdio server's process id while it runs (null for HTTP servers, or when not running). */
  get pid(): number | null {
    return this.#transport instanceof StdioClientTransport ? this.#transport.pid : null;
  }

  /** Connect, initialize and list the tools, all within `timeoutMs`. */
  connect(timeoutMs: number): Promise<void> {
    this.#connecting ??= this.#connect(timeoutMs).finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #connect(timeoutMs: number): Promise<void> {
    if (this.#closed) throw new McpStartError(this.name, 'the session is closing');
    this.#stderrTail = '';
    const client = new Client(
      { name: 'troupe', version: '0.1.0' },
      {
        capabilities: { elicitation: { form: {} } },
        listChanged: {
          tools: {
            // The SDK's own refresh reads the first page only: every page is read here, as at start.
            autoRefresh: false,
            onChanged: () => {
              listAllTools(client, { timeout: NO_SDK_TIMEOUT }).then(
                (tools) => {
                  if (this.#client !== client) return;
                  this.#tools = tools;
                  this.#hooks.onToolsChanged();
                },
                (error: unknown) => this.#hooks.log.warn({ err: error, server: this.name }, 'could not refresh the tools of an MCP server'),
              );
            },
          },
        },
      },
    );
    client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
      // The calls in flight now are the ones the question can be about: their clocks stop
      // until it is answered. A call made later is not waiting on it, and one that ended
      // meanwhile no longer counts, so a question left open holds no later call's timeout.
      const held = [...this.#deadlines];
      for (const deadline of held) deadline.hold();
      try {
        return await this.#hooks.onElicitation(extra.requestId, request.params, extra.signal);
      } finally {
        for (const deadline of held) deadline.release();
      }
    });
    const transport = this.#makeTransport();
    this.#transportFailure = new AbortController();
    const failure = this.#transportFailure;
    client.onerror = (error) => {
      const limit = /exceeded maximum size of (\d+) bytes/.exec(error.message)?.[1];
      if (limit === undefined || this.#client !== client) return;
      const reason = `the server sent a message larger than ${limit} bytes (${formatBytes(Number(limit))}), the most an MCP stdio message may be`;
      // The SDK is stopping the server; the next call starts a new one rather than wait for that.
      this.#client = null;
      this.#transport = null;
      failure.abort(new McpCallError(reason));
      this.#hooks.onLost(reason);
      void client.close().catch(() => undefined);
    };
    client.onclose = () => {
      if (this.#client !== client) return;
      this.#client = null;
      this.#transport = null;
      if (!this.#closed) this.#hooks.onLost(this.#explain('the connection closed'));
    };

    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    try {
      const options = { signal: timeout.signal, timeout: NO_SDK_TIMEOUT };
      await client.connect(transport, options);
      const tools = await listAllTools(client, options);
      if (this.#closed) throw new Error('the session is closing');
      this.#client = client;
      this.#transport = transport;
      this.#tools = tools;
    } catch (error) {
      await client.close().catch(() => undefined);
      const message = timeout.signal.aborted ? `no answer within ${timeoutMs} ms` : describeError(error);
      throw new McpStartError(this.name, this.#explain(message), { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  #makeTransport(): Transport {
    const config = this.#config;
    if ('url' in config) {
      return new StreamableHTTPClientTransport(new URL(config.url), { requestInit: { headers: { ...config.headers } } });
    }
    const transport = new StdioClientTransport({
      command: config.command,
      args: config.args ?? [],
      // Spelled out rather than left to the SDK: the core variables (HOME, PATH, USER, LANG, …)
      // and what the config sets, nothing else of troupe's environment (its keys least of all).
      // The SDK adds a few of the same core names itself; it never adds anything else.
      env: { ...coreEnvironment(), ...config.env },
      cwd: config.cwd === undefined ? this.#cwd : isAbsolute(config.cwd) ? config.cwd : resolve(this.#cwd, config.cwd),
      stderr: 'pipe',
    });
    (transport.stderr as Readable | null)?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.#stderrTail = (this.#stderrTail + text).slice(-STDERR_TAIL_CHARS);
      this.#hooks.log.debug({ server: this.name, stderr: text }, 'MCP server stderr');
    });
    return transport;
  }

  /** A failure, with the last line the server wrote to stderr when there is one. */
  #explain(message: string): string {
    const last = this.#stderrTail.trim().split('\n').at(-1)?.trim();
    return last ? `${message} (stderr: ${last})` : message;
  }

  /**
   * Call a tool. Never hangs: `signal` (the turn's) and the deadline both cancel the request,
   * and a server that dies rejects it. A lost connection is re-established first.
   */
  async call(tool: string, args: Record<string, unknown>, signal: AbortSignal, timeoutMs: number, connectTimeoutMs: number): Promise<CallToolResult> {
    if (!this.#client) {
      try {
        await this.connect(connectTimeoutMs);
      } catch (error) {
        throw new McpCallError(`the server is not running and could not be restarted: ${describeError(error)}`, { cause: error });
      }
    }
    const client = this.#client;
    if (!client) throw new McpCallError('the server is not connected');
    const deadline = new PausableDeadline(timeoutMs);
    this.#deadlines.add(deadline);
    try {
      const failure = this.#transportFailure.signal;
      const result = await client.callTool({ name: tool, arguments: args }, undefined, {
        signal: AbortSignal.any([signal, deadline.signal, failure]),
        timeout: NO_SDK_TIMEOUT,
      });
      if (!('content' in result)) throw new McpCallError('the server answered in the pre-2024-11-05 format, which is not supported');
      return result as CallToolResult;
    } catch (error) {
      if (error instanceof McpCallError) throw error;
      if (this.#transportFailure.signal.reason instanceof McpCallError) throw this.#transportFailure.signal.reason;
      if (signal.aborted) throw new McpCallError('the call was interrupted', { cause: error });
      if (deadline.signal.aborted) throw new McpCallError(`no result within ${timeoutMs} ms`, { cause: error });
      throw new McpCallError(this.#explain(describeError(error)), { cause: error });
    } finally {
      deadline.dispose();
      this.#deadlines.delete(deadline);
    }
  }

  /** Close the client; the SDK ends a stdio server's stdin, then SIGTERMs and SIGKILLs it. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    const client = this.#client;
    this.#client = null;
    this.#transport = null;
    await client?.close();
  }
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

/** Every tool a server lists, page after page. */
async function listAllTools(client: Client, options: RequestOptions): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor }, options);
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return tools;
}
