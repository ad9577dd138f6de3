/**
 * Hostile MCP servers against troupe's MCP client (actors/tools/mcp/). Each test states what
 * troupe should do when the server misbehaves; the server is test/fixtures/hostile-mcp-server.mjs.
 */
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventMsg, McpServerConfig } from '../protocol/index.js';
import { McpManager, type McpManagerOptions } from '../actors/tools/mcp/index.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';
import { waitFor } from './support/wait.js';

const HOSTILE = fileURLToPath(new URL('./fixtures/hostile-mcp-server.mjs', import.meta.url));
const hostile: McpServerConfig = { command: process.execPath, args: [HOSTILE] };
const log = pino({ level: 'silent' });

let managers: McpManager[] = [];
let controllers: AbortController[] = [];

afterEach(async () => {
  // Calls that hang are ended here, so nothing outlives its test.
  for (const controller of controllers) controller.abort();
  controllers = [];
  await Promise.all(managers.map((m) => m.dispose()));
  managers = [];
});

async function start(options: McpManagerOptions = {}): Promise<{ manager: McpManager; events: EventMsg[] }> {
  const events: EventMsg[] = [];
  const manager = await McpManager.start({ bad: hostile }, { emit: (msg) => events.push(msg), log }, { startTimeoutMs: 20_000, ...options });
  managers.push(manager);
  return { manager, events };
}

function context(events: EventMsg[], callId: string): ToolContext {
  const controller = new AbortController();
  controllers.push(controller);
  return {
    sessionId: 'session-1',
    callId,
    turn: {
      turn_id: 'turn-1',
      model: 'test-model',
      cwd: process.cwd(),
      approval_policy: 'on-request',
      sandbox_policy: { mode: 'workspace-write', writable_roots: [], network_access: false },
      base_instructions: '',
    },
    signal: controller.signal,
    resources: new TestResources(),
    emit: (msg) => events.push(msg),
  };
}

function call(manager: McpManager, name: string, events: EventMsg[], callId = name) {
  const handler = manager.tools().find((t) => t.name === name);
  if (!handler)
    throw new Error(
      `no tool ${name}; have ${manager
        .tools()
        .map((t) => t.name)
        .join(', ')}`,
    );
  return handler.run(handler.args.parse({}), context(events, callId), { sandboxed: false, userApproved: false });
}

/** Settles with the output, or with 'still running' once `ms` have passed (a bound on a hang, not a wait). */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), ms)));
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

describe('a hostile MCP server', () => {
  it('cannot switch off the call timeout with an elicitation it leaves behind', async () => {
    // The server asks the user something during one call and answers that call at once; the
    // question stays unanswered. A later call that the server never answers must still end
    // after the call timeout: the open question is not that call's, so it is not the user's time.
    const { manager, events } = await start({ callTimeoutMs: 300 });
    expect((await call(manager, 'bad__prime', events)).text).toBe('primed');
    await waitFor(() => events.some((e) => e.type === 'elicitation_request'), 'the left-over elicitation');
    const output = await within(call(manager, 'bad__hang', events), 10_000);
    expect(output).toEqual({ text: 'The MCP tool hang of server bad failed: no result within 300 ms', success: false });
  });

  it('cannot hang a call by sending two elicitations under one request id', async () => {
    // Two requests with the same id: the user is shown one question (the other could never be
    // answered, so it is declined at once), and no question left open holds a later call's timeout.
    const { manager, events } = await start({ callTimeoutMs: 300 });
    const dup = call(manager, 'bad__dup', events);
    await waitFor(() => events.some((e) => e.type === 'elicitation_request'), 'the first elicitation');
    // The server answers the call after the first reply it gets: the second question's decline.
    expect((await dup).text).toBe('dup answered');
    expect(events.filter((e) => e.type === 'elicitation_request')).toHaveLength(1);
    const request = events.find((e) => e.type === 'elicitation_request');
    if (request?.type !== 'elicitation_request') throw new Error('unreachable');
    manager.resolveElicitation('bad', request.request_id, 'decline');
    const output = await within(call(manager, 'bad__hang', events), 10_000);
    expect(output).toEqual({ text: 'The MCP tool hang of server bad failed: no result within 300 ms', success: false });
  });

  it('keeps the tools of every page of tools/list after tools/list_changed', async () => {
    const { manager, events } = await start();
    expect(manager.tools().map((t) => t.name)).toContain('bad__second');
    let changes = 0;
    manager.onToolsChanged(() => changes++);
    expect((await call(manager, 'bad__change', events)).text).toBe('changed');
    await waitFor(() => changes > 0, 'the tool list refresh');
    // The server's list did not change at all: the second page is still there.
    expect(manager.tools().map((t) => t.name)).toContain('bad__second');
  });
});
