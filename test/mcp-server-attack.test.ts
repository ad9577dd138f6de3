/**
 * A hostile MCP client against `troupe mcp-server` (cli/mcp-server.ts): what it sends must not
 * end the sessions it already has.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { troupeBin } from './support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';

let model: FakeModelServer;
let workspace: string;
let home: string;
let children: ChildProcess[] = [];

beforeEach(async () => {
  model = await startFakeModelServer();
  workspace = await mkdtemp(join(tmpdir(), 'troupe-mcp-attack-ws-'));
  home = await mkdtemp(join(tmpdir(), 'troupe-mcp-attack-home-'));
});

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children = [];
  await model.close();
  await rm(workspace, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

/** `troupe mcp-server` spoken to in raw JSON-RPC lines. */
function server() {
  const child = spawn(process.execPath, [troupeBin(), 'mcp-server'], {
    env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'test-key', TROUPE_HOME: home, TROUPE_MODEL: 'test-model', TROUPE_LOG: 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  let exit: string | null = null;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const waiter of [...waiters]) waiter();
  };
  child.on('exit', (code, signal) => {
    exit = `exited (code ${code}, signal ${signal}); stderr: ${stderr.trim() || '(nothing)'}`;
    wake();
  });
  const replies = new Map<number, { result?: Record<string, unknown>; error?: { message: string } }>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (typeof message.id === 'number') replies.set(message.id, message);
    wake();
  });
  const send = (message: Record<string, unknown>): void => {
    child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
  };
  /** The reply to request `id`; rejects, saying how, if the server exits first. */
  const reply = (id: number) =>
    new Promise<{ result?: Record<string, unknown>; error?: { message: string } }>((resolve, reject) => {
      const check = (): void => {
        const found = replies.get(id);
        if (found) {
          waiters.delete(check);
          resolve(found);
        } else if (exit !== null) {
          waiters.delete(check);
          reject(new Error(`the server ${exit} before answering request ${id}`));
        }
      };
      waiters.add(check);
      check();
    });
  send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  send({ method: 'notifications/initialized' });
  return { send, reply, stderr: () => stderr };
}

describe('troupe mcp-server against a hostile client', () => {
  it('refuses a request over the stdio size limit and keeps serving the sessions it has', async () => {
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Hi.' }] }, { kind: 'response', items: [{ type: 'message', text: 'Again.' }] });
    const { send, reply, stderr } = server();
    await reply(1);
    send({ id: 2, method: 'tools/call', params: { name: 'troupe', arguments: { prompt: 'hi', cwd: workspace } } });
    const first = await reply(2);
    const sessionId = (first.result?.structuredContent as { session_id: string }).session_id;

    // 11 MiB in one line: over the 10 MiB the SDK's stdio transport buffers.
    send({ id: 3, method: 'tools/call', params: { name: 'troupe-reply', arguments: { session_id: sessionId, prompt: 'x'.repeat(11 * 1024 * 1024) } } });
    send({ id: 4, method: 'tools/call', params: { name: 'troupe-reply', arguments: { session_id: sessionId, prompt: 'again' } } });
    // Expected: the oversized request gets an error naming the limit (or is dropped), and the
    // server does not end: the session the client had still answers.
    const again = await Promise.race([
      reply(4),
      new Promise<never>((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to the next request within 20 s; stderr: ${stderr().trim() || '(nothing)'}`)), 20_000);
        timer.unref();
      }),
    ]);
    expect(again.result?.structuredContent).toEqual({ session_id: sessionId, content: 'Again.' });
    // The oversized request itself is answered, under its id, with the limit it broke.
    expect((await reply(3)).error?.message).toMatch(/^the request is \d+ bytes, more than the 10485760 a troupe mcp-server request may be/);
  });
});
