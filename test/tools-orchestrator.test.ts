/**
 * The tool orchestrator (actors/tools/orchestrator.ts) with a fake command tool whose attempts
 * are scripted: planning, confinement, the denial check and the escalation request, and the
 * ToolCallMachine taking a denied call through approval to a second, unsandboxed attempt. Also
 * the one emitter of exec events, and the plans of tools that run no command.
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assign, createActor, fromPromise, setup, type AnyActorRef } from 'xstate';
import { z } from 'zod';
import { toolCallMachine, type ToolCallInput, type ToolCallParentEvent } from '../machines/tool-call.js';
import type { ToolOutput, ToolPlan } from '../machines/tool-plan.js';
import { EventMsg, type AskForApproval, type SandboxPolicy } from '../protocol/index.js';
import { BACKEND_ENV, detectSandbox } from '../lib/sandbox/index.js';
import { commandEnvironment } from '../actors/tools/environment-policy.js';
import { ExecEvents, MAX_OUTPUT_DELTAS } from '../actors/tools/exec-events.js';
import { commandHandler, planApproval, runCommandTool, type CommandAttempt, type CommandTool } from '../actors/tools/orchestrator.js';
import type { ApprovalMemory, ToolContext } from '../actors/tools/tool.js';
import { makeToolContext } from './support/tool-context.js';
import { waitFor } from './support/wait.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[tools-orchestrator] skipping the sandboxed attempts: ${availability.reason}`);

const FakeArgs = z.object({ name: z.string() });
type FakeArgs = z.infer<typeof FakeArgs>;

/** What one scripted attempt does: the output it streams, its exit code, whether it ended. */
interface Script {
  readonly output: string;
  readonly exitCode: number;
  readonly timedOut?: boolean;
  /** Still running when the call returns (an exec session): no `finished`. */
  readonly running?: boolean;
}

const DENIED: Script = { output: "touch: cannot touch '/etc/x': Read-only file system\n", exitCode: 1 };
const FINE: Script = { output: 'done\n', exitCode: 0 };

/** A command tool that runs nothing: each attempt plays the next script and is recorded. */
function fakeTool(scripts: Script[], options: { tty?: boolean } = {}) {
  const attempts: CommandAttempt[] = [];
  const tool: CommandTool<FakeArgs> = {
    name: 'fake',
    description: 'a scripted command',
    args: FakeArgs,
    describe: (args, ctx) => ({ argv: ['touch', args.name], cwd: ctx.turn.cwd, escalationRequested: false, tty: options.tty }),
    attempt: async (_args, attempt) => {
      attempts.push(attempt);
      const script = scripts[attempts.length - 1];
      if (script === undefined) throw new Error(`attempt ${attempts.length} was not expected`);
      attempt.events.begin();
      attempt.events.output('stdout', script.output);
      const output = { text: `exit ${script.exitCode}: ${script.output}`, success: script.exitCode === 0 };
      if (script.running === true) return { output };
      attempt.events.end({ exitCode: script.exitCode, stdout: script.output, stderr: '', aggregated: script.output, durationMs: 1 });
      return { output, finished: { exitCode: script.exitCode, output: script.output, timedOut: script.timedOut } };
    },
  };
  return { tool, attempts };
}

