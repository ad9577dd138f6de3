import { createActor, fromPromise, setup, waitFor, type ActorRefFrom } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { EventMsg, ReviewDecision } from '../../protocol/index.js';
import { DENIED_OUTPUT, toolCallMachine, type ToolCallInput, type ToolCallParentEvent, type ToolRunInput } from '../../machines/tool-call.js';
import type { ApprovalRequest, ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import { deferred, Inbox, type Deferred } from './fakes.js';

/**
 * The ToolCallMachine with in-memory fakes provided (`.provide()`): a plan the test chooses,
 * executions the test settles by hand, and every event and remembered approval recorded. The
 * call runs as the child of a small parent machine, as it does under a turn, so what it tells
 * its parent (`sendParent`) is recorded too.
 */

type ExecuteInput = ToolRunInput;

interface Execution {
  readonly input: ExecuteInput;
  readonly signal: AbortSignal;
  readonly result: Deferred<ToolOutput>;
}

const INPUT: ToolCallInput = { sessionId: 's', callId: 'c1', turnId: 't1', name: 'shell', arguments: '{"command":["rm","-rf","build"]}' };
const EXEC: ApprovalRequest = { type: 'exec', command: ['rm', '-rf', 'build'], cwd: '/work', reason: 'deletes files' };
const ASK: ToolPlan = { kind: 'ask', request: EXEC, sandboxedAfterApproval: true, approvalKey: 'exec:rm' };
const OK: ToolOutput = { text: 'done', success: true };

function harness(plan: ToolPlan | Error | Promise<ToolPlan>) {
  const emitted: EventMsg[] = [];
  const remembered: string[] = [];
  const plans: ToolCallInput[] = [];
  const executions = new Inbox<Execution>();
  const told: ToolCallParentEvent[] = [];

  const call = toolCallMachine.provide({
    actors: {
      plan: fromPromise<ToolPlan, ToolCallInput>(async ({ input }) => {
        plans.push(input);
        if (plan instanceof Error) throw plan;
        return await plan;
      }),
      execute: fromPromise<ToolOutput, ExecuteInput>(({ input, signal }) => {
        const result = deferred<ToolOutput>();
        executions.push({ input, signal, result });
        return result.promise;
      }),
    },
    actions: {
      emitEvent: (_, { msg }) => void emitted.push(msg),
      rememberApproval: (_, { key }) => void remembered.push(key),
    },
  });
  // The call's parent, as a turn would be: it records what the call tells it.
  const parent = setup({
    types: { events: {} as ToolCallParentEvent, children: {} as { call: 'call' } },
    actors: { call },
  }).createMachine({
    invoke: { id: 'call', src: 'call', input: INPUT },
    on: {
      'CALL.AWAITING_APPROVAL': { actions: ({ event }) => void told.push(event) },
      'CALL.AWAITING_CLIENT': { actions: ({ event }) => void told.push(event) },
      'CALL.DONE': { actions: ({ event }) => void told.push(event) },
      'CALL.ABORT_TURN': { actions: ({ event }) => void told.push(event) },
    },
  });
  const actor = createActor(parent);
  actor.start();
  const child = (): ActorRefFrom<typeof toolCallMachine> => {
    const ref = actor.getSnapshot().children.call;
    if (!ref) throw new Error('the call has ended');
    return ref;
  };
  return {
    emitted,
    remembered,
    plans,
    executions,
    told,
    child,
    approve: (decision: ReviewDecision) => child().send({ type: 'APPROVAL', decision }),
    /** The call's state, once the call has got there. */
    answer: (output: ToolOutput) => child().send({ type: 'CLIENT_OUTPUT', output }),
    reaches: (state: 'awaitingApproval' | 'awaitingClient' | 'running' | 'done') => waitFor(child(), (s) => s.matches(state)),
    /** What the call told its parent when it finished. */
    done: async (): Promise<ToolOutput> => {
      const ref = child();
      const snapshot = await waitFor(ref, (s) => s.status === 'done');
      return snapshot.output!.output;
    },
  };
}

describe('ToolCallMachine', () => {
  it('runs a `run` plan as planned and tells its parent the output', async () => {
    const h = harness({ kind: 'run', sandboxed: true });
    const execution = await h.executions.next();
    expect(h.plans).toEqual([INPUT]);
    expect(execution.input).toEqual({ ...INPUT, sandboxed: true, userApproved: false });
    execution.result.resolve(OK);
    expect(await h.done()).toEqual(OK);
    expect(h.told).toEqual([{ type: 'CALL.DONE', callId: 'c1', output: OK }]);
    expect(h.emitted).toEqual([]);
  });

  it('runs an unsandboxed `run` plan unsandboxed', async () => {
    const h = harness({ kind: 'run', sandboxed: false });
    expect((await h.executions.next()).input).toMatchObject({ sandboxed: false, userApproved: false });
  });

  it('answers a `reject` plan with its reason and never executes', async () => {
    const h = harness({ kind: 'reject', reason: 'not under never' });
    expect(await h.done()).toEqual({ text: 'not under never', success: false });
    expect(h.executions.all).toEqual([]);
    expect(h.told).toEqual([{ type: 'CALL.DONE', callId: 'c1', output: { text: 'not under never', success: false } }]);
  });

  it('answers a plan that throws with what went wrong, as a failed output', async () => {
    const h = harness(new Error('arguments are not JSON'));
    expect(await h.done()).toEqual({ text: 'could not plan this call: arguments are not JSON', success: false });
    expect(h.executions.all).toEqual([]);
  });

  it('answers an execution that throws with its message, as a failed output', async () => {
    const h = harness({ kind: 'run', sandboxed: true });
    (await h.executions.next()).result.reject(new Error('spawn ENOENT'));
    expect(await h.done()).toEqual({ text: 'spawn ENOENT', success: false });
  });

  describe('an `ask` plan', () => {
    it('asks once: the approval request event, and the parent told that the call waits', async () => {
      const h = harness(ASK);
      await h.reaches('awaitingApproval');
      expect(h.emitted).toEqual([
        { type: 'exec_approval_request', call_id: 'c1', turn_id: 't1', command: ['rm', '-rf', 'build'], cwd: '/work', reason: 'deletes files' },
      ]);
      expect(h.told).toEqual([{ type: 'CALL.AWAITING_APPROVAL', callId: 'c1' }]);
      expect(h.executions.all).toEqual([]);
    });

    it('asks for a patch with its changes', async () => {
      const changes = { '/work/a.txt': { type: 'add' as const, content: 'hi\n' } };
      const h = harness({ kind: 'ask', request: { type: 'patch', changes }, sandboxedAfterApproval: true, approvalKey: 'patch' });
      await h.reaches('awaitingApproval');
      expect(h.emitted).toEqual([{ type: 'apply_patch_approval_request', call_id: 'c1', turn_id: 't1', changes }]);
    });

    it('approved: runs as the approval says, once, and remembers nothing', async () => {
      const h = harness(ASK);
      await h.reaches('awaitingApproval');
      h.approve('approved');
      const execution = await h.executions.next();
      expect(execution.input).toEqual({ ...INPUT, sandboxed: true, userApproved: true, approvedKey: 'exec:rm' });
      execution.result.resolve(OK);
      expect(await h.done()).toEqual(OK);
      expect(h.remembered).toEqual([]);
      expect(h.executions.all).toHaveLength(1);
    });

    it('approved outside the sandbox: runs unsandboxed', async () => {
      const h = harness({ ...ASK, sandboxedAfterApproval: false });
      await h.reaches('awaitingApproval');
      h.approve('approved');
      expect((await h.executions.next()).input).toMatchObject({ sandboxed: false, userApproved: true });
    });

    it('approved for the session: remembers the plan’s key, then runs', async () => {
      const h = harness(ASK);
      await h.reaches('awaitingApproval');
      h.approve('approved_for_session');
      const execution = await h.executions.next();
      expect(h.remembered).toEqual(['exec:rm']);
      expect(execution.input).toMatchObject({ userApproved: true });
    });

    it('denied: the denied output, nothing runs, the turn goes on', async () => {
      const h = harness(ASK);
      await h.reaches('awaitingApproval');
      h.approve('denied');
      expect(await h.done()).toEqual({ text: DENIED_OUTPUT, success: false });
      expect(h.executions.all).toEqual([]);
      expect(h.told.map((e) => e.type)).toEqual(['CALL.AWAITING_APPROVAL', 'CALL.DONE']);
    });

    it('abort: the denied output, and the parent is told to stop the turn before the call is done', async () => {
      const h = harness(ASK);
      await h.reaches('awaitingApproval');
      h.approve('abort');
      expect(await h.done()).toEqual({ text: DENIED_OUTPUT, success: false });
      expect(h.executions.all).toEqual([]);
      expect(h.told).toEqual([
        { type: 'CALL.AWAITING_APPROVAL', callId: 'c1' },
        { type: 'CALL.ABORT_TURN', callId: 'c1', output: { text: DENIED_OUTPUT, success: false } },
        { type: 'CALL.DONE', callId: 'c1', output: { text: DENIED_OUTPUT, success: false } },
      ]);
    });
  });

  describe('a `client` plan', () => {
    const CLIENT: ToolPlan = { kind: 'client', arguments: { id: 'T-1' } };

    it('announces the call to the client, tells the parent it waits, and runs nothing', async () => {
      const h = harness(CLIENT);
      await h.reaches('awaitingClient');
      expect(h.emitted).toEqual([{ type: 'client_tool_call', call_id: 'c1', turn_id: 't1', name: 'shell', arguments: { id: 'T-1' } }]);
      expect(h.told).toEqual([{ type: 'CALL.AWAITING_CLIENT', callId: 'c1' }]);
      expect(h.executions.all).toEqual([]);
    });

    it('hands the answer to execute, whose output is the call’s', async () => {
      const h = harness(CLIENT);
      await h.reaches('awaitingClient');
      const answer = { text: 'T-1 is open', success: true };
      h.answer(answer);
      const execution = await h.executions.next();
      expect(execution.input).toEqual({ ...INPUT, sandboxed: true, userApproved: false, answer });
      execution.result.resolve(answer);
      expect(await h.done()).toEqual(answer);
      expect(h.told).toEqual([
        { type: 'CALL.AWAITING_CLIENT', callId: 'c1' },
        { type: 'CALL.DONE', callId: 'c1', output: answer },
      ]);
    });

    it('takes no approval in its wait, and a second answer while it runs changes nothing', async () => {
      const h = harness(CLIENT);
      await h.reaches('awaitingClient');
      h.approve('approved');
      expect(h.child().getSnapshot().value).toBe('awaitingClient');
      h.answer({ text: 'first', success: true });
      const execution = await h.executions.next();
      h.answer({ text: 'second', success: false });
      expect(h.executions.unread).toBe(0);
      execution.result.resolve(execution.input.answer!);
      expect(await h.done()).toEqual({ text: 'first', success: true });
    });
  });

  describe('the states that take no approval ignore one', () => {
    it('while planning', async () => {
      const planned = deferred<ToolPlan>();
      const h = harness(planned.promise);
      h.approve('approved');
      expect(h.child().getSnapshot().value).toBe('planning');
      expect(h.child().getSnapshot().context.approved).toBe(false);
      planned.resolve({ kind: 'run', sandboxed: true });
      // Run as planned (sandboxed, not user-approved): the early approval counted for nothing.
      const execution = await h.executions.next();
      expect(execution.input).toEqual({ ...INPUT, sandboxed: true, userApproved: false });
      execution.result.resolve(OK);
      expect(await h.done()).toEqual(OK);
      expect(h.emitted).toEqual([]);
    });

    it('while running: no second execution, no change of mode', async () => {
      const h = harness({ kind: 'run', sandboxed: true });
      const execution = await h.executions.next();
      h.approve('approved');
      h.approve('abort');
      expect(h.child().getSnapshot().value).toBe('running');
      expect(h.executions.unread).toBe(0);
      execution.result.resolve(OK);
      expect(await h.done()).toEqual(OK);
      expect(h.told).toEqual([{ type: 'CALL.DONE', callId: 'c1', output: OK }]);
    });
  });

  describe('escalation: blocked by the sandbox, asked, run outside', () => {
    const blocked = (approvalKey = 'exec:make'): ToolOutput => ({
      text: 'Exit code: 1\nOperation not permitted',
      success: false,
      escalate: { request: { type: 'exec', command: ['make'], cwd: '/work', reason: 'the sandbox blocked it' }, approvalKey },
    });

    it('approved: the same call runs again, unsandboxed and user-approved, and the second output is the answer', async () => {
      const h = harness({ kind: 'run', sandboxed: true });
      const first = await h.executions.next();
      expect(first.input).toMatchObject({ sandboxed: true, userApproved: false });
      first.result.resolve(blocked());
      await h.reaches('awaitingApproval');
      expect(h.emitted).toEqual([
        { type: 'exec_approval_request', call_id: 'c1', turn_id: 't1', command: ['make'], cwd: '/work', reason: 'the sandbox blocked it' },
      ]);
      expect(h.told).toEqual([{ type: 'CALL.AWAITING_APPROVAL', callId: 'c1' }]);
      h.approve('approved');
      const second = await h.executions.next();
      expect(second.input).toEqual({ ...INPUT, sandboxed: false, userApproved: true, approvedKey: 'exec:make' });
      second.result.resolve(OK);
      expect(await h.done()).toEqual(OK);
      expect(h.told.map((e) => e.type)).toEqual(['CALL.AWAITING_APPROVAL', 'CALL.DONE']);
    });

    it('approved for the session: remembers the escalation’s key, not a plan’s', async () => {
      const h = harness({ kind: 'run', sandboxed: true });
      (await h.executions.next()).result.resolve(blocked('exec:make --always'));
      await h.reaches('awaitingApproval');
      h.approve('approved_for_session');
      await h.executions.next();
      expect(h.remembered).toEqual(['exec:make --always']);
    });

    it('after an approved ask: asks again before leaving the sandbox', async () => {
      const h = harness(ASK);
      await h.reaches('awaitingApproval');
      h.approve('approved');
      (await h.executions.next()).result.resolve(blocked());
      await h.reaches('awaitingApproval');
      // The first approval was for a sandboxed run: it does not carry over.
      expect(h.child().getSnapshot().context.approved).toBe(false);
      expect(h.emitted.map((e) => e.type)).toEqual(['exec_approval_request', 'exec_approval_request']);
      h.approve('approved');
      expect((await h.executions.next()).input).toMatchObject({ sandboxed: false, userApproved: true });
    });

    it('denied: the denied output, not the sandbox’s, and nothing runs outside', async () => {
      const h = harness({ kind: 'run', sandboxed: true });
      (await h.executions.next()).result.resolve(blocked());
      await h.reaches('awaitingApproval');
      h.approve('denied');
      expect(await h.done()).toEqual({ text: DENIED_OUTPUT, success: false });
      expect(h.executions.all).toHaveLength(1);
    });
  });
});
