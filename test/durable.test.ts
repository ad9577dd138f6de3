import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventMsg, ResponseItem, RolloutLine, SessionMeta } from '../protocol/index.js';
import { DurableStore, leaseKeys } from '../lib/durable/store.js';
import { LeaseLostError } from '../lib/durable/errors.js';
import { GatewayDurability } from '../lib/durable/gateway-durability.js';
import { HostDurability } from '../lib/durable/host-durability.js';
import { INTERRUPTED_BY_FAILOVER, journaledRollout } from '../lib/durable/session-durability.js';
import type { SessionPort as SessionBindings } from '../machines/port.js';
import { Leases, leaseTiming, LeaseValue } from '../lib/durable/leases.js';
import { rebuildSession, RebuildError } from '../lib/durable/rebuild.js';
import type { LogRecord } from '../lib/durable/records.js';
import type { LogEntry } from '../lib/durable/session-log.js';
import { natsServerWithConnection } from './support/nats-connection.js';
import { waitFor } from './support/wait.js';

/**
 * The durable layer's pure part (rebuilding a session from hand-built log entries) and its
 * leases against a real nats-server with JetStream.
 */

const AT = '2025-01-01T00:00:00.000Z';
const SESSION = 'session-1';

const meta: SessionMeta = {
  session_id: SESSION,
  created_at: AT,
  cwd: '/work',
  model: 'test-model',
  parent_session_id: null,
  depth: 0,
  config: {},
  forked_from: null,
};

function line(item: Omit<RolloutLine, 'timestamp'>): LogEntry {
  return record({ type: 'rollout', line: { timestamp: AT, ...item } as RolloutLine });
}

function record(value: LogRecord): LogEntry {
  return { kind: 'record', record: value };
}

function event(seq: number, msg: EventMsg): LogEntry {
  return { kind: 'event', event: { id: null, session_id: SESSION, seq, msg } };
}

function item(payload: ResponseItem): LogEntry {
  return line({ type: 'response_item', payload });
}

function turnContext(turnId: string): LogEntry {
  return line({
    type: 'turn_context',
    payload: { turn_id: turnId, cwd: '/work', model: 'test-model', approval_policy: 'on-request', sandbox_policy: 'workspace-write' },
  });
}

const user = (text: string): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const assistant = (text: string): ResponseItem => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
const reasoning: ResponseItem = { type: 'reasoning', summary: [{ type: 'summary_text', text: 'thinking' }] };
const call = (callId: string): ResponseItem => ({ type: 'function_call', call_id: callId, name: 'shell', arguments: '{"command":["true"]}' });
const callOutput = (callId: string, output: string): ResponseItem => ({ type: 'function_call_output', call_id: callId, output });

/** A session with one finished turn, then `t2` begun with the user's input. */
function sessionWithOpenTurn(): LogEntry[] {
  return [
    line({ type: 'session_meta', payload: meta }),
    event(1, {
      type: 'session_configured',
      session_id: SESSION,
      model: 'test-model',
      cwd: '/work',
      approval_policy: 'on-request',
      sandbox_policy: 'workspace-write',
      rollout_path: '/r',
      parent_session_id: null,
      depth: 0,
      worker_id: 'a',
      history_entries: 0,
    }),
    turnContext('t1'),
    event(2, { type: 'task_started', turn_id: 't1', model_context_window: null }),
    item(user('first')),
    item(assistant('first answer')),
    event(3, { type: 'task_complete', turn_id: 't1', last_agent_message: 'first answer' }),
    turnContext('t2'),
    event(4, { type: 'task_started', turn_id: 't2', model_context_window: null }),
    item(user('second')),
  ];
}

