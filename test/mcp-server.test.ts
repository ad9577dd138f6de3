import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, type CallToolResult, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { troupeBin } from './support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { inputTexts, outputFor } from '../testing/requests.js';

let model: FakeModelServer;
let workspace: string;
let home: string;
let clients: Client[] = [];

beforeEach(async () => {
  model = await startFakeModelServer();
  workspace = await mkdtemp(join(tmpdir(), 'troupe-mcp-ws-'));
  home = await mkdtemp(join(tmpdir(), 'troupe-mcp-home-'));
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  expect(model.violations).toEqual([]);
  await model.close();
  await rm(workspace, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

/** `troupe mcp-server` as a child process, with the SDK's own client in front. */
async function connect(
  options: { elicit?: (message: string) => ElicitResult } = {},
): Promise<{ client: Client; transport: StdioClientTransport; asked: string[] }> {
  const asked: string[] = [];
  const client = new Client({ name: 'test-client', version: '1.0.0' }, { capabilities: options.elicit ? { elicitation: { form: {} } } : {} });
  const elicit = options.elicit;
  if (elicit) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return elicit(request.params.message);
    });
  }
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [troupeBin(), 'mcp-server'],
    env: {
      OPENAI_BASE_URL: model.url,
      OPENAI_API_KEY: 'test-key',
      TROUPE_HOME: home,
      TROUPE_MODEL: 'test-model',
      TROUPE_RETRY_BASE_MS: '1',
      TROUPE_LOG: 'warn',
    },
    stderr: 'pipe',
  });
  clients.push(client);
  await client.connect(transport);
  return { client, transport, asked };
}

async function callTool(client: Client, name: string, args: Record<string, unknown>, progress: string[] = []): Promise<CallToolResult> {
  const result = await client.callTool({ name, arguments: args }, undefined, {
    onprogress: (p) => {
      if (p.message) progress.push(p.message);
    },
    resetTimeoutOnProgress: true,
  });
  return result as CallToolResult;
}

const texts = (result: CallToolResult): string[] => result.content.flatMap((c) => (c.type === 'text' ? [c.text] : []));

