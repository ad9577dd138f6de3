import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer } from '../../testing/index.js';
import { outputFor, outputOrder } from '../../testing/requests.js';

/** Client tools over the app-server's stdio protocol: the client is this test. */

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

const LOOKUP = {
  name: 'lookup_ticket',
  description: 'Look a ticket up in the tracker.',
  parameters: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'], additionalProperties: false },
};
const NOTIFY = { name: 'notify', description: 'Tell the team.', parameters: { type: 'object', properties: { text: { type: 'string' } } } };

/** Start a turn; returns its submission id (the turn's id). */
const startTurn = (session: string, text: string) => server.submit({ type: 'user_turn', items: [{ type: 'text', text }] }, session);

const errorsFor = (id: string) => server.events.filter((e) => e.id === id && e.msg.type === 'error').map((e) => (e.msg as { message: string }).message);

describe('a client tool', () => {
  it('is offered to the model, announced to the client, and its answer is what the model gets', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'lookup_ticket', call_id: 'c1', arguments: { id: 'T-7' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'T-7 is open.' }] },
    );
    const session = await server.newSession({ cwd: workspace, client_tools: [LOOKUP] });
    const turn = startTurn(session, 'how is T-7?');
    const call = await server.waitForMsg('client_tool_call', { session });
    expect(call.msg).toEqual({ type: 'client_tool_call', call_id: 'c1', turn_id: turn, name: 'lookup_ticket', arguments: { id: 'T-7' } });
    expect(call.id).toBe(turn);

    // The model saw the tool exactly as the client described it, among the built-ins.
    const offered = model.requests[0]!.body.tools as { name: string }[];
    expect(offered.find((t) => t.name === 'lookup_ticket')).toEqual({ type: 'function', ...LOOKUP, strict: false });
    expect(offered.map((t) => t.name)).toContain('shell');

    const answer = server.submit({ type: 'client_tool_output', call_id: 'c1', output: 'T-7: open, assigned to Ana', success: true }, session);
    const end = await server.waitForMsg('task_complete', { session, id: turn });
    expect(end.msg.last_agent_message).toBe('T-7 is open.');
    expect(outputFor(model.requests[1]!, 'c1')).toBe('T-7: open, assigned to Ana');
    expect(errorsFor(answer)).toEqual([]);

    // A second answer to the same call, and one to a call that never was, change nothing.
    const again = server.submit({ type: 'client_tool_output', call_id: 'c1', output: 'changed my mind', success: false }, session);
    const unknown = server.submit({ type: 'client_tool_output', call_id: 'nope', output: 'x', success: true }, session);
    await server.waitFor((e) => e.id === unknown && e.msg.type === 'error', 'the refusal of the unknown call');
    expect(errorsFor(again)).toEqual(['client_tool_output: no client tool call is waiting with call_id c1: no turn is running']);
    expect(errorsFor(unknown)).toEqual(['client_tool_output: no client tool call is waiting with call_id nope: no turn is running']);
    expect(model.requests).toHaveLength(2);
  });

  it('refuses a duplicate or malformed answer while the turn runs, and takes the first good one', async () => {
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'lookup_ticket', call_id: 'a', arguments: { id: 'T-1' } },
          { type: 'function_call', name: 'lookup_ticket', call_id: 'b', arguments: { id: 'T-2' } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'done' }] },
    );
    const session = await server.newSession({ cwd: workspace, client_tools: [LOOKUP] });
    const turn = startTurn(session, 'look both up');
    await server.waitForMsg('client_tool_call', { session, where: (m) => m.call_id === 'b' });
    const malformed = server.submit({ type: 'client_tool_output', call_id: 'a', output: 42 }, session);
    const first = server.submit({ type: 'client_tool_output', call_id: 'a', output: 'first', success: true }, session);
    const second = server.submit({ type: 'client_tool_output', call_id: 'a', output: 'second', success: true }, session);
    const stranger = server.submit({ type: 'client_tool_output', call_id: 'zzz', output: 'x', success: true }, session);
    await server.waitFor((e) => e.id === stranger && e.msg.type === 'error', 'the refusal of the unknown call');
    expect(errorsFor(malformed).join()).toMatch(/op\.output.*op\.success|op\.success.*op\.output/s);
    expect(errorsFor(first)).toEqual([]);
    expect(errorsFor(second)).toEqual(['client_tool_output: no client tool call is waiting with call_id a']);
    expect(errorsFor(stranger)).toEqual(['client_tool_output: no client tool call is waiting with call_id zzz']);
    // The turn still waits for b: nothing above answered it.
    expect(model.requests).toHaveLength(1);
    server.submit({ type: 'client_tool_output', call_id: 'b', output: 'no such ticket', success: false }, session);
    await server.waitForMsg('task_complete', { session, id: turn });
    expect(outputFor(model.requests[1]!, 'a')).toBe('first');
    expect(outputFor(model.requests[1]!, 'b')).toBe('no such ticket');
  });

  it('waits in parallel with a shell call and another client call, each answered on its own, outputs in call order', async () => {
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'lookup_ticket', call_id: 'look', arguments: { id: 'T-3' } },
          { type: 'function_call', name: 'shell', call_id: 'sh', arguments: { command: ['sh', '-c', 'echo from-shell'] } },
          { type: 'function_call', name: 'notify', call_id: 'tell', arguments: { text: 'hi' } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'all done' }] },
    );
    const session = await server.newSession({ cwd: workspace, client_tools: [LOOKUP, NOTIFY] });
    const turn = startTurn(session, 'do three things');
    await server.waitForMsg('client_tool_call', { session, where: (m) => m.call_id === 'look' });
    await server.waitForMsg('client_tool_call', { session, where: (m) => m.call_id === 'tell' });
    // The shell call finishes while both client calls still wait.
    await server.waitForMsg('exec_command_end', { session, where: (m) => m.call_id === 'sh' });
    expect(model.requests).toHaveLength(1);
    // Answered in the other order than the model called them.
    server.submit({ type: 'client_tool_output', call_id: 'tell', output: 'sent', success: true }, session);
    server.submit({ type: 'client_tool_output', call_id: 'look', output: 'T-3 closed', success: true }, session);
    await server.waitForMsg('task_complete', { session, id: turn });
    const next = model.requests[1]!;
    expect(outputOrder(next)).toEqual(['look', 'sh', 'tell']);
    expect(outputFor(next, 'look')).toBe('T-3 closed');
    expect(outputFor(next, 'tell')).toBe('sent');
    expect(outputFor(next, 'sh')).toContain('from-shell');
  });

  it('never reaches the client with arguments that are not a JSON object, and an oversized answer is cut for the model', async () => {
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'lookup_ticket', call_id: 'not-json', arguments: '{"id": ' },
          { type: 'function_call', name: 'lookup_ticket', call_id: 'array', arguments: '["T-1"]' },
          { type: 'function_call', name: 'lookup_ticket', call_id: 'big', arguments: { id: 'T-5' } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'ok' }] },
    );
    const session = await server.newSession({ cwd: workspace, client_tools: [LOOKUP] });
    const turn = startTurn(session, 'look');
    await server.waitForMsg('client_tool_call', { session, where: (m) => m.call_id === 'big' });
    const huge = `first line\n${'x'.repeat(200)}\n`.repeat(2000) + 'last line';
    server.submit({ type: 'client_tool_output', call_id: 'big', output: huge, success: true }, session);
    await server.waitForMsg('task_complete', { session, id: turn });
    const calls = server.ofSession(session).filter((e) => e.msg.type === 'client_tool_call');
    expect(calls.map((e) => (e.msg as { call_id: string }).call_id)).toEqual(['big']);
    const next = model.requests[1]!;
    expect(outputFor(next, 'not-json')).toMatch(/^the arguments of lookup_ticket are not valid JSON/);
    expect(outputFor(next, 'array')).toMatch(/^invalid arguments for lookup_ticket/);
    const cut = outputFor(next, 'big')!;
    expect(cut.length).toBeLessThan(11 * 1024);
    expect(cut.startsWith('first line\n')).toBe(true);
    expect(cut.endsWith('last line')).toBe(true);
    expect(cut).toMatch(/lines \(\d+ bytes\) omitted/);
  });

  it('is aborted by an interrupt: the model later sees the call as aborted, and a late answer is refused', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'lookup_ticket', call_id: 'slow', arguments: { id: 'T-9' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'next' }] },
    );
    const session = await server.newSession({ cwd: workspace, client_tools: [LOOKUP] });
    const turn = startTurn(session, 'look it up');
    await server.waitForMsg('client_tool_call', { session });
    server.submit({ type: 'interrupt' }, session);
    const aborted = await server.waitForMsg('turn_aborted', { session, id: turn });
    expect(aborted.msg.reason).toBe('interrupted');
    const late = server.submit({ type: 'client_tool_output', call_id: 'slow', output: 'too late', success: true }, session);
    await server.waitFor((e) => e.id === late && e.msg.type === 'error', 'the refusal of the late answer');
    expect(errorsFor(late)).toEqual(['client_tool_output: no client tool call is waiting with call_id slow: no turn is running']);

    await server.turn(session, 'go on');
    expect(model.requests).toHaveLength(2);
    expect(outputFor(model.requests[1]!, 'slow')).toMatch(/^aborted/);
  });
});

