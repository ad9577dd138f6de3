import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { STDIO_DEFAULT_MAX_BUFFER_SIZE } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import {
  approvalAnswer,
  AskForApproval,
  describeApprovalRequest,
  isApprovalRequest,
  SandboxPolicy,
  type ApprovalRequestMsg,
  type Event,
  type EventMsg,
  type ReviewDecision,
  type SessionConfig,
} from '../protocol/index.js';
import { OutputPressure } from '../lib/flow/output-pressure.js';
import { log } from '../lib/log.js';
import { createRuntime, type RuntimeOptions, type Session } from '../actors/runtime.js';
import { checkedProfile, MODEL_FLAGS, parseArgs, PROFILE_FLAG, wireApiFlag } from './flags.js';
import { shellJoin } from './shell-words.js';
import { BoundedLines } from './bounded-lines.js';
import { closeRuntime, exitSoon, ShutdownBound, shutdownTimeoutMs } from './shutdown.js';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * A person may take a while to answer an approval; the SDK's default of 60 s for a request is
 * meant for machines. The tool call's own cancellation still ends the wait at once.
 */
const APPROVAL_TIMEOUT_MS = 60 * 60 * 1000;

const TROUPE_DESCRIPTION =
  'Start a troupe coding-agent session and run one turn with the prompt. Returns the final message and the ' + 'session_id to continue with troupe-reply.';
const REPLY_DESCRIPTION = 'Continue a troupe session started by the troupe tool: run one more turn with the prompt.';

const TurnResultShape = { session_id: z.string(), content: z.string() };

