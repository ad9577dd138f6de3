import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Event } from '../../protocol/index.js';
import { seqProblems, type AppServerProcess } from '../support/app-server-process.js';
import type { WorkerProcess } from '../support/worker-process.js';
import { waitFor } from '../support/wait.js';
import { NatsCluster } from '../support/nats-cluster.js';

/**
 * Sessions that outlive their worker: real nats-server with JetStream, real `troupe worker`
 * processes killed with SIGKILL, and `troupe app-server --nats` as the client's gateway. Leases
 * are short here (TROUPE_LEASE_MS) so adoption comes quickly; nothing asserts on timing.
 */

const LEASE_MS = '1500';

const cluster = new NatsCluster({ name: 'failover', settleMs: 200 });

/** Workers share one home, as on a shared volume (the log still decides), and short leases. */
function startWorker(id: string, capacity = 4) {
  const env = { TROUPE_LEASE_MS: LEASE_MS, TROUPE_LOG: process.env.FAILOVER_LOG ?? 'warn' };
  return cluster.startWorker(id, capacity, { home: join(cluster.dir, 'home'), env });
}

/** The gateway and the workers `ids`, started side by side; resolves once every worker is ready. */
async function startAll(...ids: string[]): Promise<AppServerProcess> {
  const [gateway] = await Promise.all([cluster.startGateway(), ...ids.map((id) => startWorker(id))]);
  return gateway;
}

async function openSession(gateway: AppServerProcess, config: Record<string, unknown> = {}): Promise<{ sessionId: string; workerId: string }> {
  const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir, approval_policy: 'never', sandbox_policy: 'danger-full-access', ...config } });
  const event = await gateway.waitFor((e) => e.id === id && (e.msg.type === 'session_configured' || e.msg.type === 'error'), 'the session');
  if (event.msg.type !== 'session_configured') throw new Error(`no session: ${JSON.stringify(event.msg)}`);
  return { sessionId: event.msg.session_id, workerId: event.msg.worker_id };
}

function byId(id: string): WorkerProcess {
  const worker = cluster.workers.find((w) => w.id === id);
  if (!worker) throw new Error(`no worker ${id}`);
  return worker;
}

async function lines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '');
}

function shell(script: string, callId: string) {
  return { type: 'function_call' as const, name: 'shell', call_id: callId, arguments: { command: ['sh', '-c', script] } };
}

function outputsIn(body: unknown, callId: string): unknown[] {
  const input = (body as { input?: { type: string; call_id?: string }[] }).input ?? [];
  return input.filter((item) => item.type === 'function_call_output' && item.call_id === callId);
}

function sessionEvents(gateway: AppServerProcess, sessionId: string): Event[] {
  return gateway.events.filter((e) => e.session_id === sessionId);
}

