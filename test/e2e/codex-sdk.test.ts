import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Codex, ThreadEvent, ThreadOptions } from '@openai/codex-sdk';
import { describe, expect, it } from 'vitest';
import { inputTexts } from '../../testing/requests.js';
import { useCodexOnTroupe } from '../support/codex-sdk.js';
import { mcpEchoServerPath } from '../support/mcp-echo-server.js';
import { useScratch } from '../support/e2e.js';

// The official Codex SDK, pointed at troupe: it runs `<binary> exec --experimental-json ...`
// with the prompt on stdin and reads Codex's exec events (PROTOCOL.md, Codex SDK compatibility).

const scratch = useScratch();

const codexOnTroupe = useCodexOnTroupe();

/** A Codex client on troupe; the model's address and key go through the SDK's own options. */
function codex(config?: Record<string, string | number | boolean>): Codex {
  return codexOnTroupe({ env: { TROUPE_HOME: scratch.home }, baseUrl: scratch.model.url, ...(config ? { config } : {}) });
}

const threadOptions = (): ThreadOptions => ({
  workingDirectory: scratch.workspace,
  skipGitRepoCheck: true,
  model: 'sdk-model',
  sandboxMode: 'workspace-write',
});

describe('the Codex SDK driving troupe', () => {
  it('run: items, final response and usage, with the SDK options reaching the model', async () => {
    scratch.model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'reasoning', text: 'Look at the files first.' },
          { type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['bash', '-lc', `echo "two words" && echo 'a;b'`] } },
        ],
        usage: { input_tokens: 100, cached_input_tokens: 40, output_tokens: 10, reasoning_output_tokens: 3 },
      },
      { kind: 'response', items: [{ type: 'message', text: 'All done.' }], usage: { input_tokens: 150, cached_input_tokens: 0, output_tokens: 5 } },
    );
    const thread = codex().startThread({ ...threadOptions(), modelReasoningEffort: 'low', approvalPolicy: 'never', networkAccessEnabled: false });
    const turn = await thread.run('list the files');

    expect(thread.id).toMatch(/\S/);
    expect(turn.finalResponse).toBe('All done.');
    expect(turn.items.map((item) => item.type)).toEqual(['reasoning', 'command_execution', 'agent_message']);
    expect(turn.items[0]).toMatchObject({ type: 'reasoning', text: 'Look at the files first.' });
    expect(turn.items[1]).toEqual({
      id: expect.stringMatching(/^item_\d+$/),
      type: 'command_execution',
      command: `bash -lc 'echo "two words" && echo '\\''a;b'\\'''`,
      aggregated_output: 'two words\na;b\n',
      exit_code: 0,
      status: 'completed',
    });
    expect(new Set(turn.items.map((item) => item.id)).size).toBe(3);
    // The thread's usage over both requests.
    expect(turn.usage).toEqual({ input_tokens: 250, cached_input_tokens: 40, output_tokens: 15, reasoning_output_tokens: 3, cache_write_input_tokens: 0 });

    const first = scratch.model.requests[0]!;
    expect(first.body.model).toBe('sdk-model');
    expect(first.body.reasoning).toEqual({ effort: 'low' });
    expect(first.headers.authorization).toBe('Bearer sdk-key');
    expect(inputTexts(first).some((text) => text.includes('list the files'))).toBe(true);
  });

  it('runStreamed: the events in order, a failed command and a to-do list', async () => {
    scratch.model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'update_plan', call_id: 'p1', arguments: { plan: [{ step: 'try it', status: 'in_progress' }] } },
          { type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['sh', '-c', 'echo nope; exit 3'] } },
        ],
      },
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'update_plan', call_id: 'p2', arguments: { plan: [{ step: 'try it', status: 'completed' }] } }],
      },
      { kind: 'response', items: [{ type: 'message', text: 'It exits 3.' }] },
    );
    const thread = codex().startThread(threadOptions());
    const { events } = await thread.runStreamed('try it');
    const seen: ThreadEvent[] = [];
    for await (const event of events) seen.push(event);

    const summary = seen.map((e) => ('item' in e ? `${e.type}:${e.item.type}` : e.type));
    expect(summary).toEqual([
      'thread.started',
      'turn.started',
      'item.started:todo_list',
      'item.started:command_execution',
      'item.completed:command_execution',
      'item.updated:todo_list',
      'item.completed:agent_message',
      'item.completed:todo_list',
      'turn.completed',
    ]);
    const items = seen.flatMap((e) => ('item' in e ? [e.item] : []));
    expect(items[1]).toMatchObject({ type: 'command_execution', command: "sh -c 'echo nope; exit 3'", status: 'in_progress', aggregated_output: '' });
    expect(items[2]).toMatchObject({ id: items[1]!.id, exit_code: 3, status: 'failed', aggregated_output: 'nope\n' });
    expect(items.at(-1)).toEqual({ id: items[0]!.id, type: 'todo_list', items: [{ text: 'try it', completed: true }] });
    expect(seen[0]).toEqual({ type: 'thread.started', thread_id: thread.id });
  });

  it('resumeThread: the next turn continues the same thread', async () => {
    scratch.model.enqueue(
      { kind: 'response', items: [{ type: 'message', text: 'The secret is 42.' }] },
      { kind: 'response', items: [{ type: 'message', text: 'It was 42.' }] },
    );
    const client = codex();
    const first = client.startThread(threadOptions());
    await first.run('remember 42');
    const id = first.id!;

    const resumed = client.resumeThread(id, threadOptions());
    const turn = await resumed.run('what was the secret?');
    expect(turn.finalResponse).toBe('It was 42.');
    expect(resumed.id).toBe(id);
    const texts = inputTexts(scratch.model.requests[1]!);
    expect(texts.some((text) => text.includes('remember 42'))).toBe(true);
    expect(texts.some((text) => text.includes('The secret is 42.'))).toBe(true);
    expect(texts.some((text) => text.includes('what was the secret?'))).toBe(true);
  });

  it('outputSchema: the schema goes to the model as the response format', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    scratch.model.enqueue({ kind: 'response', items: [{ type: 'message', text: '{"answer":"yes"}' }] });
    const turn = await codex().startThread(threadOptions()).run('answer in JSON', { outputSchema: schema });
    expect(JSON.parse(turn.finalResponse)).toEqual({ answer: 'yes' });
    expect(scratch.model.requests[0]!.body.text).toMatchObject({ format: { type: 'json_schema', schema, strict: true } });
  });

  it('file changes and MCP tool calls become their items', async () => {
    await writeFile(join(scratch.home, 'config.json'), JSON.stringify({ mcp_servers: { echo: { command: process.execPath, args: [mcpEchoServerPath()] } } }));
    await writeFile(join(scratch.workspace, 'old.txt'), 'old\n');
    const patch = '*** Begin Patch\n*** Add File: new.txt\n+fresh\n*** Delete File: old.txt\n*** End Patch';
    scratch.model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'apply_patch', call_id: 'p1', arguments: { input: patch } }] },
      { kind: 'response', items: [{ type: 'function_call', name: 'echo__echo', call_id: 'm1', arguments: { text: 'over the wire' } }] },
      { kind: 'response', items: [{ type: 'function_call', name: 'echo__fail', call_id: 'm2', arguments: { message: 'it broke' } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Changed and called.' }] },
    );
    const turn = await codex()
      .startThread({ ...threadOptions(), approvalPolicy: 'never' })
      .run('change and call');
    expect(turn.items.map((item) => item.type)).toEqual(['file_change', 'mcp_tool_call', 'mcp_tool_call', 'agent_message']);
    expect(turn.items[0]).toMatchObject({
      type: 'file_change',
      status: 'completed',
      changes: expect.arrayContaining([
        { path: join(scratch.workspace, 'new.txt'), kind: 'add' },
        { path: join(scratch.workspace, 'old.txt'), kind: 'delete' },
      ]),
    });
    expect(await readFile(join(scratch.workspace, 'new.txt'), 'utf8')).toBe('fresh\n');
    expect(turn.items[1]).toMatchObject({
      type: 'mcp_tool_call',
      server: 'echo',
      tool: 'echo',
      arguments: { text: 'over the wire' },
      status: 'completed',
      result: { content: [expect.objectContaining({ type: 'text', text: expect.stringContaining('over the wire') })] },
    });
    expect(turn.items[2]).toMatchObject({ type: 'mcp_tool_call', tool: 'fail', status: 'failed', error: { message: expect.stringContaining('it broke') } });
  });

  it('a turn that fails rejects with the reason, and settings troupe lacks are refused by name', async () => {
    scratch.model.enqueue({ kind: 'http_error', status: 400, body: { error: { message: 'bad things in the request' } } });
    await expect(codex().startThread(threadOptions()).run('fail please')).rejects.toThrow(/bad things in the request/);
    await expect(codex({ profile: 'x' }).startThread(threadOptions()).run('hi')).rejects.toThrow(/--config profile: not a setting troupe knows/);
    await expect(
      codex()
        .startThread({ ...threadOptions(), webSearchMode: 'live' })
        .run('hi'),
    ).rejects.toThrow(/no web search tool/);
    await expect(codex().resumeThread('no-such-thread', threadOptions()).run('hi')).rejects.toThrow(/no-such-thread/);
  });
});
