import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startInspector, type Inspector } from '../cli/inspector/server.js';
import { z } from 'zod';
import { createRuntime, tool, type Runtime } from '../index.js';
import type { Event } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { outputFor } from '../testing/requests.js';
import { readInspectorStream } from './support/inspector-client.js';
import { waitFor } from './support/wait.js';

let model: FakeModelServer;
let home: string;
let workspace: string;
let runtime: Runtime;
let inspector: Inspector;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
  runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, model: 'test-model', cwd: workspace, retryBaseMs: 1 });
  inspector = await startInspector(runtime);
});

afterEach(async () => {
  await inspector.close();
  await runtime.close();
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
});

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One request with exactly these headers (fetch would not let a test set Host). */
function send(path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: inspector.port, path, method: options.method ?? 'GET', headers: { Host: `127.0.0.1:${inspector.port}`, ...options.headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const base = () => new URL(inspector.url).pathname;
const origin = () => `http://127.0.0.1:${inspector.port}`;

function postAnswer(body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return send(`${base()}approval`, {
    method: 'POST',
    headers: { Origin: origin(), 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('the inspector server', () => {
  it('listens on loopback only, at an address with an unguessable token', async () => {
    const url = new URL(inspector.url);
    expect(url.hostname).toBe('127.0.0.1');
    expect(url.pathname).toMatch(/^\/[A-Za-z0-9_-]{32}\/$/);
    const other = await startInspector(runtime);
    try {
      expect(new URL(other.url).pathname).not.toBe(url.pathname);
    } finally {
      await other.close();
    }
    const page = await send(base());
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script type="module" src="app.js">');
    expect(page.body).not.toContain('<script>');
    const withoutSlash = await send(base().slice(0, -1));
    expect(withoutSlash.status).toBe(308);
    // Only the page's own files: no other name, however it is spelled.
    for (const name of ['server.ts', '..%2fserver.ts', '../server.ts', 'toString', 'constructor', 'page/app.js']) {
      const answer = await send(`${base()}${name}`);
      // 404, or 403 where the URL's dot segments took the path out of the token's folder.
      expect([403, 404], name).toContain(answer.status);
      expect(answer.body).not.toContain('import');
    }
  });

  it('refuses every path without the token: the page, the event stream and the approval endpoint', async () => {
    const wrong = `/${'A'.repeat(32)}/`;
    for (const path of ['/', '/events', '/approval', '/app.js', wrong, `${wrong}events`, `${base().slice(0, -2)}/events`]) {
      const answer = await send(path);
      expect(answer.status, path).toBe(403);
      expect(answer.body).toContain('token');
    }
    const post = await send(`${wrong}approval`, {
      method: 'POST',
      headers: { Origin: origin(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ session_id: 's', call_id: 'c', kind: 'exec', decision: 'approved' }),
    });
    expect(post.status).toBe(403);
  });

  it('refuses a DNS-rebound Host and a foreign Origin, even with the token', async () => {
    const rebound = await send(`${base()}events`, { headers: { Host: `attacker.example:${inspector.port}` } });
    expect(rebound.status).toBe(421);
    expect(rebound.body).toContain('attacker.example');
    const foreignRead = await send(`${base()}events`, { headers: { Origin: 'http://attacker.example' } });
    expect(foreignRead.status).toBe(403);
    expect(foreignRead.body).toContain('foreign Origin');
    const foreignAnswer = await postAnswer({ session_id: 's', call_id: 'c', kind: 'exec', decision: 'approved' }, { Origin: 'http://attacker.example' });
    expect(foreignAnswer.status).toBe(403);
    // A form from another site can send neither JSON nor a missing Origin.
    const form = await send(`${base()}approval`, { method: 'POST', headers: { Origin: origin(), 'Content-Type': 'text/plain' }, body: '{}' });
    expect(form.status).toBe(415);
    const noOrigin = await send(`${base()}approval`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(noOrigin.status).toBe(403);
    const page = await send(base());
    expect(page.status).toBe(200);
  });

  it('names what is wrong with a bad answer, and takes no oversized one', async () => {
    const notJson = await postAnswer('{"session_id":');
    expect(notJson.status).toBe(400);
    expect(notJson.body).toContain('not valid JSON');
    const badDecision = await postAnswer({ session_id: 's', call_id: 'c', kind: 'exec', decision: 'yes please' });
    expect(badDecision.status).toBe(400);
    expect(badDecision.body).toContain('decision');
    const huge = await postAnswer({ session_id: 's', call_id: 'x'.repeat(100_000), kind: 'exec', decision: 'approved' });
    expect(huge.status).toBe(413);
  });

  it("streams the runtime's events, and an answer from the page is the exec_approval op every client sees", async () => {
    const file = join(workspace, 'approved.txt');
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'touch', arguments: { command: ['touch', file] } }] },
      { kind: 'response', match: (r) => outputFor(r, 'touch') !== undefined, items: [{ type: 'message', text: 'touched' }] },
    );
    const seen: Event[] = [];
    runtime.onEvent((event) => seen.push(event));
    const session = await runtime.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'touch it' }] });

    const streamed = await readInspectorStream(inspector.url, (events) => events.some((e) => e.msg.type === 'exec_approval_request'));
    expect(streamed[0]?.msg).toMatchObject({ type: 'session_configured', session_id: session.id });
    expect(streamed.find((e) => e.msg.type === 'exec_approval_request')?.msg).toMatchObject({ call_id: 'touch', command: ['touch', file] });
    expect(existsSync(file)).toBe(false);

    const answer = await postAnswer({ session_id: session.id, call_id: 'touch', kind: 'exec', decision: 'approved' });
    expect(answer.status).toBe(202);
    await waitFor(() => seen.some((e) => e.id === turn && e.msg.type === 'task_complete'), 'the turn to complete');
    expect(existsSync(file)).toBe(true);
    expect(outputFor(model.requests.at(-1)!, 'touch')).toBeDefined();

    // A page that connects now replays what happened; no streaming delta is kept.
    const replayed = await readInspectorStream(inspector.url, (events) => events.some((e) => e.id === turn && e.msg.type === 'task_complete'));
    expect(replayed.map((e) => e.msg.type)).toEqual(
      expect.arrayContaining(['session_configured', 'exec_approval_request', 'exec_command_end', 'task_complete']),
    );
    expect(replayed.filter((e) => e.msg.type.endsWith('_delta'))).toEqual([]);
  });

  it("answers a developer's tool that needs approval with the tool_approval op", async () => {
    const calls: unknown[] = [];
    const deploy = tool({
      name: 'deploy',
      description: 'Deploy.',
      parameters: z.object({ service: z.string() }),
      needsApproval: true,
      execute: (args) => {
        calls.push(args);
        return 'deployed';
      },
    });
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'deploy', call_id: 'dep', arguments: { service: 'api' } }] },
      { kind: 'response', match: (r) => outputFor(r, 'dep') !== undefined, items: [{ type: 'message', text: 'out' }] },
    );
    const seen: Event[] = [];
    runtime.onEvent((event) => seen.push(event));
    const session = await runtime.newSession({ cwd: workspace }, { tools: [deploy] });
    const turn = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'deploy' }] });
    const streamed = await readInspectorStream(inspector.url, (events) => events.some((e) => e.msg.type === 'tool_approval_request'));
    expect(streamed.find((e) => e.msg.type === 'tool_approval_request')?.msg).toMatchObject({ call_id: 'dep', tool: 'deploy', arguments: { service: 'api' } });
    expect(calls).toEqual([]);
    expect((await postAnswer({ session_id: session.id, call_id: 'dep', kind: 'tool', decision: 'approved' })).status).toBe(202);
    await waitFor(() => seen.some((e) => e.id === turn && e.msg.type === 'task_complete'), 'the turn to complete');
    expect(calls).toEqual([{ service: 'api' }]);
    expect(outputFor(model.requests.at(-1)!, 'dep')).toBe('deployed');
  });

  it('an answer for no pending call comes back to every client as the error any client would get', async () => {
    const seen: Event[] = [];
    runtime.onEvent((event) => seen.push(event));
    const session = await runtime.newSession({ cwd: workspace });
    const answer = await postAnswer({ session_id: session.id, call_id: 'nothing', kind: 'patch', decision: 'denied' });
    expect(answer.status).toBe(202);
    const { submission_id } = JSON.parse(answer.body) as { submission_id: string };
    await waitFor(() => seen.some((e) => e.id === submission_id && e.msg.type === 'error'), 'the error for the answer');
  });
});