describe('rebuildSession', () => {
  it('restores history, seq, rollout lines and applied ops of a finished turn', () => {
    const entries = sessionWithOpenTurn().slice(0, 7);
    const rebuilt = rebuildSession(entries);
    expect(rebuilt.meta).toEqual(meta);
    expect(rebuilt.history).toEqual([user('first'), assistant('first answer')]);
    expect(rebuilt.lastSeq).toBe(3);
    expect(rebuilt.openTurn).toBeNull();
    expect(rebuilt.historyCut).toBe(false);
    expect(rebuilt.closed).toBe(false);
    expect([...rebuilt.appliedOps]).toEqual(['t1']);
    // The meta is kept apart; every other line is there for the rollout file, events included.
    expect(rebuilt.lines.some((l) => l.type === 'session_meta')).toBe(false);
    expect(rebuilt.lines.map((l) => (l.type === 'event_msg' ? `event:${l.payload.type}` : l.type))).toEqual([
      'event:session_configured',
      'turn_context',
      'event:task_started',
      'response_item',
      'response_item',
      'event:task_complete',
    ]);
  });

  it('keeps settings changes and the ids of applied ops in log order', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn().slice(0, 7),
      record({ type: 'op_done', id: 'op-1', override: { model: 'other-model' } }),
      record({ type: 'op_done', id: 'op-2' }),
      record({ type: 'op_done', id: 'op-3', override: { cwd: '/elsewhere', approval_policy: 'never' } }),
    ]);
    expect(rebuilt.overrides).toEqual([{ model: 'other-model' }, { cwd: '/elsewhere', approval_policy: 'never' }]);
    expect([...rebuilt.appliedOps].sort()).toEqual(['op-1', 'op-2', 'op-3', 't1']);
  });

  it('starts from a compaction: the replacement history, then what came after', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn().slice(0, 7),
      line({ type: 'compacted', payload: { message: 'compacted', replacement_history: [user('summary')] } }),
      item(user('after')),
    ]);
    expect(rebuilt.history).toEqual([user('summary'), user('after')]);
  });

  it('takes the open round out of the history and knows which calls finished or started', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn(),
      item(reasoning),
      item(call('c-done')),
      item(call('c-running')),
      item(call('c-planned')),
      record({ type: 'call_started', call_id: 'c-done', turn_id: 't2' }),
      event(5, { type: 'exec_command_begin', call_id: 'c-done', turn_id: 't2', command: ['true'], cwd: '/work' }),
      record({ type: 'call_output', call_id: 'c-done', turn_id: 't2', output: { text: 'ok', success: true } }),
      record({ type: 'call_started', call_id: 'c-running', turn_id: 't2' }),
    ]);
    expect(rebuilt.historyCut).toBe(true);
    expect(rebuilt.history).toEqual([user('first'), assistant('first answer'), user('second')]);
    expect(rebuilt.lastSeq).toBe(5);
    const open = rebuilt.openTurn;
    expect(open?.turnId).toBe('t2');
    expect(open?.context).toMatchObject({ turn_id: 't2', approval_policy: 'on-request' });
    expect(open?.replay).toEqual([reasoning, call('c-done'), call('c-running'), call('c-planned')]);
    expect(Object.fromEntries(open?.calls ?? [])).toEqual({
      'c-done': { state: 'finished', output: { text: 'ok', success: true } },
      'c-running': { state: 'started' },
      'c-planned': { state: 'not_started' },
    });
    expect(rebuilt.appliedOps.has('t2')).toBe(true);
  });

  it('plans a call waiting for approval again', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn(),
      item(call('c-ask')),
      event(5, { type: 'exec_approval_request', call_id: 'c-ask', turn_id: 't2', command: ['rm', 'x'], cwd: '/work' }),
    ]);
    expect(rebuilt.openTurn?.replay).toEqual([call('c-ask')]);
    expect(rebuilt.openTurn?.calls.get('c-ask')).toEqual({ state: 'not_started' });
  });

  it('asks the model again when the response in flight had made no tool call', () => {
    const rebuilt = rebuildSession([...sessionWithOpenTurn(), item(reasoning), item(assistant('half an answer'))]);
    expect(rebuilt.historyCut).toBe(true);
    expect(rebuilt.history).toEqual([user('first'), assistant('first answer'), user('second')]);
    expect(rebuilt.openTurn?.turnId).toBe('t2');
    expect(rebuilt.openTurn?.replay).toEqual([]);
    expect(rebuilt.openTurn?.calls.size).toBe(0);
  });

  it('asks the model again when a round closed with its outputs and nothing came back yet', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn(),
      item(call('c1')),
      record({ type: 'call_started', call_id: 'c1', turn_id: 't2' }),
      record({ type: 'call_output', call_id: 'c1', turn_id: 't2', output: { text: 'ok', success: true } }),
      item(callOutput('c1', 'ok')),
    ]);
    expect(rebuilt.historyCut).toBe(false);
    expect(rebuilt.history.at(-1)).toEqual(callOutput('c1', 'ok'));
    expect(rebuilt.openTurn).toMatchObject({ turnId: 't2', replay: [] });
  });

  it('leaves an open turn alone when the turn was just begun', () => {
    const rebuilt = rebuildSession(sessionWithOpenTurn());
    expect(rebuilt.historyCut).toBe(false);
    expect(rebuilt.history.at(-1)).toEqual(user('second'));
    expect(rebuilt.openTurn).toMatchObject({ turnId: 't2', replay: [] });
  });

  it('sees an aborted turn as ended', () => {
    const rebuilt = rebuildSession([...sessionWithOpenTurn(), item(reasoning), event(5, { type: 'turn_aborted', turn_id: 't2', reason: 'interrupted' })]);
    expect(rebuilt.openTurn).toBeNull();
    expect(rebuilt.historyCut).toBe(false);
  });

  it('knows a closed session, by its record or its shutdown event', () => {
    const byRecord = rebuildSession([...sessionWithOpenTurn(), item(call('c1')), record({ type: 'closed' })]);
    expect(byRecord.closed).toBe(true);
    expect(byRecord.openTurn).toBeNull();
    const byEvent = rebuildSession([...sessionWithOpenTurn(), event(5, { type: 'shutdown_complete' })]);
    expect(byEvent.closed).toBe(true);
    expect(byEvent.lastSeq).toBe(5);
  });

  it('restores the purpose and the approvals the session was placed with and granted since', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn().slice(0, 1),
      record({ type: 'placed', purpose: 'review', approvals: ['inherited'] }),
      ...sessionWithOpenTurn().slice(1),
      record({ type: 'approval', key: 'granted-1' }),
      record({ type: 'approval', key: 'inherited' }),
      record({ type: 'approval', key: 'granted-2' }),
    ]);
    expect(rebuilt.purpose).toBe('review');
    expect(rebuilt.approvals).toEqual(['inherited', 'granted-1', 'granted-2']);
  });

  it('starts again from what a resume placed the session with', () => {
    const rebuilt = rebuildSession([
      ...sessionWithOpenTurn(),
      record({ type: 'placed', purpose: 'session', approvals: ['first-life'] }),
      record({ type: 'approval', key: 'before-resume' }),
      record({ type: 'placed', purpose: 'compact', approvals: ['given-on-resume'] }),
      record({ type: 'approval', key: 'after-resume' }),
    ]);
    expect(rebuilt.purpose).toBe('compact');
    expect(rebuilt.approvals).toEqual(['given-on-resume', 'after-resume']);
  });

  it('reads a log from before placements were recorded as a regular session', () => {
    const rebuilt = rebuildSession([...sessionWithOpenTurn(), record({ type: 'approval', key: 'k' })]);
    expect(rebuilt.purpose).toBe('session');
    expect(rebuilt.approvals).toEqual(['k']);
  });

  it('refuses a log without session_meta', () => {
    expect(() => rebuildSession(sessionWithOpenTurn().slice(1))).toThrow(RebuildError);
  });
});

