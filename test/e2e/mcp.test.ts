import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer } from '../../testing/index.js';
import { mcpEchoServerPath } from '../support/mcp-echo-server.js';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
const echo = { command: process.execPath, args: [mcpEchoServerPath()] };

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

describe('MCP servers in a session', () => {
  it('offers <server>__<tool> to the model, runs the call, and reports it', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'echo__echo', call_id: 'm1', arguments: { text: 'over the wire' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'It echoed.' }] },
    );
    const session = await server.newSession({ cwd: workspace, mcp_servers: { echo, broken: { command: '/nonexistent/mcp' } } });
    const end = await server.turn(session, 'echo something');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'It echoed.' });

    const tools = model.requests[0]!.body.tools as { name: string; parameters: unknown }[];
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['shell', 'echo__echo', 'echo__fail']));
    expect(tools.find((t) => t.name === 'echo__echo')?.parameters).toMatchObject({ type: 'object', properties: { text: { type: 'string' } } });
    expect(outputFor(model.requests[1]!, 'm1')).toBe('echo: over the wire');

    const events = server.ofSession(session).map((e) => e.msg);
    expect(events).toContainEqual({ type: 'mcp_tool_call_begin', call_id: 'm1', server: 'echo', tool: 'echo', arguments: { text: 'over the wire' } });
    expect(events.find((m) => m.type === 'mcp_tool_call_end')).toMatchObject({
      call_id: 'm1',
      result: { content: [{ type: 'text', text: 'echo: over the wire' }] },
    });
    expect(events.find((m) => m.type === 'warning' && m.message.includes('"broken"'))).toBeDefined();
  });

  it('routes an elicitation to the client and its resolve_elicitation back to the server', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'echo__ask', call_id: 'm1', arguments: { question: 'Which branch?' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Got it.' }] },
    );
    const session = await server.newSession({ cwd: workspace, mcp_servers: { echo } });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'ask me' }] }, session);
    const request = await server.waitForMsg('elicitation_request', { session });
    expect(request.msg).toMatchObject({ server: 'echo', message: 'Which branch?' });
    server.submit(
      { type: 'resolve_elicitation', server: 'echo', request_id: request.msg.request_id, decision: 'accept', content: { answer: 'main' } },
      session,
    );
    await server.waitForMsg('task_complete', { id: turn });
    expect(outputFor(model.requests[1]!, 'm1')).toBe('answer: main');

    const bad = server.submit({ type: 'resolve_elicitation', server: 'echo', request_id: 'nope', decision: 'cancel' }, session);
    const error = await server.waitForMsg('error', { id: bad });
    expect(error.msg.message).toContain('nope');
  });

  it('asks before an MCP call under the untrusted policy', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'echo__fail', call_id: 'm1', arguments: { message: 'x' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Denied.' }] },
    );
    const session = await server.newSession({ cwd: workspace, approval_policy: 'untrusted', mcp_servers: { echo } });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'fail' }] }, session);
    const request = await server.waitForMsg('exec_approval_request', { session });
    expect(request.msg).toMatchObject({ call_id: 'm1', command: ['mcp', 'echo', 'fail'] });
    expect(request.msg.reason).toContain('"message":"x"');
    server.submit({ type: 'exec_approval', id: 'm1', decision: 'denied' }, session);
    await server.waitForMsg('task_complete', { id: turn });
    expect(outputFor(model.requests[1]!, 'm1')).toMatch(/denied/i);
    expect(server.ofSession(session).some((e) => e.msg.type === 'mcp_tool_call_begin')).toBe(false);
  });

  it("also come from TROUPE_HOME/config.json, and sub-agents get their parent's servers", async () => {
    await writeFile(join(server.home, 'config.json'), JSON.stringify({ mcp_servers: { echo } }));
    model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'PARENT') && outputFor(r, 's1') === undefined,
        items: [{ type: 'function_call', name: 'spawn_agent', call_id: 's1', arguments: { message: 'CHILD: echo it' } }],
      },
      {
        kind: 'response',
        match: (r) => mentions(r, 'CHILD') && outputFor(r, 'm1') === undefined,
        items: [{ type: 'function_call', name: 'echo__echo', call_id: 'm1', arguments: { text: 'from the child' } }],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD') && outputFor(r, 'm1') !== undefined, items: [{ type: 'message', text: 'child echoed' }] },
      {
        kind: 'reply',
        match: (r) => outputFor(r, 's1') !== undefined && outputFor(r, 'w') === undefined,
        handler: (r) => ({
          kind: 'response',
          items: [{ type: 'function_call', name: 'wait_agent', call_id: 'w', arguments: { agent_ids: spawnedAgentIds(r) } }],
        }),
      },
      { kind: 'response', match: (r) => outputFor(r, 'w') !== undefined, items: [{ type: 'message', text: 'done' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'PARENT: delegate');
    const childRequest = model.requests.find((r) => outputFor(r, 'm1') !== undefined)!;
    expect(outputFor(childRequest, 'm1')).toBe('echo: from the child');
    expect(outputFor(model.requests.at(-1)!, 'w')).toContain('child echoed');
  });

  it('a broken TROUPE_HOME/config.json is refused with the file and field named', async () => {
    // The server checks the file when it starts (a bad one then exits 2): break it once it is up.
    await server.waitForMsg('session_list', { id: server.submit({ type: 'list_sessions' }) });
    await writeFile(join(server.home, 'config.json'), JSON.stringify({ mcp_servers: { bad: { args: ['x'] } } }));
    const id = server.submit({ type: 'new_session', config: { cwd: workspace } });
    const error = await server.waitForMsg('error', { id });
    expect(error.msg.message).toContain('config.json');
    expect(error.msg.message).toContain('mcp_servers.bad');
  });
});
