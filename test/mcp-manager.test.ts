import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AskForApproval, EventMsg, McpServerConfig } from '../protocol/index.js';
import { McpManager, type McpManagerOptions } from '../actors/tools/mcp/index.js';
import type { ToolContext, ToolHandler } from '../actors/tools/tool.js';
import { coreTools } from '../actors/tools/index.js';
import { mcpEchoServerPath } from './support/mcp-echo-server.js';
import { TestResources } from './support/tool-context.js';
import { isAlive } from './support/processes.js';
import { waitFor } from './support/wait.js';

const FIXTURE = mcpEchoServerPath();
const EVERYTHING = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const echoServer: McpServerConfig = { command: process.execPath, args: [FIXTURE] };
const log = pino({ level: 'silent' });

let managers: McpManager[] = [];
let children: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(FIXTURE)) throw new Error(`${FIXTURE} is missing: run \`npm run build\` first`);
});

afterEach(async () => {
  await Promise.all(managers.map((m) => m.dispose()));
  managers = [];
  for (const child of children) child.kill('SIGKILL');
  children = [];
});

async function start(servers: Record<string, McpServerConfig>, options: McpManagerOptions = {}): Promise<{ manager: McpManager; events: EventMsg[] }> {
  const events: EventMsg[] = [];
  const manager = await McpManager.start(servers, { emit: (msg) => events.push(msg), log }, { startTimeoutMs: 20_000, ...options });
  managers.push(manager);
  return { manager, events };
}

function context(events: EventMsg[], options: { policy?: AskForApproval; signal?: AbortSignal; callId?: string } = {}): ToolContext {
  return {
    sessionId: 'session-1',
    callId: options.callId ?? 'call-1',
    turn: {
      turn_id: 'turn-1',
      model: 'test-model',
      cwd: process.cwd(),
      approval_policy: options.policy ?? 'on-request',
      sandbox_policy: { mode: 'workspace-write', writable_roots: [], network_access: false },
      base_instructions: '',
    },
    signal: options.signal ?? new AbortController().signal,
    resources: new TestResources(),
    emit: (msg) => events.push(msg),
  };
}

function tool(manager: McpManager, name: string): ToolHandler<unknown> {
  const found = manager.tools().find((t) => t.name === name);
  if (!found)
    throw new Error(
      `no tool ${name}; have ${manager
        .tools()
        .map((t) => t.name)
        .join(', ')}`,
    );
  return found;
}

async function call(manager: McpManager, name: string, args: Record<string, unknown>, events: EventMsg[], options: Parameters<typeof context>[1] = {}) {
  const handler = tool(manager, name);
  const parsed = handler.args.parse(args);
  return handler.run(parsed, context(events, options), { sandboxed: false, userApproved: false });
}