describe('Leases and session logs on a real nats-server', () => {
  const nats = natsServerWithConnection();
  let store: DurableStore;
  const running: Leases[] = [];
  /** What the leases of this test logged, for the tests that provoke a warning to assert on. */
  let logged: { level: number; msg: string; session?: string; err?: { message: string } }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) });

  beforeEach(async () => {
    store = await DurableStore.open(nats.connection, `l${randomUUID().slice(0, 8)}`);
    logged = [];
  });
  afterEach(() => {
    for (const leases of running.splice(0)) leases.stop();
  });

  function worker(id: string, leaseMs: number, onLost: (sessionId: string) => void = () => undefined): Leases {
    const leases = new Leases(store, id, leaseTiming(leaseMs), onLost, logger);
    running.push(leases);
    return leases;
  }

  async function stored(sessionId: string): Promise<{ value: LeaseValue; revision: number } | null> {
    const entry = await store.leases.get(sessionId);
    if (!entry || entry.operation !== 'PUT') return null;
    return { value: LeaseValue.parse(entry.json()), revision: entry.revision };
  }

  it("stops an event follower at once, even while its first pull is being set up (not when the pull's 10 s expire)", async () => {
    const gateway = await GatewayDurability.open(nats.connection, `g${randomUUID().slice(0, 8)}`, logger);
    const follower = await gateway.followEvents(() => undefined);
    // The follower is still getting its consumer: the pull it makes next must not outlive stop.
    const outcome = await Promise.race([
      follower.stop().then(() => 'stopped'),
      new Promise((resolve) => setTimeout(() => resolve('waited for the pull to expire'), 9_000)),
    ]);
    expect(outcome).toBe('stopped');
  });

  it('logs the placement and every grant, and a rebuild from JetStream brings them back', async () => {
    const durability = await HostDurability.open(nats.connection, { namespace: `r${randomUUID().slice(0, 8)}`, workerId: 'a', onLost: () => undefined });
    const sessionLog = durability.sessionLog('root-1', SESSION);
    journaledRollout({ path: '/dev/null', record: () => undefined, close: async () => undefined }, sessionLog, meta);
    const granted: string[] = [];
    const inner = { rememberApproval: (key: string) => void granted.push(key) } as unknown as SessionBindings;
    const bindings = durability
      .forSession(sessionLog, { purpose: 'review', approvals: ['inherited'] })
      .wrap(inner, { record: () => undefined, rememberTurn: () => undefined, repeatable: () => false });
    bindings.rememberApproval('shell:git status');
    await sessionLog.appendDurable({ type: 'op_done', id: 'op-1' });
    expect(granted).toEqual(['shell:git status']);
    const rebuilt = await durability.rebuild('root-1', SESSION);
    expect(rebuilt.purpose).toBe('review');
    expect(rebuilt.approvals).toEqual(['inherited', 'shell:git status']);
    durability.stop();
  });

  it("after a failover, runs a repeatable tool's cut-off call again and gives any other the failover note; says whether a turn is open", async () => {
    const durability = await HostDurability.open(nats.connection, { namespace: `f${randomUUID().slice(0, 8)}`, workerId: 'a', onLost: () => undefined });
    const sessionLog = durability.sessionLog('root-1', SESSION);
    journaledRollout({ path: '/dev/null', record: () => undefined, close: async () => undefined }, sessionLog, meta);
    const rollout = (l: Omit<RolloutLine, 'timestamp'>) => sessionLog.append({ type: 'rollout', line: { timestamp: AT, ...l } as RolloutLine });
    rollout({
      type: 'turn_context',
      payload: { turn_id: 't1', cwd: '/work', model: 'test-model', approval_policy: 'never', sandbox_policy: 'danger-full-access' },
    });
    rollout({ type: 'response_item', payload: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'report' }] } });
    for (const [callId, name] of [
      ['c-report', 'report_agent_job_result'],
      ['c-shell', 'shell'],
    ] as const) {
      rollout({ type: 'response_item', payload: { type: 'function_call', call_id: callId, name, arguments: '{}' } });
      await sessionLog.appendDurable({ type: 'call_started', call_id: callId, turn_id: 't1' });
    }
    expect(await durability.activity('root-1', SESSION)).toBe('working');
    expect(await durability.activity('root-1', 'never-placed')).toBe('ended');

    const ran: string[] = [];
    const planned: string[] = [];
    const inner = {
      plan: async (input: { callId: string; name: string }) => {
        planned.push(`${input.name} ${input.callId}`);
        return { kind: 'reject', reason: 'the user said no' };
      },
      execute: async (input: { callId: string }) => {
        ran.push(input.callId);
        return { text: 'ran again', success: true };
      },
    } as unknown as SessionBindings;
    const repeatable = new Set(['report_agent_job_result', 'deploy']);
    const adopted = durability
      .forAdopted(sessionLog, await durability.rebuild('root-1', SESSION), 'b')
      .wrap(inner, { record: () => undefined, rememberTurn: () => undefined, repeatable: (name) => repeatable.has(name) });
    const input = (callId: string, name: string, turnId = 't1') => ({ sessionId: SESSION, callId, turnId, name, arguments: '{}' });
    const call = (callId: string, name: string) =>
      adopted.execute({ ...input(callId, name), sandboxed: true, userApproved: false }, new AbortController().signal);
    // A call that runs again is planned again (an approval it needs is asked again); one that
    // will not run is not.
    expect(await adopted.plan(input('c-report', 'report_agent_job_result'))).toEqual({ kind: 'reject', reason: 'the user said no' });
    expect(await adopted.plan(input('c-shell', 'shell'))).toEqual({ kind: 'run', sandboxed: true });
    // A later call that takes a cut-off call's id (the model chooses ids) is not let past its plan.
    expect(await adopted.plan(input('c-report', 'deploy', 't2'))).toEqual({ kind: 'reject', reason: 'the user said no' });
    expect(planned).toEqual(['report_agent_job_result c-report', 'deploy c-report']);
    expect(await call('c-report', 'report_agent_job_result')).toEqual({ text: 'ran again', success: true });
    expect(await call('c-shell', 'shell')).toEqual({ text: INTERRUPTED_BY_FAILOVER, success: false });
    expect(ran).toEqual(['c-report']);

    sessionLog.publishEvent({ id: 't1', session_id: SESSION, seq: 2, msg: { type: 'task_complete', turn_id: 't1', last_agent_message: null } });
    await sessionLog.drained();
    expect(await durability.activity('root-1', SESSION)).toBe('ended');
    durability.stop();
  });

  it('reads a sub-agent whose first turn is queued but not begun as working, and one idle after its turn as ended', async () => {
    const durability = await HostDurability.open(nats.connection, { namespace: `q${randomUUID().slice(0, 8)}`, workerId: 'a', onLost: () => undefined });
    const firstTurn = { id: 'call-7-task', session_id: SESSION, op: { type: 'user_turn' as const, items: [{ type: 'text' as const, text: 'do the item' }] } };
    // Placed a moment ago: the placement queued its first turn, and its log is not stored yet.
    await durability.ops.enqueue(firstTurn);
    expect(await durability.activity('root-1', SESSION)).toBe('working');

    // The log is stored; the turn is still waiting in the queue.
    const sessionLog = durability.sessionLog('root-1', SESSION);
    journaledRollout({ path: '/dev/null', record: () => undefined, close: async () => undefined }, sessionLog, meta);
    durability.forSession(sessionLog, { purpose: 'session', approvals: [] });
    await sessionLog.drained();
    expect(await durability.activity('root-1', SESSION)).toBe('working');

    // The session takes the turn from its queue and begins it, as a session does (turn_context, then op_done, then the ack).
    const begun: string[] = [];
    const feed = await durability.feed(
      {
        id: SESSION,
        submit: async (submission) => {
          begun.push(submission.id);
          sessionLog.append({
            type: 'rollout',
            line: {
              timestamp: AT,
              type: 'turn_context',
              payload: { turn_id: submission.id, cwd: '/work', model: 'test-model', approval_policy: 'never', sandbox_policy: 'workspace-write' },
            },
          });
        },
      },
      sessionLog,
    );
    const queueEmpty = async () =>
      (await durability.store.jsm.streams.getMessage(durability.store.names.opStream, { last_by_subj: durability.store.subjects.opQueue(SESSION) })) === null;
    await waitFor(async () => begun.length === 1 && (await queueEmpty()), 'the turn to be taken from the queue and acknowledged');
    expect(await durability.activity('root-1', SESSION)).toBe('working');

    sessionLog.publishEvent({
      id: firstTurn.id,
      session_id: SESSION,
      seq: 1,
      msg: { type: 'task_complete', turn_id: firstTurn.id, last_agent_message: 'done' },
    });
    await sessionLog.drained();
    expect(await durability.activity('root-1', SESSION)).toBe('ended');
    await feed.stop();

    // A turn the log says was applied, still queued (its acknowledgement was lost), is not waiting.
    await durability.ops.enqueue({ ...firstTurn, id: 'steered' });
    await sessionLog.appendDurable({ type: 'op_done', id: 'steered' });
    expect(await durability.activity('root-1', SESSION)).toBe('ended');
    durability.stop();
  });

  it('claims a lease once: a second claim fails', async () => {
    const a = worker('a', 60_000);
    const b = worker('b', 60_000);
    await a.claim('s1', 'root-1');
    expect(a.holds('s1')).toBe(true);
    expect((await stored('s1'))?.value).toMatchObject({ worker_id: 'a', root_id: 'root-1' });
    expect(await b.exists('s1')).toBe(true);
    await expect(b.claim('s1', 'root-1')).rejects.toBeInstanceOf(LeaseLostError);
    expect(b.holds('s1')).toBe(false);
    expect(await b.expired()).toEqual([]);
  });

  it('renews a held lease, so nobody else sees it expire', async () => {
    const a = worker('a', 300);
    const b = worker('b', 300);
    await a.claim('s1', 'root-1');
    const first = await stored('s1');
    a.start();
    await waitFor(async () => ((await stored('s1'))?.revision ?? 0) >= (first?.revision ?? 0) + 3, 'three renewals', 10_000);
    const now = await stored('s1');
    expect(now?.value.worker_id).toBe('a');
    expect(now?.value.expires_at).toBeGreaterThan(first?.value.expires_at ?? Infinity);
    expect(await b.expired()).toEqual([]);
  });

  it('shows an expired lease to another worker, which takes it over; the old holder loses it on its next renewal', async () => {
    const lost: string[] = [];
    const a = worker('a', 200, (id) => lost.push(id));
    const b = worker('b', 200);
    await a.claim('s1', 'root-1');
    expect(await b.expired()).toEqual([]);
    // a is away (no renewals) for longer than a lease.
    await waitFor(async () => (await b.expired()).length === 1, 'the lease to expire', 10_000);
    const [seen] = await b.expired();
    expect(seen).toMatchObject({ sessionId: 's1', value: { worker_id: 'a', root_id: 'root-1' } });
    // The holder itself never reports its own lease as expired.
    expect(await a.expired()).toEqual([]);
    expect(await b.takeOver(seen!)).toBe(true);
    expect(b.holds('s1')).toBe(true);
    expect((await stored('s1'))?.value.worker_id).toBe('b');

    a.start();
    await waitFor(() => lost.length > 0, 'a to notice the lost lease', 10_000);
    expect(lost).toEqual(['s1']);
    expect(a.holds('s1')).toBe(false);
    a.stop();
    expect(logged.filter((l) => l.level >= 40)).toMatchObject([{ session: 's1', msg: 'lost the lease of a session to another worker' }]);
    // The loser's failed compare-and-set changed nothing.
    expect((await stored('s1'))?.value.worker_id).toBe('b');
  });

  it('lets exactly one of two workers take over the same expired lease', async () => {
    const a = worker('a', 100);
    await a.claim('s1', 'root-1');
    a.forget('s1');
    const b = worker('b', 60_000);
    const c = worker('c', 60_000);
    await waitFor(async () => (await b.expired()).length === 1 && (await c.expired()).length === 1, 'both to see it expired', 10_000);
    const [seenByB] = await b.expired();
    const [seenByC] = await c.expired();
    expect(seenByB?.revision).toBe(seenByC?.revision);
    const results = await Promise.all([b.takeOver(seenByB!), c.takeOver(seenByC!)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results[0] ? 'b' : 'c';
    expect([b.holds('s1'), c.holds('s1')]).toEqual([winner === 'b', winner === 'c']);
    expect((await stored('s1'))?.value.worker_id).toBe(winner);
  });

  it('hands a lease over: expired at once for the others, no longer held or renewed here', async () => {
    const a = worker('a', 60_000);
    const b = worker('b', 60_000);
    await a.claim('s1', 'root-1');
    expect(await b.expired()).toEqual([]);
    await a.handOver('s1');
    expect(a.holds('s1')).toBe(false);
    const [seen] = await b.expired();
    expect(seen).toMatchObject({ sessionId: 's1', value: { worker_id: 'a', expires_at: 0, root_id: 'root-1' } });
    expect(await b.takeOver(seen!)).toBe(true);
    expect((await stored('s1'))?.value).toMatchObject({ worker_id: 'b', root_id: 'root-1' });
  });

  it('hands over and releases even when a renewal landed after the lease was let go of', async () => {
    const a = worker('a', 60_000);
    const b = worker('b', 60_000);
    await a.claim('s1', 'root-1');
    await a.claim('s2', 'root-1');
    // What a renewal in flight at that moment does: a's own write moves the revision on.
    for (const id of ['s1', 's2']) {
      const current = await stored(id);
      await store.leases.update(id, JSON.stringify({ ...current!.value, expires_at: Date.now() + 60_000 }), current!.revision);
    }
    await a.handOver('s1');
    await a.release('s2');
    expect(await b.expired()).toMatchObject([{ sessionId: 's1', value: { worker_id: 'a', expires_at: 0 } }]);
    expect(await b.exists('s2')).toBe(false);
  });

  it('leaves a lease another worker took alone when handing over or releasing', async () => {
    const a = worker('a', 60_000);
    await a.claim('s1', 'root-1');
    await a.claim('s2', 'root-1');
    for (const id of ['s1', 's2']) {
      const current = await stored(id);
      await store.leases.update(id, JSON.stringify({ ...current!.value, worker_id: 'b' }), current!.revision);
    }
    await a.handOver('s1');
    await a.release('s2');
    expect((await stored('s1'))?.value).toMatchObject({ worker_id: 'b' });
    expect((await stored('s1'))?.value.expires_at).toBeGreaterThan(0);
    expect((await stored('s2'))?.value).toMatchObject({ worker_id: 'b' });
    // It says what it could not do, and why.
    expect(logged.filter((l) => l.level >= 40)).toMatchObject([
      { session: 's1', msg: 'could not hand a lease over', err: { message: expect.stringMatching(/wrong last sequence/) } },
      { session: 's2', msg: 'could not release a lease', err: { message: expect.stringMatching(/wrong last sequence/) } },
    ]);
  });

  it('releases a lease: the key goes, nobody adopts it, and it can be claimed afresh', async () => {
    const a = worker('a', 100);
    const b = worker('b', 100);
    await a.claim('s1', 'root-1');
    await a.release('s1');
    expect(a.holds('s1')).toBe(false);
    expect(await b.exists('s1')).toBe(false);
    // Not even a delete marker is left for the expiry scans to read.
    expect(await leaseKeys(store)).not.toContain('s1');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await b.expired()).toEqual([]);
    await b.claim('s1', 'root-1');
    expect(b.holds('s1')).toBe(true);
  });

  it('does not take over a lease that was renewed after it was seen', async () => {
    const a = worker('a', 100);
    const b = worker('b', 100);
    await a.claim('s1', 'root-1');
    await waitFor(async () => (await b.expired()).length === 1, 'the lease to expire', 10_000);
    const [seen] = await b.expired();
    // a comes back and renews before b acts on what it saw.
    a.start();
    await waitFor(async () => ((await stored('s1'))?.revision ?? 0) > (seen?.revision ?? 0), 'a renewal', 10_000);
    a.stop();
    expect(await b.takeOver(seen!)).toBe(false);
    expect(b.holds('s1')).toBe(false);
    expect(a.holds('s1')).toBe(true);
  });
});