let dir: string;
beforeEach(async () => {
  dir = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-orchestrator-')));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function context(approval: AskForApproval, sandbox: SandboxPolicy = 'workspace-write') {
  return makeToolContext(dir, { approval, sandbox });
}

const SANDBOXED = { sandboxed: true, userApproved: false } as const;
const UNSANDBOXED = { sandboxed: false, userApproved: false } as const;
const noApprovals: ApprovalMemory = { has: () => false };
const types = (events: EventMsg[]) => events.map((e) => e.type);

describe.skipIf(!availability.ok)('a command tool through the orchestrator', () => {
  it('is planned by the approval policy from the command it describes', async () => {
    const { tool } = fakeTool([]);
    const handler = commandHandler(tool);
    expect(await handler.plan?.({ name: 'x' }, context('on-failure').ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
    expect(await handler.plan?.({ name: 'x' }, context('untrusted').ctx, noApprovals)).toEqual({
      kind: 'ask',
      request: { type: 'exec', command: ['touch', 'x'], cwd: dir, reason: expect.stringContaining('not known to be read-only') },
      sandboxedAfterApproval: true,
      approvalKey: 'exec:["touch","x"]',
    });
    expect(await handler.plan?.({ name: 'x' }, context('untrusted').ctx, { has: (key) => key === 'exec:["touch","x"]' })).toEqual({
      kind: 'run',
      sandboxed: true,
    });
  });

  it('gives a sandboxed attempt the confined argv and an unsandboxed one the command itself, in the policy environment', async () => {
    const { tool, attempts } = fakeTool([FINE, FINE, FINE]);
    const { ctx } = context('on-failure');
    await runCommandTool(tool, { name: 'x' }, ctx, SANDBOXED);
    await runCommandTool(tool, { name: 'x' }, ctx, UNSANDBOXED);
    const [confined, plain] = attempts as [CommandAttempt, CommandAttempt];
    expect(confined.sandboxed).toBe(true);
    expect(confined.argv).not.toEqual(['touch', 'x']);
    expect(confined.argv.slice(-2)).toEqual(['touch', 'x']);
    expect(plain.sandboxed).toBe(false);
    expect(plain.argv).toEqual(['touch', 'x']);
    expect(confined.command).toMatchObject({ argv: ['touch', 'x'], cwd: dir });
    expect(confined.env).toBe(commandEnvironment(ctx.turn.shell_environment_policy));
    // Only the user's own commands bring an environment of their own.
    const own = { PATH: '/bin' };
    await runCommandTool(tool, { name: 'x' }, ctx, UNSANDBOXED, own);
    expect(attempts[2]!.env).toBe(own);
  });

  it.skipIf(!availability.ok || availability.backend.kind !== 'bubblewrap')('keeps a terminal program in its terminal session', async () => {
    const onPipes = fakeTool([FINE]);
    const onTty = fakeTool([FINE], { tty: true });
    await runCommandTool(onPipes.tool, { name: 'x' }, context('never').ctx, SANDBOXED);
    await runCommandTool(onTty.tool, { name: 'x' }, context('never').ctx, SANDBOXED);
    expect(onPipes.attempts[0]!.argv).toContain('--new-session');
    expect(onTty.attempts[0]!.argv).not.toContain('--new-session');
  });

  it('turns a sandbox denial into an escalation request where the policy allows asking', async () => {
    const { tool } = fakeTool([DENIED]);
    const { ctx, events } = context('on-failure');
    const output = await runCommandTool(tool, { name: 'x' }, ctx, SANDBOXED);
    expect(output.success).toBe(false);
    expect(output.text).toBe(`exit 1: ${DENIED.output}\nThis looks like the sandbox blocked the command.`);
    expect(output.escalate).toEqual({
      request: { type: 'exec', command: ['touch', 'x'], cwd: dir, reason: expect.stringContaining('outside the sandbox') },
      approvalKey: 'exec-outside:["touch","x"]',
    });
    expect(types(events)).toEqual(['exec_command_begin', 'exec_command_output_delta', 'exec_command_end', 'tool_call_refused']);
    expect(events.at(-1)).toMatchObject({ type: 'tool_call_refused', by: 'sandbox', reason: 'This looks like the sandbox blocked the command.' });
  });

  it('tells the model what it may do instead where the policy does not ask', async () => {
    const onRequest = await runCommandTool(fakeTool([DENIED]).tool, { name: 'x' }, context('on-request').ctx, SANDBOXED);
    expect(onRequest.escalate).toBeUndefined();
    expect(onRequest.text).toMatch(/with_escalated_permissions: true/);
    const never = await runCommandTool(fakeTool([DENIED]).tool, { name: 'x' }, context('never').ctx, SANDBOXED);
    expect(never.escalate).toBeUndefined();
    expect(never.text).toMatch(/"never"/);
  });

  it('sees no denial outside the sandbox, in a timeout, in a missing program, or in a program still running', async () => {
    const cases: [Script, { sandboxed: boolean; userApproved: boolean }][] = [
      [DENIED, UNSANDBOXED],
      [{ ...DENIED, timedOut: true }, SANDBOXED],
      [{ ...DENIED, exitCode: 127 }, SANDBOXED],
      [{ ...DENIED, running: true }, SANDBOXED],
    ];
    for (const [script, plan] of cases) {
      const output = await runCommandTool(fakeTool([script]).tool, { name: 'x' }, context('on-failure').ctx, plan);
      expect(output).toEqual({ text: `exit ${script.exitCode}: ${script.output}`, success: false });
    }
  });

  it('refuses to run a sandboxed attempt without a sandbox backend, without starting it', async () => {
    const { tool, attempts } = fakeTool([FINE]);
    const { ctx, events } = context('on-failure');
    process.env[BACKEND_ENV] = 'none';
    let output: ToolOutput;
    try {
      output = await runCommandTool(tool, { name: 'x' }, ctx, SANDBOXED);
    } finally {
      delete process.env[BACKEND_ENV];
    }
    expect(output).toEqual({ text: expect.stringContaining('no sandbox is available'), success: false });
    expect(attempts).toEqual([]);
    expect(events).toEqual([]);
  });

  it('with the ToolCallMachine: a denied attempt asks, and on approval runs once more outside the sandbox', async () => {
    const { tool, attempts } = fakeTool([DENIED, FINE]);
    const handler = commandHandler(tool);
    const { ctx, events } = context('on-failure');
    const remembered: string[] = [];
    const toolCall = toolCallMachine.provide({
      actors: {
        plan: fromPromise<ToolPlan, ToolCallInput>(async ({ input }) => handler.plan!(FakeArgs.parse(JSON.parse(input.arguments)), ctx, noApprovals)),
        execute: fromPromise<ToolOutput, ToolCallInput & { sandboxed: boolean; userApproved: boolean }>(({ input, signal }) =>
          handler.run(FakeArgs.parse(JSON.parse(input.arguments)), { ...ctx, signal }, { sandboxed: input.sandboxed, userApproved: input.userApproved }),
        ),
      },
      actions: {
        emitEvent: (_, params: { msg: EventMsg }) => void ctx.emit(params.msg),
        rememberApproval: (_, params: { key: string }) => void remembered.push(params.key),
      },
    });
    // The turn's part: spawn the call and keep what it reports.
    const turn = setup({
      types: { context: {} as { reports: ToolCallParentEvent[] }, events: {} as ToolCallParentEvent },
      actors: { toolCall },
    }).createMachine({
      context: { reports: [] },
      invoke: { id: 'call', src: 'toolCall', input: { sessionId: 's', callId: 'call-1', turnId: 'turn-1', name: 'fake', arguments: '{"name":"x"}' } },
      on: {
        'CALL.AWAITING_APPROVAL': { actions: assign({ reports: ({ context, event }) => [...context.reports, event] }) },
        'CALL.DONE': { actions: assign({ reports: ({ context, event }) => [...context.reports, event] }) },
        'CALL.ABORT_TURN': { actions: assign({ reports: ({ context, event }) => [...context.reports, event] }) },
      },
    });
    const actor = createActor(turn).start();
    try {
      await waitFor(() => actor.getSnapshot().context.reports.length === 1, 'the call to wait for approval');
      expect(actor.getSnapshot().context.reports).toEqual([{ type: 'CALL.AWAITING_APPROVAL', callId: 'call-1' }]);
      expect(events.at(-1)).toMatchObject({ type: 'exec_approval_request', command: ['touch', 'x'], cwd: dir });
      (actor.getSnapshot().children.call as AnyActorRef).send({ type: 'APPROVAL', decision: 'approved_for_session' });
      await waitFor(() => actor.getSnapshot().context.reports.length === 2, 'the call to finish');
      expect(actor.getSnapshot().context.reports[1]).toEqual({ type: 'CALL.DONE', callId: 'call-1', output: { text: 'exit 0: done\n', success: true } });
    } finally {
      actor.stop();
    }
    expect(attempts.map((a) => a.sandboxed)).toEqual([true, false]);
    expect(attempts[1]!.argv).toEqual(['touch', 'x']);
    expect(remembered).toEqual(['exec-outside:["touch","x"]']);
    // Each attempt has exactly one begin and one end; the denial is reported, then the question.
    expect(types(events)).toEqual([
      'exec_command_begin',
      'exec_command_output_delta',
      'exec_command_end',
      'tool_call_refused',
      'exec_approval_request',
      'exec_command_begin',
      'exec_command_output_delta',
      'exec_command_end',
    ]);
    for (const event of events) EventMsg.parse(event);
  });
});

describe('ExecEvents', () => {
  function emitter(options: { flowOpen?: () => boolean; emit?: (msg: EventMsg) => void } = {}) {
    const { ctx, events } = makeToolContext('/work');
    const flowOpen = options.flowOpen;
    const withFlow: ToolContext = {
      ...ctx,
      ...(options.emit ? { emit: options.emit } : {}),
      ...(flowOpen
        ? {
            flow: {
              get open() {
                return flowOpen();
              },
              whenOpen: () => Promise.resolve(),
            },
          }
        : {}),
    };
    return { events, exec: new ExecEvents(withFlow, ['echo', 'hi'], '/work') };
  }
  const end = { exitCode: 0, stdout: 'hi\n', stderr: '', aggregated: 'hi\n', durationMs: 3 };

  it('emits one begin, the deltas, and one end, in that order', () => {
    const { exec, events } = emitter();
    exec.output('stdout', 'early');
    exec.begin();
    exec.begin();
    exec.output('stdout', 'hi\n');
    exec.output('stderr', '');
    exec.end(end);
    exec.output('stdout', 'late');
    exec.end(end);
    expect(events).toEqual([
      { type: 'exec_command_begin', call_id: 'call-1', turn_id: 'turn-1', command: ['echo', 'hi'], cwd: '/work' },
      { type: 'exec_command_output_delta', call_id: 'call-1', stream: 'stdout', chunk: 'hi\n' },
      { type: 'exec_command_end', call_id: 'call-1', turn_id: 'turn-1', exit_code: 0, stdout: 'hi\n', stderr: '', aggregated_output: 'hi\n', duration_ms: 3 },
    ]);
  });

  it('sends the begin first when the end comes without one', () => {
    const { exec, events } = emitter();
    exec.end(end);
    expect(types(events)).toEqual(['exec_command_begin', 'exec_command_end']);
  });

  it('skips deltas while the flow gate is closed, and stops after the cap', () => {
    let open = false;
    const { exec, events } = emitter({ flowOpen: () => open });
    exec.begin();
    exec.output('stdout', 'held');
    open = true;
    for (let i = 0; i < MAX_OUTPUT_DELTAS + 5; i++) exec.output('stdout', 'x');
    exec.end(end);
    const deltas = events.filter((e) => e.type === 'exec_command_output_delta');
    expect(deltas).toHaveLength(MAX_OUTPUT_DELTAS);
    expect(deltas.every((e) => e.type === 'exec_command_output_delta' && e.chunk === 'x')).toBe(true);
    expect(events.at(-1)?.type).toBe('exec_command_end');
  });

  it('drops an event that can no longer be delivered', () => {
    const { exec } = emitter({
      emit: () => {
        throw new Error('the session is gone');
      },
    });
    expect(() => {
      exec.begin();
      exec.output('stdout', 'x');
      exec.end(end);
    }).not.toThrow();
  });
});

describe('planApproval', () => {
  const request = { type: 'exec', command: ['mcp', 'server', 'tool'], cwd: '/' } as const;
  const ask = { kind: 'ask', request, approvalKey: 'mcp:x' } as const;

  it('runs what needs nothing, refuses what is refused, and asks otherwise', () => {
    expect(planApproval({ kind: 'none' }, noApprovals, true)).toEqual({ kind: 'run', sandboxed: true });
    expect(planApproval({ kind: 'reject', reason: 'no' }, noApprovals, true)).toEqual({ kind: 'reject', reason: 'no' });
    expect(planApproval(ask, noApprovals, false)).toEqual({ kind: 'ask', request, sandboxedAfterApproval: false, approvalKey: 'mcp:x' });
  });

  it('does not ask again what the session approved for good', () => {
    expect(planApproval(ask, { has: (key) => key === 'mcp:x' }, false)).toEqual({ kind: 'run', sandboxed: false, approvedKey: 'mcp:x' });
  });
});