describe('a client tool at session creation', () => {
  const refusal = async (config: Record<string, unknown>) => {
    const id = server.submit({ type: 'new_session', config: { cwd: workspace, ...config } });
    const error = await server.waitFor((e) => e.id === id && e.msg.type === 'error', 'the refusal');
    expect(server.events.some((e) => e.id === id && e.msg.type === 'session_configured')).toBe(false);
    return (error.msg as { message: string }).message;
  };
  const tool = (name: string) => ({ name, description: 'd', parameters: { type: 'object' } });

  it('is refused when it takes the name of a built-in tool or an MCP server tool, naming both', async () => {
    expect(await refusal({ client_tools: [tool('shell')] })).toContain('client_tools: "shell" has the name of the built-in tool shell');
    expect(await refusal({ client_tools: [tool('spawn_agent')] })).toContain('built-in tool spawn_agent');
    const mcp = { mcp_servers: { docs: { command: 'never-started' } }, client_tools: [tool('docs__search')] };
    expect(await refusal(mcp)).toContain('client_tools: "docs__search" clashes with the tools of MCP server "docs" (named docs__<tool>)');
    expect(server.events.filter((e) => e.msg.type === 'session_configured')).toEqual([]);
  });

  it('is refused when its schema is not an object schema or its name cannot be called', async () => {
    expect(await refusal({ client_tools: [{ ...tool('x'), parameters: { type: 'array' } }] })).toMatch(/config\.client_tools\.0\.parameters\.type/);
    expect(await refusal({ client_tools: [tool('no spaces')] })).toMatch(/config\.client_tools\.0\.name: must be 1 to 64 letters/);
    expect(await refusal({ client_tools: [tool('t'), tool('t')] })).toMatch(/config\.client_tools: two client tools have the same name/);
  });
});
