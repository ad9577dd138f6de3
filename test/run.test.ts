import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { createRuntime, OutputValidationError, RunError, type Runtime } from '../index.js';
import { log } from '../lib/log.js';
import type { Event } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { inputTexts, outputFor } from '../testing/requests.js';

let model: FakeModelServer;
let home: string;
let workspace: string;
let runtime: Runtime;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-run-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-run-ws-'));
  runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: workspace });
});

afterEach(async () => {
  await runtime.close();
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
});

const Verdict = z.object({ ok: z.boolean(), reasons: z.array(z.string()) });
const say = (text: string) => ({ kind: 'response' as const, items: [{ type: 'message' as const, text }] });

describe('session.run', () => {
  it('resolves to the final message, the items of the turn and its usage', async () => {
    const session = await runtime.newSession();
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'reasoning', text: 'look first' },
          { type: 'function_call', name: 'shell', call_id: 'ls', arguments: { command: ['echo', 'listing'] } },
        ],
        usage: { input_tokens: 100, output_tokens: 10 },
      },
      { ...say('all listed'), usage: { input_tokens: 150, output_tokens: 5 } },
    );
    const result = await session.run('list things');
    expect(result.finalMessage).toBe('all listed');
    expect(result.output).toBeUndefined();
    expect(result.items).toEqual([
      { type: 'reasoning', text: 'look first' },
      { type: 'command', call_id: 'ls', command: ['echo', 'listing'], cwd: workspace, exit_code: 0, output: expect.stringContaining('listing') },
      { type: 'agent_message', text: 'all listed' },
    ]);
    expect(result.usage).toMatchObject({ input_tokens: 250, output_tokens: 15, total_tokens: 265 });
    expect(inputTexts(model.requests[0]!).at(-1)).toBe('list things');
  });

  it('asks for JSON in the output schema and returns the parsed value', async () => {
    const session = await runtime.newSession();
    model.enqueue(say('{"ok":true,"reasons":["tests pass"]}'));
    const result = await session.run('is it ok?', { output: Verdict });
    const ok: boolean = result.output.ok;
    expect(ok).toBe(true);
    expect(result.output).toEqual({ ok: true, reasons: ['tests pass'] });
    const format = (model.requests[0]!.body.text as { format: { type: string; schema: Record<string, unknown> } }).format;
    expect(format.type).toBe('json_schema');
    expect(format.schema).toMatchObject({ type: 'object', properties: { ok: { type: 'boolean' }, reasons: { type: 'array' } }, required: ['ok', 'reasons'] });
  });

  it('sends one repair request when the answer does not validate', async () => {
    const session = await runtime.newSession();
    model.enqueue(say('{"ok":"yes"}'), say('{"ok":false,"reasons":["flaky"]}'));
    const result = await session.run('is it ok?', { output: Verdict });
    expect(result.output).toEqual({ ok: false, reasons: ['flaky'] });
    expect(model.requests).toHaveLength(2);
    const repair = inputTexts(model.requests[1]!).at(-1)!;
    expect(repair).toMatch(/did not match the required JSON schema: ok: .*reasons: /);
    expect(model.requests[1]!.body.text).toEqual(model.requests[0]!.body.text);
  });

  it('rejects with the raw message and the issues when the repair fails too', async () => {
    const session = await runtime.newSession();
    model.enqueue(say('not json at all'), say('{"ok":1}'));
    const error = await session.run('is it ok?', { output: Verdict }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutputValidationError);
    const failure = error as OutputValidationError;
    expect(failure.rawMessage).toBe('{"ok":1}');
    expect(failure.issues.map((i) => i.path.join('.'))).toEqual(['ok', 'reasons']);
    expect(failure.message).toMatch(/after one repair request/);
  });

  it('answers approvals through onApproval, and without it denies what would ask', async () => {
    const session = await runtime.newSession({ approval_policy: 'untrusted' });
    const touch = (id: string, file: string) => ({
      kind: 'response' as const,
      items: [{ type: 'function_call' as const, name: 'shell', call_id: id, arguments: { command: ['touch', file] } }],
    });
    model.enqueue(touch('t1', 'b.txt'), say('made b'));
    const asked: string[] = [];
    const approved = await session.run('make b', {
      onApproval: (request) => {
        asked.push(request.type === 'exec_approval_request' ? request.command.join(' ') : request.type);
        return 'approved';
      },
    });
    expect(asked).toEqual(['touch b.txt']);
    expect(approved.items).toContainEqual({
      type: 'approval',
      request: expect.objectContaining({ call_id: 't1', session_id: session.id }),
      decision: 'approved',
    });
    expect(outputFor(model.requests[1]!, 't1')).not.toMatch(/denied/);
    await expect(access(join(workspace, 'b.txt'))).resolves.toBeUndefined();

    model.enqueue(touch('t2', 'c.txt'), say('could not'));
    // Without onApproval the request is denied, with a warning that says how to answer it.
    const warn = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    let denied: Awaited<ReturnType<typeof session.run>>;
    try {
      denied = await session.run('make c');
      expect(warn).toHaveBeenCalledWith(expect.objectContaining({ call: 't2' }), expect.stringContaining('pass onApproval to run() to answer approvals'));
    } finally {
      warn.mockRestore();
    }
    expect(denied.items).toContainEqual({ type: 'approval', request: expect.objectContaining({ call_id: 't2' }), decision: 'denied' });
    expect(outputFor(model.requests[3]!, 't2')).toMatch(/denied/);
    await expect(access(join(workspace, 'c.txt'))).rejects.toThrow();
  });

  it('interrupts the turn when its signal aborts, and rejects with the reason', async () => {
    const session = await runtime.newSession();
    const events: Event[] = [];
    runtime.onEvent((e) => events.push(e));
    model.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const run = session.run('wait forever', { signal: controller.signal });
    await expect.poll(() => model.requests.length, { timeout: 30_000 }).toBe(1);
    controller.abort(new Error('user gave up'));
    await expect(run).rejects.toThrow('user gave up');
    expect(events.some((e) => e.msg.type === 'turn_aborted')).toBe(true);
  });

  it('rejects with a RunError when the turn fails', async () => {
    const session = await runtime.newSession();
    model.enqueue({ kind: 'http_error', status: 400, body: { error: { code: 'context_length_exceeded', message: 'too long' } } });
    const error = await session.run('too much').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunError);
    expect((error as RunError).code).toBe('context_window_exceeded');
  });
});

describe('runtime.run', () => {
  it('runs one turn in a session of its own and closes it', async () => {
    const events: Event[] = [];
    runtime.onEvent((e) => events.push(e));
    model.enqueue(say('{"ok":true,"reasons":[]}'));
    const result = await runtime.run({ prompt: 'check', output: Verdict, model: 'one-shot-model' });
    expect(result.output).toEqual({ ok: true, reasons: [] });
    expect(model.requests[0]!.body.model).toBe('one-shot-model');
    const configured = events.find((e) => e.msg.type === 'session_configured')!;
    expect(events.some((e) => e.session_id === configured.session_id && e.msg.type === 'shutdown_complete')).toBe(true);
  });
});
