import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createRuntime, SessionError, tool, ToolDefinitionError, type Runtime, type Tool, type ToolRunContext } from '../index.js';
import type { Event } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { inputTexts, outputFor } from '../testing/requests.js';

let model: FakeModelServer;
let home: string;
let runtime: Runtime | null = null;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-tools-'));
});

afterEach(async () => {
  await runtime?.close();
  runtime = null;
  await model.close();
  await rm(home, { recursive: true, force: true });
});

function open(tools?: readonly Tool[]): Runtime {
  runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home, tools });
  return runtime;
}

const toolNames = (request: { body: Readonly<Record<string, unknown>> }): string[] =>
  ((request.body.tools as { name: string }[] | undefined) ?? []).map((t) => t.name);

/** The events of one session, collected as they come. */
function recordEvents(rt: Runtime): Event[] {
  const events: Event[] = [];
  rt.onEvent((event) => events.push(event));
  return events;
}

describe('tools written with tool()', () => {
  it('are offered with their JSON Schema, run in parallel with a shell call, and report begin, progress and end', async () => {
    const seen: { args: unknown; ctx: ToolRunContext }[] = [];
    let releaseLookup!: () => void;
    const lookupMayFinish = new Promise<void>((resolve) => (releaseLookup = resolve));
    const lookup = tool({
      name: 'lookup_ticket',
      description: 'Find a ticket by its number.',
      parameters: z.object({ number: z.number().int().describe('The ticket number.') }),
      async execute(args, ctx) {
        seen.push({ args, ctx });
        ctx.progress({ step: 'searching' });
        await lookupMayFinish;
        return { number: args.number, title: 'Login fails' };
      },
    });
    const rt = open([lookup]);
    const events = recordEvents(rt);
    const session = await rt.newSession();
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'lookup_ticket', call_id: 't1', arguments: { number: 42 } },
          { type: 'function_call', name: 'shell', call_id: 's1', arguments: { command: ['echo', 'beside'] } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'found it' }] },
    );
    const result = session.run('find ticket 42');
    // The shell call ends while the tool is still working: the two run side by side.
    await expect.poll(() => events.some((e) => e.msg.type === 'exec_command_end'), { timeout: 60_000 }).toBe(true);
    expect(events.some((e) => e.msg.type === 'tool_call_end')).toBe(false);
    releaseLookup();
    expect((await result).finalMessage).toBe('found it');

    const spec = (model.requests[0]!.body.tools as { name: string; parameters: Record<string, unknown> }[]).find((t) => t.name === 'lookup_ticket');
    expect(spec?.parameters).toMatchObject({
      type: 'object',
      properties: { number: { type: 'integer', description: 'The ticket number.' } },
      required: ['number'],
    });
    expect(JSON.parse(outputFor(model.requests[1]!, 't1')!)).toEqual({ number: 42, title: 'Login fails' });
    expect(outputFor(model.requests[1]!, 's1')).toContain('beside');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.args).toEqual({ number: 42 });
    expect(seen[0]!.ctx).toMatchObject({ sessionId: session.id, callId: 't1', turn: { cwd: home, approvalPolicy: 'on-request' } });
    const mine = events.filter((e) => e.msg.type.startsWith('tool_call_')).map((e) => e.msg);
    expect(mine).toEqual([
      { type: 'tool_call_begin', call_id: 't1', turn_id: expect.any(String), tool: 'lookup_ticket', arguments: { number: 42 } },
      { type: 'tool_call_progress', call_id: 't1', tool: 'lookup_ticket', progress: { step: 'searching' } },
      {
        type: 'tool_call_end',
        call_id: 't1',
        turn_id: expect.any(String),
        tool: 'lookup_ticket',
        success: true,
        output: '{"number":42,"title":"Login fails"}',
        duration_ms: expect.any(Number),
      },
    ]);
  });

  it('refuse invalid arguments before execute runs, naming the field, and turn a throw into a failed output', async () => {
    let calls = 0;
    const failing = tool({
      name: 'deploy',
      description: 'Deploy a service.',
      parameters: z.object({ service: z.string(), replicas: z.number().int().min(1) }),
      execute() {
        calls++;
        throw new Error('the cluster is unreachable');
      },
    });
    const rt = open([failing]);
    const session = await rt.newSession();
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'deploy', call_id: 'bad', arguments: { service: 'api', replicas: 0 } }] },
      { kind: 'response', items: [{ type: 'function_call', name: 'deploy', call_id: 'throws', arguments: { service: 'api', replicas: 2 } }] },
      { kind: 'response', items: [{ type: 'message', text: 'gave up' }] },
    );
    const result = await session.run('deploy the api');
    expect(result.finalMessage).toBe('gave up');
    expect(outputFor(model.requests[1]!, 'bad')).toMatch(/invalid arguments for deploy: replicas: /);
    expect(outputFor(model.requests[2]!, 'throws')).toBe('deploy failed: the cluster is unreachable');
    expect(calls).toBe(1);
    expect(result.items.filter((i) => i.type === 'tool_call')).toEqual([
      {
        type: 'tool_call',
        call_id: 'throws',
        tool: 'deploy',
        arguments: { service: 'api', replicas: 2 },
        output: 'deploy failed: the cluster is unreachable',
        success: false,
      },
    ]);
  });

  it('wait for approval when they need it, showing the tool and its arguments, and remember approved_for_session', async () => {
    const ran: unknown[] = [];
    const wipe = tool({
      name: 'wipe_cache',
      description: 'Empty a cache.',
      parameters: z.object({ name: z.string() }),
      needsApproval: (args) => args.name !== 'scratch',
      execute(args) {
        ran.push(args.name);
        return `wiped ${args.name}`;
      },
    });
    const rt = open([wipe]);
    const session = await rt.newSession();
    const call = (id: string, name: string) => ({
      kind: 'response' as const,
      items: [{ type: 'function_call' as const, name: 'wipe_cache', call_id: id, arguments: { name } }],
    });
    model.enqueue(call('a', 'scratch'), call('b', 'users'), call('c', 'sessions'), call('d', 'orders'), {
      kind: 'response',
      items: [{ type: 'message', text: 'done' }],
    });
    const asked: unknown[] = [];
    const answers = ['denied', 'approved_for_session'] as const;
    const result = await session.run('wipe the caches', {
      onApproval: (request) => {
        asked.push(request);
        return answers[asked.length - 1] ?? 'abort';
      },
    });
    expect(result.finalMessage).toBe('done');
    // scratch needs none; users is denied; sessions is approved for the session, so orders is not asked.
    expect(ran).toEqual(['scratch', 'sessions', 'orders']);
    expect(asked).toEqual([
      { type: 'tool_approval_request', call_id: 'b', turn_id: expect.any(String), tool: 'wipe_cache', arguments: { name: 'users' }, session_id: session.id },
      { type: 'tool_approval_request', call_id: 'c', turn_id: expect.any(String), tool: 'wipe_cache', arguments: { name: 'sessions' }, session_id: session.id },
    ]);
    expect(outputFor(model.requests[2]!, 'b')).toMatch(/denied/);
  });

  it('are refused without asking when the approval policy is never', async () => {
    let ran = false;
    const guarded = tool({
      name: 'guarded',
      description: 'Needs a person.',
      parameters: z.object({}),
      needsApproval: true,
      execute: () => {
        ran = true;
      },
    });
    const rt = open([guarded]);
    const events = recordEvents(rt);
    const session = await rt.newSession({ approval_policy: 'never' });
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'guarded', call_id: 'g', arguments: {} }] },
      { kind: 'response', items: [{ type: 'message', text: 'ok' }] },
    );
    await session.run('go');
    expect(ran).toBe(false);
    expect(outputFor(model.requests[1]!, 'g')).toMatch(/guarded needs the user's approval, and this session's approval policy is "never"/);
    expect(events.some((e) => e.msg.type === 'tool_approval_request')).toBe(false);
  });

  it('given to one session are offered to it and its sub-agents, not to other sessions', async () => {
    const rt = open();
    const mine = tool({ name: 'only_mine', description: 'A tool of one session.', parameters: z.object({}), execute: () => 'mine' });
    const withTools = await rt.newSession({}, { tools: [mine] });
    const without = await rt.newSession();
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'spawn_agent', call_id: 'sp', arguments: { message: 'child task' } }] },
      { match: (r) => inputTexts(r).includes('child task'), kind: 'response', items: [{ type: 'message', text: 'child done' }] },
      { kind: 'response', items: [{ type: 'message', text: 'parent done' }] },
    );
    await withTools.run('spawn one');
    const child = model.requests.find((r) => inputTexts(r).includes('child task'))!;
    expect(toolNames(model.requests[0]!)).toContain('only_mine');
    expect(toolNames(child)).toContain('only_mine');
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'plain' }] });
    await without.run('hello');
    const plain = model.requests.find((r) => inputTexts(r).includes('hello'))!;
    expect(toolNames(plain)).not.toContain('only_mine');
    expect(toolNames(plain)).toContain('shell');
  });
});