describe('failover on NATS', { timeout: 60_000 }, () => {
  it('finishes a turn on another worker after kill -9 during a tool call, without running a finished call again', async () => {
    const gateway = await startAll('a', 'b');
    const { sessionId, workerId } = await openSession(gateway);
    const once = join(cluster.dir, 'once.txt');
    const slow = join(cluster.dir, 'slow.txt');
    cluster.model.enqueue(
      { kind: 'response', items: [shell(`echo run >> ${once}`, 'call-once'), shell(`echo run >> ${slow}; sleep 2`, 'call-slow')] },
      { kind: 'response', items: [{ type: 'message', text: 'Finished elsewhere.' }] },
    );
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'run both' }] }, sessionId);
    await gateway.waitForMsg('exec_command_end', { session: sessionId, where: (m) => m.call_id === 'call-once' });
    await gateway.waitForMsg('exec_command_begin', { session: sessionId, where: (m) => m.call_id === 'call-slow' });
    await waitFor(() => existsSync(slow), 'the slow call to start');
    await byId(workerId).kill();

    const end = await gateway
      .waitFor((e) => e.id === turnId && e.msg.type === 'task_complete', 'the turn to finish', 30_000)
      .catch((error: Error) => {
        throw new Error(`${error.message}\n${cluster.workers.map((w) => `${w.id}: ${w.stderr}`).join('\n')}`);
      });
    expect(end.msg).toMatchObject({ last_agent_message: 'Finished elsewhere.' });
    // The turn was announced once, by the first worker; the adopting one takes it up without a second task_started.
    const lifecycle = ['task_started', 'task_complete', 'turn_aborted'];
    expect(
      sessionEvents(gateway, sessionId)
        .filter((e) => e.id === turnId && lifecycle.includes(e.msg.type))
        .map((e) => e.msg.type),
    ).toEqual(['task_started', 'task_complete']);
    const moved = sessionEvents(gateway, sessionId).find((e) => e.msg.type === 'background_event');
    expect(moved?.msg).toMatchObject({ message: expect.stringMatching(/moved to worker/) });
    expect(await lines(once)).toEqual(['run']);
    expect(await lines(slow)).toEqual(['run']);
    // The model saw each call answered exactly once: the finished one with its real output,
    // the interrupted one with the failover note.
    const last = cluster.model.requests.at(-1);
    expect(outputsIn(last?.body, 'call-once')).toHaveLength(1);
    expect(JSON.stringify(outputsIn(last?.body, 'call-slow'))).toMatch(/worker that stopped/);
    expect(cluster.model.violations).toEqual([]);
    expect(seqProblems(gateway.events)).toEqual([]);
    expect(gateway.junk).toEqual([]);
  });

  it("runs a repeatable tool's call again on the adopting worker after kill -9 mid-call; any other tool's call gets the failover note", async () => {
    const tools = join(import.meta.dirname, '..', 'fixtures', 'failover-tools.mjs');
    const start = (id: string) =>
      cluster.startWorker(id, 4, { home: join(cluster.dir, 'home'), env: { TROUPE_LEASE_MS: LEASE_MS }, args: ['--tools', `marks=${tools}`] });
    const [gateway] = await Promise.all([cluster.startGateway(), start('ta'), start('tb')]);
    const { sessionId, workerId } = await openSession(gateway, { tool_sets: ['marks'] });
    const again = join(cluster.dir, 'again.txt');
    const once = join(cluster.dir, 'once-only.txt');
    const gate = join(cluster.dir, 'gate');
    cluster.model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'mark_repeatable', call_id: 'call-again', arguments: { file: again, gate } },
          { type: 'function_call', name: 'mark_once', call_id: 'call-once', arguments: { file: once, gate } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'Both answered.' }] },
    );
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'mark both' }] }, sessionId);
    // Each tool opens its file, then writes its pid: the file exists a moment before the line.
    await waitFor(
      async () => existsSync(again) && existsSync(once) && (await lines(again)).length === 1 && (await lines(once)).length === 1,
      'both calls to mark their files',
    );
    const dead = byId(workerId);
    await dead.kill();
    await writeFile(gate, '');

    const end = await gateway.waitFor((e) => e.id === turnId && e.msg.type === 'task_complete', 'the turn to finish', 30_000);
    expect(end.msg).toMatchObject({ last_agent_message: 'Both answered.' });
    const survivor = cluster.workers.find((w) => w.id !== workerId && w.id.startsWith('t'))!;
    expect(await lines(again)).toEqual([String(dead.pid), String(survivor.pid)]);
    expect(await lines(once)).toEqual([String(dead.pid)]);
    const last = cluster.model.requests.at(-1);
    expect(outputsIn(last?.body, 'call-again')).toEqual([expect.objectContaining({ output: 'marked' })]);
    expect(JSON.stringify(outputsIn(last?.body, 'call-once'))).toMatch(/worker that stopped/);
    expect(seqProblems(gateway.events)).toEqual([]);
  });

  it('sends a hanging model request again on the adopting worker', async () => {
    const gateway = await startAll('a', 'b');
    const { sessionId, workerId } = await openSession(gateway);
    const once = join(cluster.dir, 'once.txt');
    cluster.model.enqueue(
      { kind: 'response', items: [shell(`echo run >> ${once}`, 'call-1')] },
      { kind: 'hang' },
      { kind: 'response', items: [{ type: 'message', text: 'Answered after the move.' }] },
    );
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, sessionId);
    await waitFor(() => cluster.model.requests.length === 2, 'the second model request');
    await byId(workerId).kill();
    const end = await gateway.waitFor((e) => e.id === turnId && e.msg.type === 'task_complete', 'the turn to finish', 30_000);
    expect(end.msg).toMatchObject({ last_agent_message: 'Answered after the move.' });
    expect(cluster.model.requests).toHaveLength(3);
    expect(outputsIn(cluster.model.requests[2]?.body, 'call-1')).toHaveLength(1);
    expect(await lines(once)).toEqual(['run']);
    expect(seqProblems(gateway.events)).toEqual([]);

    // The session goes on where it now runs.
    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Next turn.' }] });
    const next = await gateway.turn(sessionId, 'again');
    expect(next.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'Next turn.' });
    expect(seqProblems(gateway.events)).toEqual([]);
  });

  it('asks a pending approval again after the crash and runs the call once approved', async () => {
    const gateway = await startAll('a', 'b');
    const { sessionId, workerId } = await openSession(gateway, { approval_policy: 'untrusted' });
    const marker = join(cluster.dir, 'approved.txt');
    cluster.model.enqueue(
      { kind: 'response', items: [shell(`echo yes >> ${marker}`, 'call-ask')] },
      { kind: 'response', items: [{ type: 'message', text: 'Ran it.' }] },
    );
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'write it' }] }, sessionId);
    await gateway.waitForMsg('exec_approval_request', { session: sessionId });
    const before = gateway.events.length;
    await byId(workerId).kill();
    const again = await gateway.waitFor(
      (e) => e.session_id === sessionId && e.msg.type === 'exec_approval_request',
      'the approval request again',
      30_000,
      before,
    );
    expect(again.msg).toMatchObject({ call_id: 'call-ask' });
    gateway.submit({ type: 'exec_approval', id: 'call-ask', decision: 'approved' }, sessionId);
    const end = await gateway.waitFor((e) => e.id === turnId && e.msg.type === 'task_complete', 'the turn to finish', 30_000);
    expect(end.msg).toMatchObject({ last_agent_message: 'Ran it.' });
    expect(await lines(marker)).toEqual(['yes']);
    expect(seqProblems(gateway.events)).toEqual([]);
  });

  it('keeps an approved_for_session grant through a kill -9: the same command is not asked again', async () => {
    const gateway = await startAll('a', 'b');
    const { sessionId, workerId } = await openSession(gateway, { approval_policy: 'untrusted' });
    const marker = join(cluster.dir, 'granted.txt');
    const command = `echo ran >> ${marker}`;
    cluster.model.enqueue({ kind: 'response', items: [shell(command, 'call-first')] }, { kind: 'response', items: [{ type: 'message', text: 'First.' }] });
    const first = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'write it' }] }, sessionId);
    await gateway.waitForMsg('exec_approval_request', { session: sessionId, where: (m) => m.call_id === 'call-first' });
    gateway.submit({ type: 'exec_approval', id: 'call-first', decision: 'approved_for_session' }, sessionId);
    await gateway.waitFor((e) => e.id === first && e.msg.type === 'task_complete', 'the first turn');

    const before = gateway.events.length;
    await byId(workerId).kill();
    await gateway.waitFor(
      (e) => e.session_id === sessionId && e.msg.type === 'background_event' && /moved to worker/.test(e.msg.message),
      'the session to be adopted',
      30_000,
      before,
    );

    cluster.model.enqueue(
      { kind: 'response', items: [shell(command, 'call-second')] },
      { kind: 'response', items: [{ type: 'message', text: 'Second, without asking.' }] },
    );
    const end = await gateway.turn(sessionId, 'write it again');
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'Second, without asking.' });
    const asked = sessionEvents(gateway, sessionId).filter((e) => e.msg.type === 'exec_approval_request');
    expect(asked.map((e) => (e.msg.type === 'exec_approval_request' ? e.msg.call_id : null))).toEqual(['call-first']);
    expect(await lines(marker)).toEqual(['ran', 'ran']);
    expect(seqProblems(gateway.events)).toEqual([]);
  });

  it('announces a client tool call again after a kill -9, and the turn completes with the answer to it', async () => {
    const gateway = await startAll('a', 'b');
    const lookup = { name: 'lookup_ticket', description: 'Look a ticket up.', parameters: { type: 'object', properties: { id: { type: 'string' } } } };
    const { sessionId, workerId } = await openSession(gateway, { client_tools: [lookup] });
    const marker = join(cluster.dir, 'beside-client.txt');
    cluster.model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'lookup_ticket', call_id: 'call-client', arguments: { id: 'T-1' } },
          shell(`echo ran >> ${marker}`, 'call-shell'),
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'Answered on the new worker.' }] },
    );
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'look it up' }] }, sessionId);
    const first = await gateway.waitForMsg('client_tool_call', { session: sessionId });
    await gateway.waitForMsg('exec_command_end', { session: sessionId, where: (m) => m.call_id === 'call-shell' });
    const before = gateway.events.length;
    await byId(workerId).kill();
    const again = await gateway.waitFor((e) => e.session_id === sessionId && e.msg.type === 'client_tool_call', 'the call announced again', 30_000, before);
    expect(again.msg).toEqual(first.msg);
    expect(again.msg).toMatchObject({ call_id: 'call-client', turn_id: turnId, name: 'lookup_ticket', arguments: { id: 'T-1' } });
    gateway.submit({ type: 'client_tool_output', call_id: 'call-client', output: 'T-1 is fixed', success: true }, sessionId);
    const end = await gateway.waitFor((e) => e.id === turnId && e.msg.type === 'task_complete', 'the turn to finish', 30_000);
    expect(end.msg).toMatchObject({ last_agent_message: 'Answered on the new worker.' });
    // The model got the client's answer once, the shell call was not run again.
    const last = cluster.model.requests.at(-1);
    expect(outputsIn(last?.body, 'call-client')).toEqual([{ type: 'function_call_output', call_id: 'call-client', output: 'T-1 is fixed' }]);
    expect(outputsIn(last?.body, 'call-shell')).toHaveLength(1);
    expect(await lines(marker)).toEqual(['ran']);
    expect(cluster.model.violations).toEqual([]);
    expect(seqProblems(gateway.events)).toEqual([]);
  });

  it('keeps an idle session through a broker restart', async () => {
    const gateway = await startAll('a');
    const { sessionId } = await openSession(gateway);
    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Before.' }] });
    expect((await gateway.turn(sessionId, 'one')).msg).toMatchObject({ last_agent_message: 'Before.' });
    await cluster.nats.restart();
    cluster.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'After.' }] });
    const id = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'two' }] }, sessionId);
    const end = await gateway.waitFor((e) => e.id === id && (e.msg.type === 'task_complete' || e.msg.type === 'error'), 'the turn after the restart', 40_000);
    if (end.msg.type === 'error') throw new Error(`error: ${end.msg.message}\n${gateway.stderr}`);
    expect(end.msg).toMatchObject({ type: 'task_complete', last_agent_message: 'After.' });
    expect(seqProblems(gateway.events)).toEqual([]);
  });
});