interface LiveSession {
  readonly session: Session;
  readonly events: AsyncIterableIterator<Event>;
  /** A session runs one turn at a time; a second call while one runs is refused. */
  busy: boolean;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/**
 * `troupe mcp-server` (PROTOCOL.md §7): troupe as an MCP server over stdio. Each `troupe` call
 * opens a session of the in-process runtime and runs a turn; `troupe-reply` runs another turn
 * in it. Resolves to the exit code once stdin ends and every session has shut down, or once
 * TROUPE_SHUTDOWN_TIMEOUT_MS has passed (shutdown.ts): then stderr says what was not done.
 */
export async function runMcpServer(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const { values } = parseArgs({ args: [...argv], strict: true, allowPositionals: false, options: { ...MODEL_FLAGS, ...PROFILE_FLAG } });
  const profile = checkedProfile(values, process.env, runtimeOptions.home);
  // The end of stdin exits within this bound, as app-server's does.
  const bound = new ShutdownBound(shutdownTimeoutMs(process.env));
  const runtime = createRuntime({ ...runtimeOptions, model: values.model, wireApi: wireApiFlag(values['wire-api']), profile });
  const server = new McpServer({ name: 'troupe', version: version() }, { capabilities: { logging: {} } });
  const sessions = new Map<string, LiveSession>();

  server.registerTool(
    'troupe',
    {
      title: 'troupe',
      description: TROUPE_DESCRIPTION,
      inputSchema: {
        prompt: z.string().min(1).describe('What the agent should do.'),
        cwd: z.string().optional().describe('Working directory of the session (default: where the server runs).'),
        model: z.string().min(1).optional().describe('Model to use.'),
        approval_policy: AskForApproval.optional().describe('When the agent must ask before acting (asked through elicitation).'),
        sandbox_policy: SandboxPolicy.optional().describe('What commands may touch.'),
        base_instructions: z.string().optional().describe('Replace the built-in instructions.'),
      },
      outputSchema: TurnResultShape,
    },
    async (args, extra) => {
      const config: SessionConfig = {
        cwd: args.cwd === undefined ? process.cwd() : isAbsolute(args.cwd) ? args.cwd : resolve(args.cwd),
        ...(args.model !== undefined ? { model: args.model } : {}),
        ...(args.approval_policy !== undefined ? { approval_policy: args.approval_policy } : {}),
        ...(args.sandbox_policy !== undefined ? { sandbox_policy: args.sandbox_policy } : {}),
        ...(args.base_instructions !== undefined ? { base_instructions: args.base_instructions } : {}),
      };
      let session: Session;
      try {
        session = await runtime.newSession(config);
      } catch (error) {
        return failure(null, `could not start a session: ${(error as Error).message}`);
      }
      const live: LiveSession = { session, events: session.events(), busy: false };
      sessions.set(session.id, live);
      return runTurn(server, live, args.prompt, extra);
    },
  );

  server.registerTool(
    'troupe-reply',
    {
      title: 'troupe reply',
      description: REPLY_DESCRIPTION,
      inputSchema: {
        session_id: z.string().min(1).describe('The session_id a troupe call returned.'),
        prompt: z.string().min(1).describe('What the agent should do next.'),
      },
      outputSchema: TurnResultShape,
    },
    async (args, extra) => {
      const live = sessions.get(args.session_id);
      if (!live) return failure(args.session_id, `no session ${args.session_id} in this server; start one with the troupe tool`);
      return runTurn(server, live, args.prompt, extra);
    },
  );

  // A request over the transport's buffer is refused alone (an error naming the limit), instead
  // of closing the transport and with it every session of the client (BoundedLines).
  const requests = process.stdin.pipe(
    new BoundedLines(STDIO_DEFAULT_MAX_BUFFER_SIZE, ({ bytes, id }) => {
      const message = `the request is ${bytes} bytes, more than the ${STDIO_DEFAULT_MAX_BUFFER_SIZE} a troupe mcp-server request may be; it was not read`;
      log.warn({ bytes, id }, 'refused an MCP request over the size limit');
      process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32600, message } })}\n`);
    }),
  );
  const transport = new StdioServerTransport(requests, process.stdout);
  // The transport writes every message at once and has a call's progress wait for 'drain',
  // so while the client is not reading, a turn's events would pile up in its session's
  // queue. Once stdout is past its own high-water mark (a write has returned false), hold
  // the flow gate so sessions stop making events, and stop reading requests, until it drains.
  const stdout = new OutputPressure(process.stdout, runtime.flow, {
    name: 'stdout',
    highWaterBytes: process.stdout.writableHighWaterMark - 1,
    onChange: (full) => (full ? requests.pause() : requests.resume()),
  });
  runtime.onEvent(() => stdout.check());
  const checkStdout = (): void => stdout.check();
  const stdinEnded = new Promise<void>((done) => {
    process.stdin.once('end', done);
    process.stdin.once('close', done);
    transport.onclose = done;
  });
  await server.connect(transport);
  // Requests answered at once (pings, listings) write without an event: look after each read.
  process.stdin.on('data', checkStdout);
  await stdinEnded;
  const closed = await closeRuntime(runtime, bound);
  process.stdin.off('data', checkStdout);
  await server.close();
  stdout.dispose();
  // Something may still hold the process (the close that ran out of time): end it.
  if (closed.gaveUp) exitSoon(closed.code);
  return closed.code;
}

/** Run one turn in `live`, answering its approvals through the client, until it ends. */
async function runTurn(server: McpServer, live: LiveSession, prompt: string, extra: Extra): Promise<CallToolResult> {
  const sessionId = live.session.id;
  if (live.busy) return failure(sessionId, `session ${sessionId} is already running a turn; wait for it to end`);
  live.busy = true;
  const progress = new ProgressReporter(server, extra);
  const notes: string[] = [];
  const turnId = `mcp-${randomUUID()}`;
  const interrupt = (): void => {
    live.session.submit({ type: 'interrupt' }).catch((error: unknown) => log.warn({ err: error }, 'could not interrupt the turn'));
  };
  extra.signal.addEventListener('abort', interrupt, { once: true });
  try {
    await live.session.submit({ type: 'user_turn', items: [{ type: 'text', text: prompt }] }, turnId);
    let started = false;
    let lastError: string | null = null;
    for (;;) {
      const next = await live.events.next();
      if (next.done) return failure(sessionId, 'the session ended before the turn did');
      const msg = next.value.msg;
      if (isApprovalRequest(msg)) {
        const decision = await askForApproval(server, msg, extra, notes);
        await live.session.submit(approvalAnswer(msg, decision));
        continue;
      }
      await progress.report(msg);
      if (next.value.id !== turnId) continue;
      if (msg.type === 'task_started') started = true;
      if (msg.type === 'error') {
        if (!started) return failure(sessionId, msg.message);
        lastError = msg.message;
      }
      if (msg.type === 'turn_aborted') return failure(sessionId, `the turn was aborted (${msg.reason})`, notes);
      if (msg.type === 'task_complete') {
        if (msg.last_agent_message === null && lastError !== null) return failure(sessionId, lastError, notes);
        return success(sessionId, msg.last_agent_message ?? '', notes);
      }
    }
  } finally {
    extra.signal.removeEventListener('abort', interrupt);
    live.busy = false;
  }
}

/**
 * Approvals become elicitation requests: accept → approved, decline → denied, cancel → abort
 * (the turn stops). A client without elicitation cannot be asked, so the request is denied and
 * the result says why.
 */
async function askForApproval(server: McpServer, msg: ApprovalRequestMsg, extra: Extra, notes: string[]): Promise<ReviewDecision> {
  const what = describeApprovalRequest(msg, shellJoin);
  if (!server.server.getClientCapabilities()?.elicitation) {
    notes.push(
      `Denied: troupe asked to ${what}, and this MCP client cannot be asked (it does not support elicitation). ` +
        'Use approval_policy "never" or "on-request" to run without asking.',
    );
    return 'denied';
  }
  const message =
    `troupe wants to ${what}.${msg.reason ? `\nReason: ${msg.reason}` : ''}\n` +
    'Accept to allow it, decline to refuse it (the agent goes on), cancel to stop the turn.';
  try {
    const answer = await server.server.elicitInput(
      { message, requestedSchema: { type: 'object', properties: {} } },
      { signal: extra.signal, timeout: APPROVAL_TIMEOUT_MS },
    );
    return answer.action === 'accept' ? 'approved' : answer.action === 'decline' ? 'denied' : 'abort';
  } catch (error) {
    log.warn({ err: error }, 'the approval elicitation failed');
    notes.push(`Denied: troupe asked to ${what}, and the request to the client failed: ${(error as Error).message}`);
    return 'denied';
  }
}

/**
 * Progress goes out as `notifications/progress` when the client gave the call a progress token:
 * such notifications belong to the call, and the SDK client can reset its request timeout on
 * each one (`resetTimeoutOnProgress`), which a turn of several minutes needs. Without a token,
 * the same lines go out as logging messages, which any client may show.
 */
class ProgressReporter {
  #count = 0;

  constructor(
    private readonly server: McpServer,
    private readonly extra: Extra,
  ) {}

  async report(msg: EventMsg): Promise<void> {
    const line = describeProgress(msg);
    if (line === null) return;
    const token = this.extra._meta?.progressToken;
    try {
      if (token !== undefined) {
        await this.extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: ++this.#count, message: line } });
      } else {
        await this.server.sendLoggingMessage({ level: 'info', logger: 'troupe', data: line });
      }
    } catch (error) {
      log.debug({ err: error }, 'could not send a progress notification');
    }
  }
}

function describeProgress(msg: EventMsg): string | null {
  switch (msg.type) {
    case 'task_started':
      return 'turn started';
    case 'agent_message':
      return msg.message;
    case 'exec_command_begin':
      return `running: ${shellJoin(msg.command)}`;
    case 'exec_command_end':
      return `command exited with ${msg.exit_code}`;
    case 'patch_apply_end':
      return msg.success ? 'patch applied' : 'patch failed';
    case 'mcp_tool_call_begin':
      return `calling ${msg.server}/${msg.tool}`;
    case 'plan_update':
      return `plan: ${msg.plan.map((p) => `[${p.status}] ${p.step}`).join('; ')}`;
    case 'stream_error':
      return `model stream failed, retrying (${msg.attempt}/${msg.max_attempts}): ${msg.message}`;
    case 'warning':
    case 'error':
      return `${msg.type}: ${msg.message}`;
    default:
      return null;
  }
}

function success(sessionId: string, text: string, notes: readonly string[]): CallToolResult {
  return {
    content: [{ type: 'text', text }, ...notes.map((note) => ({ type: 'text' as const, text: note }))],
    structuredContent: { session_id: sessionId, content: text },
  };
}

function failure(sessionId: string | null, message: string, notes: readonly string[] = []): CallToolResult {
  return {
    content: [{ type: 'text', text: message }, ...notes.map((note) => ({ type: 'text' as const, text: note }))],
    ...(sessionId !== null ? { structuredContent: { session_id: sessionId, content: message } } : {}),
    isError: true,
  };
}