describe('McpManager with a stdio server', () => {
  it('lists the tools as <server>__<tool> with the server JSON schemas, sanitized', async () => {
    const { manager, events } = await start({ echo: echoServer });
    expect(events).toEqual([]);
    expect(manager.servers).toEqual(['echo']);
    const names = manager.tools().map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['echo__echo', 'echo__fail', 'echo__slow', 'echo__ask', 'echo__odd_name_with_spaces']));
    for (const name of names) expect(name).toMatch(/^[a-zA-Z0-9_-]{1,64}$/);

    const registry = coreTools().extend(manager.tools());
    const spec = registry.specs().find((s) => s.name === 'echo__echo');
    expect(spec?.description).toBe('Echo the text back.');
    expect(spec?.parameters).toMatchObject({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
    expect(spec?.parameters).not.toHaveProperty('$schema');
    expect(registry.route({ name: 'echo__echo', arguments: '{"text":"hi"}' })).toMatchObject({ ok: true, args: { text: 'hi' } });
  });

  it('calls a tool: the result text goes to the model, begin and end events carry the call', async () => {
    const { manager, events } = await start({ echo: echoServer });
    const output = await call(manager, 'echo__echo', { text: 'hello' }, events);
    expect(output).toEqual({ text: 'echo: hello', success: true });
    expect(events[0]).toEqual({ type: 'mcp_tool_call_begin', call_id: 'call-1', server: 'echo', tool: 'echo', arguments: { text: 'hello' } });
    expect(events[1]).toMatchObject({ type: 'mcp_tool_call_end', call_id: 'call-1', result: { content: [{ type: 'text', text: 'echo: hello' }] } });
    expect((events[1] as { duration_ms: number }).duration_ms).toBeGreaterThanOrEqual(0);

    const odd = await call(manager, 'echo__odd_name_with_spaces', {}, events);
    expect(odd.text).toBe('odd');
    const picture = await call(manager, 'echo__picture', {}, events);
    expect(picture.text).toBe('here it is\n[image: image/png, 16 bytes]');
  });

  it('reports an error result as a failed output', async () => {
    const { manager, events } = await start({ echo: echoServer });
    const output = await call(manager, 'echo__fail', { message: 'disk on fire' }, events);
    expect(output).toEqual({ text: 'disk on fire', success: false });
    expect(events.at(-1)).toMatchObject({ type: 'mcp_tool_call_end', result: { isError: true } });

    // Arguments the server's schema rejects come back from the server as an error too.
    const bad = await call(manager, 'echo__echo', { text: 42 }, events);
    expect(bad.success).toBe(false);
    expect(bad.text).toContain('text');
  });

  it('warns about servers that fail to start, naming them, and keeps the others', async () => {
    const { manager, events } = await start(
      {
        echo: echoServer,
        missing: { command: '/nonexistent/mcp-server' },
        crashing: { command: process.execPath, args: ['-e', 'console.error("boom: no config"); process.exit(3)'] },
        silent: { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] },
      },
      // Long enough for the echo server to start on a busy machine: it has to answer in that time too.
      { startTimeoutMs: 5_000 },
    );
    expect(manager.servers).toEqual(['echo']);
    const warnings = events.flatMap((e) => (e.type === 'warning' ? [e.message] : []));
    expect(warnings).toHaveLength(3);
    expect(warnings.find((w) => w.includes('"missing"'))).toMatch(/MCP server "missing" failed to start: .*ENOENT/);
    expect(warnings.find((w) => w.includes('"crashing"'))).toContain('boom: no config');
    expect(warnings.find((w) => w.includes('"silent"'))).toContain('no answer within 5000 ms');
    expect(manager.tools().every((t) => t.name.startsWith('echo__'))).toBe(true);
    expect((await call(manager, 'echo__echo', { text: 'still here' }, events)).text).toBe('echo: still here');
  });

  it('gives an error output when the server dies mid-call, and restarts it for the next call', async () => {
    const { manager, events } = await start({ echo: echoServer });
    const pid = Number((await call(manager, 'echo__pid', {}, events)).text);
    expect(isAlive(pid)).toBe(true);
    const slow = call(manager, 'echo__slow', { ms: 60_000 }, events, { callId: 'slow-1' });
    await waitFor(() => events.some((e) => e.type === 'mcp_tool_call_begin' && e.call_id === 'slow-1'), 'the slow call');
    process.kill(pid, 'SIGKILL');
    const output = await slow;
    expect(output.success).toBe(false);
    expect(output.text).toMatch(/The MCP tool slow of server echo failed: .*(closed|Connection)/i);
    expect(events.find((e) => e.type === 'mcp_tool_call_end' && e.call_id === 'slow-1')).toMatchObject({ error: expect.any(String) });
    expect(events.some((e) => e.type === 'warning' && e.message.includes('"echo" stopped'))).toBe(true);

    const again = await call(manager, 'echo__echo', { text: 'back' }, events);
    expect(again).toEqual({ text: 'echo: back', success: true });
    expect(Number((await call(manager, 'echo__pid', {}, events)).text)).not.toBe(pid);
  });

  it("says at once that a result was over the transport's size limit, and restarts the server for the next call", async () => {
    const { manager, events } = await start({ echo: echoServer });
    const pid = Number((await call(manager, 'echo__pid', {}, events)).text);
    const output = await call(manager, 'echo__huge', { bytes: 11 * 1024 * 1024 }, events);
    expect(output).toEqual({
      success: false,
      text: expect.stringMatching(/failed: the server sent a message larger than 10485760 bytes \(10 MiB\), the most an MCP stdio message may be/),
    });
    expect((await call(manager, 'echo__echo', { text: 'after' }, events)).text).toBe('echo: after');
    expect(Number((await call(manager, 'echo__pid', {}, events)).text)).not.toBe(pid);
  });

  it('honours the call timeout and the turn signal', async () => {
    const { manager, events } = await start({ echo: echoServer }, { callTimeoutMs: 300 });
    const timedOut = await call(manager, 'echo__slow', { ms: 30_000 }, events);
    expect(timedOut).toEqual({ text: 'The MCP tool slow of server echo failed: no result within 300 ms', success: false });

    const { manager: patient, events: patientEvents } = await start({ echo: echoServer });
    const controller = new AbortController();
    const interrupted = call(patient, 'echo__slow', { ms: 30_000 }, patientEvents, { signal: controller.signal });
    await waitFor(() => patientEvents.some((e) => e.type === 'mcp_tool_call_begin'), 'the call');
    controller.abort();
    expect(await interrupted).toEqual({ text: 'The MCP tool slow of server echo failed: the call was interrupted', success: false });
    // The connection is still usable after a cancelled request.
    expect((await call(patient, 'echo__echo', { text: 'ok' }, patientEvents)).text).toBe('echo: ok');
  });

  it('turns an elicitation into an event and answers it with resolveElicitation', async () => {
    const { manager, events } = await start({ echo: echoServer }, { callTimeoutMs: 500 });
    const asked = call(manager, 'echo__ask', { question: 'Favourite colour?' }, events);
    await waitFor(() => events.some((e) => e.type === 'elicitation_request'), 'the elicitation request');
    const request = events.find((e) => e.type === 'elicitation_request');
    expect(request).toMatchObject({ server: 'echo', message: 'Favourite colour?', requested_schema: { properties: { answer: { type: 'string' } } } });
    if (request?.type !== 'elicitation_request') throw new Error('unreachable');
    // Waiting on the user does not count against the call timeout.
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(() => manager.resolveElicitation('echo', 'no-such-id', 'accept')).toThrow(/no-such-id/);
    manager.resolveElicitation('echo', request.request_id, 'accept', { answer: 'teal' });
    expect(await asked).toEqual({ text: 'answer: teal', success: true });
    expect(() => manager.resolveElicitation('echo', request.request_id, 'accept')).toThrow(/waiting/);

    const declined = call(manager, 'echo__ask', { question: 'Again?' }, events, { callId: 'call-2' });
    await waitFor(() => events.filter((e) => e.type === 'elicitation_request').length === 2, 'the second request');
    const second = events.filter((e) => e.type === 'elicitation_request').at(-1);
    if (second?.type !== 'elicitation_request') throw new Error('unreachable');
    manager.resolveElicitation('echo', second.request_id, 'decline');
    expect((await declined).text).toBe('action: decline');
  });

  it('asks for approval under the untrusted policy, except for read-only tools', async () => {
    const { manager, events } = await start({ echo: echoServer });
    const none = { has: () => false };
    const ctx = context(events, { policy: 'untrusted' });
    const plan = await tool(manager, 'echo__fail').plan?.({ message: 'x' }, ctx, none);
    expect(plan).toEqual({
      kind: 'ask',
      request: { type: 'exec', command: ['mcp', 'echo', 'fail'], cwd: process.cwd(), reason: 'MCP tool call with arguments {"message":"x"}' },
      sandboxedAfterApproval: false,
      approvalKey: 'mcp:["echo","fail"]',
    });
    expect(await tool(manager, 'echo__fail').plan?.({}, ctx, { has: (key) => key === 'mcp:["echo","fail"]' })).toMatchObject({ kind: 'run' });
    expect(await tool(manager, 'echo__echo').plan?.({ text: 'x' }, ctx, none)).toMatchObject({ kind: 'run' });
    expect(await tool(manager, 'echo__fail').plan?.({}, context(events, { policy: 'on-request' }), none)).toMatchObject({ kind: 'run' });
  });

  it('follows tools/list_changed', async () => {
    const { manager, events } = await start({ echo: echoServer });
    let changes = 0;
    manager.onToolsChanged(() => changes++);
    expect(manager.tools().some((t) => t.name === 'echo__late')).toBe(false);
    await call(manager, 'echo__add_tool', {}, events);
    await waitFor(() => manager.tools().some((t) => t.name === 'echo__late'), 'the new tool');
    expect(changes).toBeGreaterThan(0);
    expect((await call(manager, 'echo__late', {}, events)).text).toBe('late tool');
  });

  it('kills the stdio servers on dispose', async () => {
    const { manager, events } = await start({ one: echoServer, two: echoServer });
    const pids = [manager.pid('one'), manager.pid('two')];
    expect(pids.every((pid) => pid !== null && isAlive(pid))).toBe(true);
    expect(Number((await call(manager, 'one__pid', {}, events)).text)).toBe(pids[0]);
    await manager.dispose();
    await waitFor(() => pids.every((pid) => !isAlive(pid!)), 'the servers to exit');
    const after = await call(manager, 'one__echo', { text: 'x' }, events);
    expect(after.success).toBe(false);
  });
});

