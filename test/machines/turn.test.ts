import { createActor, fromCallback, fromPromise, waitFor, type ActorRefFrom } from 'xstate';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EventMsg, ResponseItem, ReviewDecision, TokenUsage } from '../../protocol/index.js';
import { DENIED_OUTPUT, toolCallMachine, type ToolCallInput } from '../../machines/tool-call.js';
import type { ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import { MAX_STREAM_ATTEMPTS, turnMachine, type ModelFailure, type TurnEvent, type TurnOutput, type TurnStep } from '../../machines/turn.js';
import { buildTurnContext, settingsFromConfig } from '../../machines/turn-context.js';
import { deferred, Inbox, type Deferred } from './fakes.js';

/**
 * The TurnMachine with in-memory fakes provided (`.provide()`): a sampler whose stream the test
 * writes, tool calls (real ToolCallMachines) whose plans the test picks and whose executions it
 * settles, and every action the turn takes recorded in one ordered log. Time is either a fake
 * `deadline` the test resolves or vitest's fake timers driving the real one: nothing waits on
 * the clock.
 */

type Step = TurnStep & { attempt: number };
type ExecuteInput = ToolCallInput & { sandboxed: boolean; userApproved: boolean };

/** One sampling attempt: what it was given, and its stream, which the test writes. */
interface Sampling {
  readonly input: Step;
  readonly send: (event: TurnEvent) => void;
  stopped: boolean;
}

interface Execution {
  readonly input: ExecuteInput;
  readonly signal: AbortSignal;
  readonly result: Deferred<ToolOutput>;
}

interface Wait {
  readonly until: number;
  readonly signal: AbortSignal;
  readonly done: Deferred<void>;
}

/** What the turn did, in order (the actions it took, named after them). */
type Entry =
  | { type: 'emit'; id?: string | undefined; msg: EventMsg }
  | { type: 'callEmit'; msg: EventMsg }
  | { type: 'beginTurn'; turnId: string; input: readonly ResponseItem[] }
  | { type: 'recordItem'; item: ResponseItem }
  | { type: 'recordOutputs'; outputs: { callId: string; output: ToolOutput }[] }
  | { type: 'recordInput'; items: ResponseItem[] }
  | { type: 'recordAborted'; callIds: string[] }
  | { type: 'accountUsage'; usage: TokenUsage | null }
  | { type: 'rememberRateLimits' }
  | { type: 'reportFailure'; failure: ModelFailure }
  | { type: 'interruptAgents' }
  | { type: 'startSnapshot' }
  | { type: 'rememberApproval'; key: string };

const user = (text: string): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const assistant = (text: string): ResponseItem => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
const call = (callId: string, name = 'shell'): ResponseItem => ({ type: 'function_call', call_id: callId, name, arguments: '{}' });
const out = (text: string): ToolOutput => ({ text, success: true });
const ASK: ToolPlan = {
  kind: 'ask',
  request: { type: 'exec', command: ['make'], cwd: '/work' },
  sandboxedAfterApproval: true,
  approvalKey: 'exec:make',
};
const failure = (retryable: boolean, retryDelayMs = 1000): ModelFailure => ({
  code: retryable ? 'stream_failed' : 'context_window_exceeded',
  message: retryable ? 'the stream broke' : 'too long',
  retryable,
  retryDelayMs,
});

const turnContext = buildTurnContext(settingsFromConfig({ cwd: '/work' }, { model: 'm', cwd: '/work', base_instructions: '' }), 't1', {});

interface Options {
  /** The plan of each tool, by name (default: run sandboxed). */
  plans?: Record<string, ToolPlan>;
  /** The turn takes an undo snapshot. */
  snapshot?: boolean;
  /** Compact before the first request; it settles when the test says. */
  compact?: Promise<void>;
  /** Provide the real `deadline` (driven by fake timers) instead of the fake one. */
  realDeadline?: boolean;
}

function harness(options: Options = {}) {
  const log: Entry[] = [];
  const samplings = new Inbox<Sampling>();
  const executions = new Inbox<Execution>();
  const waits = new Inbox<Wait>();
  let compactions = options.compact ? 1 : 0;
  const record = (entry: Entry) => void log.push(entry);

  const toolCall = toolCallMachine.provide({
    actors: {
      plan: fromPromise<ToolPlan, ToolCallInput>(async ({ input }) => options.plans?.[input.name] ?? { kind: 'run', sandboxed: true }),
      execute: fromPromise<ToolOutput, ExecuteInput>(({ input, signal }) => {
        const result = deferred<ToolOutput>();
        executions.push({ input, signal, result });
        return result.promise;
      }),
    },
    actions: {
      emitEvent: (_, { msg }) => record({ type: 'callEmit', msg }),
      rememberApproval: (_, { key }) => record({ type: 'rememberApproval', key }),
    },
  });
  const machine = turnMachine.provide({
    actors: {
      toolCall,
      sample: fromCallback<TurnEvent, Step>(({ input, sendBack }) => {
        const sampling: Sampling = { input, send: sendBack, stopped: false };
        samplings.push(sampling);
        return () => {
          sampling.stopped = true;
        };
      }),
      autoCompact: fromPromise<void, TurnStep>(() => options.compact ?? Promise.resolve()),
      ...(options.realDeadline
        ? {}
        : {
            deadline: fromPromise<void, { until: number }>(({ input, signal }) => {
              const done = deferred<void>();
              waits.push({ until: input.until, signal, done });
              return done.promise;
            }),
          }),
    },
    guards: {
      wantsSnapshot: () => options.snapshot === true,
      wantsCompaction: () => compactions-- > 0,
    },
    actions: {
      emitEvent: (_, { msg, id }) => record({ type: 'emit', msg, ...(id !== undefined ? { id } : {}) }),
      startSnapshot: () => record({ type: 'startSnapshot' }),
      beginTurn: (_, { turnId, input }) => record({ type: 'beginTurn', turnId, input }),
      recordItem: (_, { item }) => record({ type: 'recordItem', item }),
      recordOutputs: (_, { outputs }) => record({ type: 'recordOutputs', outputs }),
      recordInput: (_, { items }) => record({ type: 'recordInput', items }),
      recordAborted: (_, { callIds }) => record({ type: 'recordAborted', callIds }),
      accountUsage: (_, { usage }) => record({ type: 'accountUsage', usage }),
      rememberRateLimits: () => record({ type: 'rememberRateLimits' }),
      reportFailure: (_, { failure }) => record({ type: 'reportFailure', failure }),
      interruptAgents: () => record({ type: 'interruptAgents' }),
    },
  });
  const actor = createActor(machine, { input: { sessionId: 's', turnId: 't1', context: turnContext, input: [user('build it')] } });
  actor.start();

  return {
    actor,
    log,
    samplings,
    executions,
    waits,
    send: (event: TurnEvent) => actor.send(event),
    approve: (callId: string, decision: ReviewDecision, submissionId = `approve-${callId}`) => actor.send({ type: 'APPROVAL', submissionId, callId, decision }),
    state: () => actor.getSnapshot().value,
    reaches: (state: 'compacting') => waitFor(actor, (s) => s.matches(state)),
    /** The turn's output, once it has ended. */
    ended: async (): Promise<TurnOutput> => (await waitFor(actor, (s) => s.status === 'done')).output!,
    /** A call's own actor, while it runs. */
    callActor: (callId: string) => actor.getSnapshot().children[`call:${callId}`] as ActorRefFrom<typeof toolCallMachine> | undefined,
    /** The next call that asks, once it is waiting (its approval request is on the log). */
    awaiting: async (callId: string) => {
      await waitFor(actor, (s) => s.context.awaiting.includes(callId));
    },
    entries: <T extends Entry['type']>(type: T) => log.filter((e): e is Extract<Entry, { type: T }> => e.type === type),
  };
}

type Harness = ReturnType<typeof harness>;

/** The model answers the current attempt with `items`, then completes it. */
async function respond(h: Harness, ...items: ResponseItem[]): Promise<Sampling> {
  const sampling = await h.samplings.next();
  for (const item of items) sampling.send({ type: 'MODEL.ITEM', item });
  sampling.send({ type: 'MODEL.COMPLETED', usage: null });
  return sampling;
}

/** The next execution, checked to be `callId`'s. */
async function execution(h: Harness, callId: string): Promise<Execution> {
  const next = await h.executions.next();
  expect(next.input.callId).toBe(callId);
  return next;
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('TurnMachine', () => {
  it('records the user input, samples, and completes with the model’s last message', async () => {
    const h = harness();
    await respond(h, assistant('all done'));
    expect(await h.ended()).toEqual({ turnId: 't1', status: 'completed', lastAgentMessage: 'all done', abortReason: null });
    expect(h.log).toEqual([
      { type: 'beginTurn', turnId: 't1', input: [user('build it')] },
      { type: 'recordItem', item: assistant('all done') },
      { type: 'accountUsage', usage: null },
    ]);
    expect(h.samplings.all.map((s) => s.input.attempt)).toEqual([1]);
  });

  it('runs the calls of a response, records their outputs in call order, and samples again', async () => {
    const h = harness();
    await respond(h, call('a'), call('b'));
    const a = await execution(h, 'a');
    const b = await execution(h, 'b');
    // Both run at once; b finishes first.
    b.result.resolve(out('b out'));
    await waitFor(h.actor, (s) => s.context.calls.find((c) => c.callId === 'b')?.output !== null);
    expect(h.state()).toBe('draining');
    expect(h.entries('recordOutputs')).toEqual([]);
    a.result.resolve(out('a out'));
    await respond(h, assistant('ok'));
    expect((await h.ended()).status).toBe('completed');
    expect(h.entries('recordOutputs')).toEqual([
      {
        type: 'recordOutputs',
        outputs: [
          { callId: 'a', output: out('a out') },
          { callId: 'b', output: out('b out') },
        ],
      },
    ]);
    expect(h.samplings.all).toHaveLength(2);
  });

  it('waits for the response to complete before it closes the round, even when every call is done', async () => {
    const h = harness();
    const sampling = await h.samplings.next();
    sampling.send({ type: 'MODEL.ITEM', item: call('a') });
    (await execution(h, 'a')).result.resolve(out('a out'));
    await waitFor(h.actor, (s) => s.context.calls[0]?.output !== null);
    expect(h.state()).toBe('sampling');
    sampling.send({ type: 'MODEL.ITEM', item: call('b') });
    sampling.send({ type: 'MODEL.COMPLETED', usage: null });
    (await execution(h, 'b')).result.resolve(out('b out'));
    await h.samplings.next();
    expect(h.entries('recordOutputs')[0]?.outputs.map((o) => o.callId)).toEqual(['a', 'b']);
  });

  describe('parallel approvals stay independent', () => {
    it('denying one call leaves its sibling waiting; each answer reaches only its own call', async () => {
      const h = harness({ plans: { shell: ASK } });
      await respond(h, call('a'), call('b'));
      await h.awaiting('a');
      await h.awaiting('b');
      expect(h.entries('callEmit').map((e) => e.msg)).toEqual([
        { type: 'exec_approval_request', call_id: 'a', turn_id: 't1', command: ['make'], cwd: '/work' },
        { type: 'exec_approval_request', call_id: 'b', turn_id: 't1', command: ['make'], cwd: '/work' },
      ]);

      h.approve('a', 'denied');
      expect(h.callActor('b')?.getSnapshot().value).toBe('awaitingApproval');
      expect(h.actor.getSnapshot().context.awaiting).toEqual(['b']);
      expect(h.executions.all).toEqual([]);
      expect(h.state()).toBe('draining');

      h.approve('b', 'approved');
      const b = await execution(h, 'b');
      expect(b.input).toMatchObject({ userApproved: true });
      b.result.resolve(out('b out'));
      await respond(h, assistant('ok'));
      await h.ended();
      expect(h.entries('recordOutputs')).toEqual([
        {
          type: 'recordOutputs',
          outputs: [
            { callId: 'a', output: { text: DENIED_OUTPUT, success: false } },
            { callId: 'b', output: out('b out') },
          ],
        },
      ]);
      expect(h.entries('emit')).toEqual([]);
    });

    it('an answer to a call that has already been answered is refused, and the call is not run twice', async () => {
      const h = harness({ plans: { shell: ASK } });
      await respond(h, call('a'), call('b'));
      await h.awaiting('b');
      h.approve('a', 'approved', 'first');
      const a = await execution(h, 'a');
      h.approve('a', 'approved', 'again');
      expect(h.entries('emit')).toEqual([
        { type: 'emit', id: 'again', msg: { type: 'error', code: 'bad_request', message: 'no approval is pending with id a' } },
      ]);
      expect(h.callActor('b')?.getSnapshot().value).toBe('awaitingApproval');
      a.result.resolve(out('a out'));
      h.approve('b', 'denied');
      await h.samplings.next();
      expect(h.executions.all.map((e) => e.input.callId)).toEqual(['a']);
    });

    it('a call the sandbox blocked asks again through the turn, and its answer reaches it', async () => {
      const h = harness({ plans: { ask: ASK } });
      await respond(h, call('a'), call('b', 'ask'));
      await h.awaiting('b');
      (await execution(h, 'a')).result.resolve({
        text: 'Operation not permitted',
        success: false,
        escalate: { request: { type: 'exec', command: ['touch', '/etc/x'], cwd: '/work' }, approvalKey: 'exec:touch' },
      });
      await h.awaiting('a');
      expect(h.entries('callEmit').map((e) => (e.msg.type === 'exec_approval_request' ? e.msg.call_id : null))).toEqual(['b', 'a']);
      h.approve('a', 'approved');
      const again = await execution(h, 'a');
      expect(again.input).toMatchObject({ sandboxed: false, userApproved: true });
      expect(h.callActor('b')?.getSnapshot().value).toBe('awaitingApproval');
      again.result.resolve(out('a out'));
      h.approve('b', 'denied');
      await h.samplings.next();
      expect(h.entries('recordOutputs')[0]?.outputs).toEqual([
        { callId: 'a', output: out('a out') },
        { callId: 'b', output: { text: DENIED_OUTPUT, success: false } },
      ]);
      expect(h.entries('emit')).toEqual([]);
    });

    it('approved for the session: remembered once, for that call only', async () => {
      const h = harness({ plans: { shell: ASK } });
      await respond(h, call('a'), call('b'));
      await h.awaiting('b');
      h.approve('b', 'approved_for_session');
      await execution(h, 'b');
      expect(h.entries('rememberApproval')).toEqual([{ type: 'rememberApproval', key: 'exec:make' }]);
      expect(h.callActor('a')?.getSnapshot().value).toBe('awaitingApproval');
    });
  });

  describe('an abort answers each open call exactly once', () => {
    it('finished calls keep their output, unfinished ones get the aborted output, and running ones are stopped', async () => {
      const h = harness({ plans: { ask: ASK } });
      await respond(h, call('done'), call('running'), call('waiting', 'ask'));
      const done = await execution(h, 'done');
      const running = await execution(h, 'running');
      await h.awaiting('waiting');
      done.result.resolve(out('done out'));
      await waitFor(h.actor, (s) => s.context.calls[0]?.output !== null);

      h.send({ type: 'ABORT', reason: 'interrupted' });
      expect(await h.ended()).toEqual({ turnId: 't1', status: 'aborted', lastAgentMessage: null, abortReason: 'interrupted' });
      expect(h.entries('recordOutputs')).toEqual([{ type: 'recordOutputs', outputs: [{ callId: 'done', output: out('done out') }] }]);
      expect(h.entries('recordAborted')).toEqual([{ type: 'recordAborted', callIds: ['running', 'waiting'] }]);
      expect(h.entries('interruptAgents')).toHaveLength(1);
      // Stopping the call's actor aborted its execution (which kills its processes).
      expect(running.signal.aborted).toBe(true);
      expect(done.signal.aborted).toBe(false);

      // What a stopped call finishes later is not recorded a second time.
      running.result.resolve(out('too late'));
      await Promise.resolve();
      expect(h.entries('recordOutputs')).toHaveLength(1);
      expect(h.entries('recordAborted')).toHaveLength(1);
    });

    it('the model stream is stopped, and what it sends after is dropped', async () => {
      const h = harness();
      const sampling = await h.samplings.next();
      sampling.send({ type: 'MODEL.ITEM', item: call('a') });
      await execution(h, 'a');
      h.send({ type: 'ABORT', reason: 'replaced' });
      expect(sampling.stopped).toBe(true);
      sampling.send({ type: 'MODEL.ITEM', item: assistant('late') });
      expect(await h.ended()).toMatchObject({ status: 'aborted', abortReason: 'replaced' });
      expect(h.entries('recordItem')).toHaveLength(1);
      expect(h.entries('recordAborted')).toEqual([{ type: 'recordAborted', callIds: ['a'] }]);
    });

    it('the user answering `abort` ends the turn: that call gets the denied output, its siblings the aborted one', async () => {
      const h = harness({ plans: { ask: ASK } });
      await respond(h, call('running'), call('asking', 'ask'));
      const running = await execution(h, 'running');
      await h.awaiting('asking');
      h.approve('asking', 'abort');
      expect(await h.ended()).toMatchObject({ status: 'aborted', abortReason: 'interrupted' });
      expect(h.entries('recordOutputs')).toEqual([{ type: 'recordOutputs', outputs: [{ callId: 'asking', output: { text: DENIED_OUTPUT, success: false } }] }]);
      expect(h.entries('recordAborted')).toEqual([{ type: 'recordAborted', callIds: ['running'] }]);
      expect(running.signal.aborted).toBe(true);
    });

    it('with no call open, it records no output and aborts nothing', async () => {
      const h = harness();
      await h.samplings.next();
      h.send({ type: 'ABORT', reason: 'review_ended' });
      expect(await h.ended()).toMatchObject({ status: 'aborted', abortReason: 'review_ended' });
      expect(h.entries('recordOutputs')).toEqual([]);
      expect(h.entries('recordAborted')).toEqual([{ type: 'recordAborted', callIds: [] }]);
    });
  });

  describe('a retry goes through backoff', () => {
    it('announces the attempt, waits out the delay the sampler gave, then samples again', async () => {
      vi.useFakeTimers({ now: 1_000_000 });
      const h = harness();
      (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(true, 2500) });
      const wait = await h.waits.next();
      expect(h.state()).toBe('backoff');
      expect(wait.until).toBe(1_000_000 + 2500);
      expect(h.entries('emit')).toEqual([
        { type: 'emit', msg: { type: 'stream_error', message: 'the stream broke; retrying', attempt: 1, max_attempts: MAX_STREAM_ATTEMPTS } },
      ]);
      expect(h.samplings.unread).toBe(0);
      wait.done.resolve();
      const second = await h.samplings.next();
      expect(second.input.attempt).toBe(2);
      second.send({ type: 'MODEL.COMPLETED', usage: null });
      expect((await h.ended()).status).toBe('completed');
      expect(h.entries('reportFailure')).toEqual([]);
    });

    it('the real deadline: nothing happens until the clock reaches it', async () => {
      vi.useFakeTimers({ now: 5_000 });
      const h = harness({ realDeadline: true });
      (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(true, 3000) });
      expect(h.state()).toBe('backoff');
      await vi.advanceTimersByTimeAsync(2999);
      expect(h.state()).toBe('backoff');
      expect(h.samplings.unread).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect((await h.samplings.next()).input.attempt).toBe(2);
      expect(h.state()).toBe('sampling');
    });

    it('an interrupt during the backoff ends the turn and cancels the wait', async () => {
      vi.useFakeTimers({ now: 5_000 });
      const h = harness({ realDeadline: true });
      (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(true, 60_000) });
      expect(vi.getTimerCount()).toBe(1);
      h.send({ type: 'ABORT', reason: 'interrupted' });
      expect(await h.ended()).toMatchObject({ status: 'aborted' });
      expect(vi.getTimerCount()).toBe(0);
      await vi.runAllTimersAsync();
      expect(h.samplings.all).toHaveLength(1);
    });

    it(`gives up after ${MAX_STREAM_ATTEMPTS} retries, reporting the last failure once`, async () => {
      const h = harness();
      for (let attempt = 1; attempt <= MAX_STREAM_ATTEMPTS; attempt++) {
        const sampling = await h.samplings.next();
        expect(sampling.input.attempt).toBe(attempt);
        sampling.send({ type: 'MODEL.FAILED', failure: failure(true) });
        (await h.waits.next()).done.resolve();
      }
      const last = await h.samplings.next();
      expect(last.input.attempt).toBe(MAX_STREAM_ATTEMPTS + 1);
      last.send({ type: 'MODEL.FAILED', failure: failure(true) });
      expect(await h.ended()).toMatchObject({ status: 'failed' });
      expect(h.entries('reportFailure')).toEqual([{ type: 'reportFailure', failure: failure(true) }]);
      expect(h.entries('emit').map((e) => (e.msg.type === 'stream_error' ? e.msg.attempt : null))).toEqual([1, 2, 3, 4, 5]);
    });

    it('a completed response resets the count: the next request has all its retries', async () => {
      const h = harness();
      for (let attempt = 1; attempt < MAX_STREAM_ATTEMPTS; attempt++) {
        (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(true) });
        (await h.waits.next()).done.resolve();
      }
      await respond(h, call('a'));
      (await execution(h, 'a')).result.resolve(out('a out'));
      const next = await h.samplings.next();
      expect(next.input.attempt).toBe(1);
      next.send({ type: 'MODEL.FAILED', failure: failure(true) });
      await h.waits.next();
      expect(h.state()).toBe('backoff');
    });

    it('a failure that cannot be retried ends the turn at once', async () => {
      const h = harness();
      (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(false) });
      expect(await h.ended()).toMatchObject({ status: 'failed' });
      expect(h.entries('reportFailure')).toEqual([{ type: 'reportFailure', failure: failure(false) }]);
      expect(h.waits.all).toEqual([]);
      expect(h.entries('emit')).toEqual([]);
    });

    it('the calls a broken response made still finish, and are recorded, before the retry', async () => {
      const h = harness();
      const sampling = await h.samplings.next();
      sampling.send({ type: 'MODEL.ITEM', item: call('a') });
      sampling.send({ type: 'MODEL.FAILED', failure: failure(true) });
      expect(h.state()).toBe('draining');
      expect(h.waits.all).toEqual([]);
      (await execution(h, 'a')).result.resolve(out('a out'));
      await h.waits.next();
      expect(h.entries('recordOutputs')).toEqual([{ type: 'recordOutputs', outputs: [{ callId: 'a', output: out('a out') }] }]);
    });
  });

  describe('steering input joins the next request', () => {
    it('input sent while the model answers is recorded after the round’s outputs, and the model is asked again', async () => {
      const h = harness();
      const sampling = await h.samplings.next();
      sampling.send({ type: 'MODEL.ITEM', item: call('a') });
      h.send({ type: 'STEER', items: [user('use make -j')] });
      sampling.send({ type: 'MODEL.COMPLETED', usage: null });
      expect(h.entries('recordInput')).toEqual([]);
      (await execution(h, 'a')).result.resolve(out('a out'));
      await h.samplings.next();
      const order = h.log.filter((e) => e.type === 'recordOutputs' || e.type === 'recordInput').map((e) => e.type);
      expect(order).toEqual(['recordOutputs', 'recordInput']);
      expect(h.entries('recordInput')).toEqual([{ type: 'recordInput', items: [user('use make -j')] }]);
    });

    it('input sent while the model answers without a tool keeps the turn going', async () => {
      const h = harness();
      const sampling = await h.samplings.next();
      h.send({ type: 'STEER', items: [user('one more thing')] });
      h.send({ type: 'STEER', items: [user('and another')] });
      sampling.send({ type: 'MODEL.ITEM', item: assistant('finished') });
      sampling.send({ type: 'MODEL.COMPLETED', usage: null });
      const next = await h.samplings.next();
      expect(next.input.attempt).toBe(1);
      expect(h.entries('recordInput')).toEqual([{ type: 'recordInput', items: [user('one more thing'), user('and another')] }]);
      next.send({ type: 'MODEL.ITEM', item: assistant('now finished') });
      next.send({ type: 'MODEL.COMPLETED', usage: null });
      expect(await h.ended()).toMatchObject({ status: 'completed', lastAgentMessage: 'now finished' });
      expect(h.entries('recordInput')).toHaveLength(1);
    });

    it('input sent during a backoff joins the retried request', async () => {
      const h = harness();
      (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(true) });
      const wait = await h.waits.next();
      h.send({ type: 'STEER', items: [user('meanwhile')] });
      wait.done.resolve();
      await respond(h, assistant('ok'));
      // The retry is the same request: the input joins the request after it.
      await h.samplings.next();
      expect(h.entries('recordInput')).toEqual([{ type: 'recordInput', items: [user('meanwhile')] }]);
    });

    it('input that arrives before an abort is kept, not lost', async () => {
      const h = harness();
      await h.samplings.next();
      h.send({ type: 'STEER', items: [user('too late?')] });
      h.send({ type: 'ABORT', reason: 'interrupted' });
      await h.ended();
      expect(h.entries('recordInput')).toEqual([{ type: 'recordInput', items: [user('too late?')] }]);
    });
  });

  describe('every state refuses an approval no call is waiting for, with an error to that submission', () => {
    const refused = (submissionId: string, callId: string) => ({
      type: 'emit',
      id: submissionId,
      msg: { type: 'error', code: 'bad_request', message: `no approval is pending with id ${callId}` },
    });
    const states: [string, () => Promise<Harness>][] = [
      [
        'compacting',
        async () => {
          const h = harness({ compact: new Promise<void>(() => undefined) });
          await h.reaches('compacting');
          return h;
        },
      ],
      [
        'sampling',
        async () => {
          const h = harness();
          await h.samplings.next();
          return h;
        },
      ],
      [
        'draining',
        async () => {
          const h = harness();
          await respond(h, call('a'));
          await execution(h, 'a');
          return h;
        },
      ],
      [
        'backoff',
        async () => {
          const h = harness();
          (await h.samplings.next()).send({ type: 'MODEL.FAILED', failure: failure(true) });
          await h.waits.next();
          return h;
        },
      ],
    ];

    it.each(states)('%s', async (state, reach) => {
      const h = await reach();
      expect(h.state()).toBe(state);
      h.approve('nobody', 'approved', 'sub-1');
      // A call that runs without having asked is not waiting either.
      h.approve('a', 'denied', 'sub-2');
      expect(h.entries('emit')).toEqual(expect.arrayContaining([refused('sub-1', 'nobody'), refused('sub-2', 'a')]));
      expect(h.state()).toBe(state);
      if (state === 'draining') expect(h.callActor('a')?.getSnapshot().value).toBe('running');
    });

    it('a turn that has ended takes nothing more', async () => {
      const h = harness();
      await respond(h, assistant('done'));
      await h.ended();
      const before = h.log.length;
      // XState's development build says so for each event; the turn's owner (the session)
      // sends nothing to a finished turn.
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      h.approve('a', 'approved');
      h.send({ type: 'STEER', items: [user('late')] });
      h.send({ type: 'ABORT', reason: 'interrupted' });
      expect(h.log).toHaveLength(before);
      expect(h.actor.getSnapshot().output?.status).toBe('completed');
      expect(warn.mock.calls.map(([message]) => String(message).split(' was sent to ')[1]?.startsWith('stopped actor'))).toEqual([true, true, true]);
    });
  });

  describe('before the first request', () => {
    it('starts the undo snapshot and samples without waiting for it (the port holds the tools back)', async () => {
      const h = harness({ snapshot: true });
      await h.samplings.next();
      expect(h.state()).toBe('sampling');
      expect(h.entries('startSnapshot')).toHaveLength(1);
      expect(h.log.map((e) => e.type).slice(0, 2)).toEqual(['beginTurn', 'startSnapshot']);
    });

    it('takes no snapshot when the turn does not want one', async () => {
      const h = harness();
      await h.samplings.next();
      expect(h.entries('startSnapshot')).toEqual([]);
    });

    it('compacts when the history is past the limit; a failed compaction fails the turn without sampling', async () => {
      const compact = deferred<void>();
      const h = harness({ compact: compact.promise });
      await h.reaches('compacting');
      compact.reject(new Error('the model refused'));
      expect(await h.ended()).toMatchObject({ status: 'failed' });
      expect(h.entries('reportFailure')).toEqual([
        {
          type: 'reportFailure',
          failure: { code: 'internal', message: 'could not prepare the request: Error: the model refused', retryable: false, retryDelayMs: 0 },
        },
      ]);
      expect(h.samplings.all).toEqual([]);
    });

    it('an interrupt while compacting aborts the turn', async () => {
      const h = harness({ compact: new Promise<void>(() => undefined) });
      await h.reaches('compacting');
      h.send({ type: 'ABORT', reason: 'interrupted' });
      expect(await h.ended()).toMatchObject({ status: 'aborted', abortReason: 'interrupted' });
      expect(h.samplings.all).toEqual([]);
    });
  });
});