describe('registering tools', () => {
  const named = (name: string) => tool({ name, description: 'x', parameters: z.object({}), execute: () => 'x' });

  it('refuses a name a built-in has, naming both', () => {
    expect(() => createRuntime({ home, tools: [named('shell')] })).toThrow('tool "shell" of the runtime\'s tools has the name of the built-in tool shell');
  });

  it('refuses a session tool named like a runtime tool, and one named like the tools of an MCP server of the session', async () => {
    const rt = open([named('search')]);
    await expect(rt.newSession({}, { tools: [named('search')] })).rejects.toThrow(
      /tool "search" of tool set "library-[^"]+" has the name of a tool of the runtime's tools/,
    );
    const error = await rt.newSession({ mcp_servers: { github: { command: 'true' } } }, { tools: [named('github__issues')] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect((error as SessionError).message).toMatch(/tool "github__issues" of tool set "library-[^"]+" is named like the tools of MCP server "github"/);
  });

  it('refuses a session naming a tool set this host does not have', async () => {
    const rt = open();
    await expect(rt.newSession({ tool_sets: ['billing'] })).rejects.toThrow(
      'the session needs tool set "billing", which this host does not have (it has: none; load it with troupe worker --tools)',
    );
  });

  it('checks the definition', () => {
    expect(() => named('has space')).toThrow(ToolDefinitionError);
    expect(() => tool({ name: 'n', description: '', parameters: z.object({}), execute: () => '' })).toThrow('tool n: description must not be empty');
    expect(() => tool({ name: 'n', description: 'd', parameters: z.string() as unknown as z.ZodObject, execute: () => '' })).toThrow(
      /tool n: parameters must be a zod object schema/,
    );
    expect(() => tool({ name: 'n', description: 'd', parameters: z.object({}), execute: () => '', repeatable: 'yes' as unknown as boolean })).toThrow(
      'tool n: repeatable must be true or false',
    );
  });
});