describe('troupe mcp-server', () => {
  it('lists the troupe and troupe-reply tools', async () => {
    const { client } = await connect();
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['troupe', 'troupe-reply']);
    const troupe = tools.find((t) => t.name === 'troupe');
    expect(Object.keys(troupe?.inputSchema.properties ?? {}).sort()).toEqual(
      ['approval_policy', 'base_instructions', 'cwd', 'model', 'prompt', 'sandbox_policy'].sort(),
    );
    expect(troupe?.inputSchema.required).toEqual(['prompt']);
    const reply = tools.find((t) => t.name === 'troupe-reply');
    expect(reply?.inputSchema.required?.sort()).toEqual(['prompt', 'session_id']);
    expect(troupe?.outputSchema?.properties).toHaveProperty('session_id');
  });

  it('runs a turn with troupe, continues it with troupe-reply', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'message', text: 'The answer is 42.' }] },
      { kind: 'response', items: [{ type: 'message', text: 'Still 42.' }] },
    );
    const { client } = await connect();
    const progress: string[] = [];
    const first = await callTool(client, 'troupe', { prompt: 'What is the answer?', cwd: workspace }, progress);
    expect(first.isError).toBeFalsy();
    expect(texts(first)).toEqual(['The answer is 42.']);
    const sessionId = (first.structuredContent as { session_id: string }).session_id;
    expect(first.structuredContent).toEqual({ session_id: expect.any(String), content: 'The answer is 42.' });
    expect(progress).toContain('turn started');
    // (The last notifications may lose the race with the result in the SDK client, which
    // handles notifications a microtask later than responses; the first ones cannot.)
    expect(inputTexts(model.requests[0]!).join('\n')).toContain(`<cwd>${workspace}</cwd>`);

    const second = await callTool(client, 'troupe-reply', { session_id: sessionId, prompt: 'Are you sure?' });
    expect(second.structuredContent).toEqual({ session_id: sessionId, content: 'Still 42.' });
    const seen = inputTexts(model.requests[1]!);
    expect(seen).toEqual(expect.arrayContaining(['What is the answer?', 'The answer is 42.', 'Are you sure?']));

    const unknown = await callTool(client, 'troupe-reply', { session_id: 'nope', prompt: 'hi' });
    expect(unknown.isError).toBe(true);
    expect(texts(unknown)[0]).toContain('no session nope');
  });

  it('asks for approvals through elicitation: accept runs the command', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['sh', '-c', 'echo ran > marker.txt'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Wrote the marker.' }] },
    );
    const { client, asked } = await connect({ elicit: () => ({ action: 'accept', content: {} }) });
    const progress: string[] = [];
    const result = await callTool(client, 'troupe', { prompt: 'write a marker', cwd: workspace, approval_policy: 'untrusted' }, progress);
    expect(texts(result)).toEqual(['Wrote the marker.']);
    expect(progress).toContain("running: sh -c 'echo ran > marker.txt'");
    expect(asked).toHaveLength(1);
    expect(asked[0]).toContain("sh -c 'echo ran > marker.txt'");
    expect(await readFile(join(workspace, 'marker.txt'), 'utf8')).toBe('ran\n');
    expect(outputFor(model.requests[1]!, 'c1')).toContain('Exit code: 0');
  });

  it('declining denies the command; cancel stops the turn', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['touch', 'declined.txt'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'I was not allowed.' }] },
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c2', arguments: { command: ['touch', 'cancelled.txt'] } }] },
    );
    let answer: ElicitResult['action'] = 'decline';
    const { client } = await connect({ elicit: () => ({ action: answer }) });
    const declined = await callTool(client, 'troupe', { prompt: 'touch it', cwd: workspace, approval_policy: 'untrusted' });
    expect(texts(declined)).toEqual(['I was not allowed.']);
    expect(outputFor(model.requests[1]!, 'c1')).toMatch(/denied/i);
    expect(existsSync(join(workspace, 'declined.txt'))).toBe(false);

    answer = 'cancel';
    const sessionId = (declined.structuredContent as { session_id: string }).session_id;
    const cancelled = await callTool(client, 'troupe-reply', { session_id: sessionId, prompt: 'try again' });
    expect(cancelled.isError).toBe(true);
    expect(texts(cancelled)[0]).toContain('aborted');
    expect(existsSync(join(workspace, 'cancelled.txt'))).toBe(false);
  });

  it('denies approvals with a clear message when the client has no elicitation', async () => {
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['touch', 'nope.txt'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Denied, as expected.' }] },
    );
    const { client } = await connect();
    const result = await callTool(client, 'troupe', { prompt: 'touch it', cwd: workspace, approval_policy: 'untrusted' });
    const [final, note] = texts(result);
    expect(final).toBe('Denied, as expected.');
    expect(note).toMatch(/does not support elicitation/);
    expect(existsSync(join(workspace, 'nope.txt'))).toBe(false);
  });

  it('exits with 0 when its stdin ends, after a turn', async () => {
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Hi.' }] });
    const child = spawn(process.execPath, [troupeBin(), 'mcp-server'], {
      env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'test-key', TROUPE_HOME: home, TROUPE_MODEL: 'test-model' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const lines = createInterface({ input: child.stdout });
      const replies = new Map<number, unknown>();
      lines.on('line', (line) => {
        const message = JSON.parse(line) as { id?: number };
        if (message.id !== undefined) replies.set(message.id, message);
      });
      const send = (message: Record<string, unknown>): void => {
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
      };
      send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
      send({ method: 'notifications/initialized' });
      send({ id: 2, method: 'tools/call', params: { name: 'troupe', arguments: { prompt: 'hi', cwd: workspace } } });
      const deadline = Date.now() + 20_000;
      while (!replies.has(2)) {
        if (Date.now() > deadline) throw new Error('no answer to tools/call');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(replies.get(2)).toMatchObject({ result: { structuredContent: { content: 'Hi.' } } });
      child.stdin.end();
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