describe('McpManager over streamable HTTP', () => {
  it('lists and calls the tools of an HTTP server', async () => {
    const child = spawn(process.execPath, [FIXTURE, '--http'], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`the HTTP fixture exited with ${code}`)));
    });
    const { manager, events } = await start({ remote: { url, headers: { 'x-test': '1' } } });
    expect(events).toEqual([]);
    expect(manager.tools().map((t) => t.name)).toContain('remote__echo');
    expect(await call(manager, 'remote__echo', { text: 'over http' }, events)).toEqual({ text: 'echo: over http', success: true });
  });

  it('warns when nothing answers at the URL', async () => {
    const { manager, events } = await start({ nowhere: { url: 'http://127.0.0.1:9/mcp' } });
    expect(manager.servers).toEqual([]);
    expect(events).toEqual([{ type: 'warning', message: expect.stringMatching(/^MCP server "nowhere" failed to start: /) }]);
  });
});

describe('McpManager with @modelcontextprotocol/server-everything', () => {
  const everything: McpServerConfig = { command: process.execPath, args: [EVERYTHING, 'stdio'] };

  it('lists its tools and calls them', async () => {
    const { manager, events } = await start({ everything });
    expect(events.filter((e) => e.type === 'warning')).toEqual([]);
    const names = manager.tools().map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['everything__echo', 'everything__get-sum', 'everything__get-tiny-image']));
    expect(await call(manager, 'everything__echo', { message: 'hi' }, events)).toEqual({ text: 'Echo: hi', success: true });
    expect((await call(manager, 'everything__get-sum', { a: 2, b: 3 }, events)).text).toContain('5');
    const image = await call(manager, 'everything__get-tiny-image', {}, events);
    expect(image.text).toMatch(/\[image: image\/png, \d+ bytes\]/);
    const structured = await call(manager, 'everything__get-structured-content', { location: 'New York' }, events);
    expect(structured.success).toBe(true);
    expect(structured.text).toContain('temperature');
  });

  it('returns an error output for arguments the server rejects', async () => {
    const { manager, events } = await start({ everything });
    const output = await call(manager, 'everything__get-sum', { a: 'two' }, events);
    expect(output.success).toBe(false);
    expect(events.at(-1)).toMatchObject({ type: 'mcp_tool_call_end', call_id: 'call-1' });
  });

  it('round-trips its elicitation request', async () => {
    const { manager, events } = await start({ everything });
    const pending = call(manager, 'everything__trigger-elicitation-request', {}, events);
    await waitFor(() => events.some((e) => e.type === 'elicitation_request'), 'the elicitation request');
    const request = events.find((e) => e.type === 'elicitation_request');
    if (request?.type !== 'elicitation_request') throw new Error('unreachable');
    expect(request.server).toBe('everything');
    manager.resolveElicitation('everything', request.request_id, 'decline');
    const output = await pending;
    expect(output.text).toMatch(/decline/i);
  });
});
