import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer } from '../../testing/index.js';
import { inputItems, outputFor } from '../../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E({ env: { TROUPE_MODEL_CONTEXT_WINDOW: '50000' } }));
});

afterEach(() => finishE2E({ model, server, workspace }));

const ok = { kind: 'response' as const, items: [{ type: 'message' as const, text: 'recovered' }] };

describe('model failures', () => {
  it('context window exceeded: one request, one error, a full token count, no retry', async () => {
    model.enqueue(
      {
        kind: 'http_error',
        status: 400,
        body: { error: { code: 'context_length_exceeded', type: 'invalid_request_error', message: 'Your input exceeds the context window of this model.' } },
      },
      ok,
    );
    const session = await server.newSession({ cwd: workspace });
    const end = await server.turn(session, 'big');
    expect(end.msg.type).toBe('task_complete');
    expect(model.requests).toHaveLength(1);
    const events = server.ofSession(session);
    const errors = events.filter((e) => e.msg.type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatchObject({ code: 'context_window_exceeded' });
    expect(events.some((e) => e.msg.type === 'stream_error')).toBe(false);
    const tokens = events.filter((e) => e.msg.type === 'token_count').at(-1);
    expect(tokens?.msg).toMatchObject({ info: { model_context_window: 50000, last_token_usage: { total_tokens: 50000 } } });
  });

  it('a stream cut before completion is retried and announced', async () => {
    model.enqueue({ kind: 'cut', items: [{ type: 'message', text: 'partial ans' }] }, ok);
    const session = await server.newSession({ cwd: workspace });
    const end = await server.turn(session, 'hi');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'recovered' });
    expect(model.requests).toHaveLength(2);
    const streamErrors = server.ofSession(session).filter((e) => e.msg.type === 'stream_error');
    expect(streamErrors).toHaveLength(1);
    expect(streamErrors[0]!.msg).toMatchObject({ attempt: 1, max_attempts: 5 });
  });

  it('5xx is retried with backoff until it works', async () => {
    const fail = { kind: 'http_error' as const, status: 503, body: { error: { message: 'overloaded' } } };
    model.enqueue(fail, fail, ok);
    const session = await server.newSession({ cwd: workspace });
    const end = await server.turn(session, 'hi');
    expect(end.msg).toMatchObject({ last_agent_message: 'recovered' });
    expect(model.requests).toHaveLength(3);
    const attempts = server.ofSession(session).flatMap((e) => (e.msg.type === 'stream_error' ? [e.msg.attempt] : []));
    expect(attempts).toEqual([1, 2]);
  });

  it('gives up after five retries with one error', async () => {
    const fail = { kind: 'http_error' as const, status: 500, body: { error: { message: 'boom' } } };
    model.enqueue(fail, fail, fail, fail, fail, fail);
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'hi');
    expect(model.requests).toHaveLength(6);
    const events = server.ofSession(session);
    expect(events.filter((e) => e.msg.type === 'stream_error')).toHaveLength(5);
    expect(events.filter((e) => e.msg.type === 'error').map((e) => e.msg)).toEqual([expect.objectContaining({ code: 'server_error' })]);
  });

  it('quota exhausted is not retried', async () => {
    model.enqueue(
      {
        kind: 'http_error',
        status: 429,
        body: { error: { code: 'insufficient_quota', type: 'insufficient_quota', message: 'You exceeded your current quota.' } },
      },
      ok,
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'hi');
    expect(model.requests).toHaveLength(1);
    const errors = server.ofSession(session).filter((e) => e.msg.type === 'error');
    expect(errors.map((e) => e.msg)).toEqual([expect.objectContaining({ code: 'quota_exceeded' })]);
  });

  it('unauthorized is not retried', async () => {
    model.enqueue({ kind: 'http_error', status: 401, body: { error: { message: 'bad key' } } }, ok);
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'hi');
    expect(model.requests).toHaveLength(1);
    expect(server.ofSession(session).find((e) => e.msg.type === 'error')?.msg).toMatchObject({ code: 'unauthorized' });
  });
});

/** Host pids of the `sleep <marker>` processes. */
function sleepers(marker: string): number[] {
  const table = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return table
    .split('\n')
    .filter((line) => line.trim().endsWith(`sleep ${marker}`) && !line.includes('sh -c'))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

function alive(pid: number): boolean {
  try {
    const state = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return state !== '' && !state.startsWith('Z');
  } catch {
    return false;
  }
}

describe('interrupt', () => {
  it('kills the running command tree, answers the call, and the next turn works', async () => {
    // A duration nobody else uses marks this test's processes, inside the sandbox or not.
    const marker = `${60 + Math.floor(Math.random() * 1000) / 1000}`;
    model.enqueue({
      kind: 'response',
      items: [
        {
          type: 'function_call',
          name: 'shell',
          call_id: 'long',
          arguments: { command: ['sh', '-c', `sleep ${marker} & sleep ${marker}; wait`], timeout_ms: 120000 },
        },
      ],
    });
    const session = await server.newSession({ cwd: workspace });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'wait a long time' }] }, session);
    await server.waitForMsg('exec_command_begin', { session });
    let pids: number[] = [];
    for (let i = 0; i < 100 && pids.length < 2; i++) {
      pids = sleepers(marker);
      if (pids.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);
    server.submit({ type: 'interrupt' }, session);
    const aborted = await server.waitForMsg('turn_aborted', { session, id: turnId });
    expect(aborted.msg.reason).toBe('interrupted');
    for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
    expect(pids.filter(alive)).toEqual([]);

    model.enqueue(ok);
    const end = await server.turn(session, 'next');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'recovered' });
    const next = model.requests.at(-1)!;
    expect(outputFor(next, 'long')).toMatch(/aborted/);
    expect(inputItems(next).filter((i) => i.type === 'function_call_output')).toHaveLength(1);
  });

  it('interrupts a model request in flight', async () => {
    model.enqueue({ kind: 'hang' });
    const session = await server.newSession({ cwd: workspace });
    const turnId = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'think forever' }] }, session);
    await server.waitForMsg('task_started', { session });
    for (let i = 0; i < 100 && model.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    server.submit({ type: 'interrupt' }, session);
    await server.waitForMsg('turn_aborted', { session, id: turnId });
    for (let i = 0; i < 100 && !model.requests[0]!.disconnected; i++) await new Promise((r) => setTimeout(r, 20));
    expect(model.requests[0]!.disconnected).toBe(true);
  });
});
