import { afterEach, describe, expect, it } from 'vitest';
import { finishE2E, startE2E, type E2E } from '../support/e2e.js';
import { waitFor } from '../support/wait.js';

/**
 * The process log, read as a user would with TROUPE_LOG: JSON lines on stderr (stdout carries
 * only protocol events, which finishE2E checks), one per step at `info`, with the model
 * requests and bus traffic added at `debug`. The lines are found by their fields, not wording.
 */

type Line = Record<string, unknown> & { level: number };

let e2e: E2E | undefined;
afterEach(async () => {
  if (e2e) await finishE2E(e2e);
  e2e = undefined;
});

function logLines(stderr: string): Line[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Line);
}

/** Start app-server at `level` and run one turn with a shell call (after a failed request with `failFirst`); returns the session and turn ids. */
async function turnWithACommand(level: string, failFirst = false): Promise<{ e2e: E2E; sessionId: string; turnId: string }> {
  const started = await startE2E({ env: { TROUPE_LOG: level } });
  e2e = started;
  const { server, model, workspace } = started;
  const id = server.submit({ type: 'new_session', config: { cwd: workspace, approval_policy: 'never', sandbox_policy: 'danger-full-access' } });
  const sessionId = (await server.waitForMsg('session_configured', { id })).session_id!;
  if (failFirst) model.enqueue({ kind: 'http_error', status: 503, body: { error: { message: 'overloaded' } } });
  model.enqueue(
    { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['sh', '-c', 'exit 3'] } }] },
    { kind: 'response', items: [{ type: 'message', text: 'done' }] },
  );
  const end = await server.turn(sessionId, 'run it');
  expect(end.msg).toMatchObject({ type: 'task_complete' });
  return { e2e: started, sessionId, turnId: end.id! };
}

describe('TROUPE_LOG', () => {
  it('at info, says what the process does in one line per step, with session, turn, call and worker', async () => {
    const { e2e, sessionId, turnId } = await turnWithACommand('info', true);
    const { server } = e2e;
    const lines = () => logLines(server.stderr);
    await waitFor(() => lines().some((l) => l.turn === turnId && l.status !== undefined), 'the turn-ended line');
    const all = lines();
    expect(all.every((l) => l.level >= 30)).toBe(true);
    const placed = all.find((l) => l.session === sessionId && l.origin !== undefined);
    expect(placed).toMatchObject({ worker: 'local', origin: 'new', depth: 0, purpose: 'session' });
    const started = all.find((l) => l.turn === turnId && l.model !== undefined);
    expect(started).toMatchObject({ session: sessionId, worker: 'local', model: expect.any(String) });
    const ended = all.find((l) => l.turn === turnId && l.status !== undefined);
    expect(ended).toMatchObject({
      session: sessionId,
      worker: 'local',
      status: 'completed',
      duration_ms: expect.any(Number),
      total_tokens: expect.any(Number),
    });
    expect(ended!.total_tokens as number).toBeGreaterThan(0);
    const call = all.find((l) => l.call === 'c1' && l.duration_ms !== undefined);
    expect(call).toMatchObject({ session: sessionId, turn: turnId, worker: 'local', tool: 'shell', success: false, exit_code: 3 });
    const retry = all.find((l) => l.turn === turnId && l.max_attempts !== undefined);
    expect(retry).toMatchObject({ session: sessionId, worker: 'local', attempt: 1, err: expect.stringContaining('503') });
  });

  it('at debug, adds each model request and a summary of bus traffic', async () => {
    const { e2e, sessionId, turnId } = await turnWithACommand('debug');
    const { server } = e2e;
    const lines = () => logLines(server.stderr);
    await waitFor(() => lines().some((l) => l.received !== undefined), 'a bus traffic summary');
    const debug = lines().filter((l) => l.level === 20);
    const requests = debug.filter((l) => l.session === sessionId && l.turn === turnId && l.attempt === 1);
    // Two requests, each with its start and its response (with a token count).
    expect(requests.length).toBe(4);
    expect(requests.filter((l) => typeof l.tokens === 'number' && typeof l.duration_ms === 'number')).toHaveLength(2);
    const traffic = debug.find((l) => l.received !== undefined)!;
    expect(traffic.received).toMatchObject({ event: expect.any(Number) });
    expect(traffic.bytes).toEqual(expect.any(Number));
  });
});
