/**
 * The tool orchestrator: what every tool call goes through between the model and its effect,
 * written once instead of once per tool.
 *
 * A call is planned first (ToolHandler.plan): run, ask the user, or refuse; sandboxed or not.
 * The ToolCallMachine (machines/tool-call.ts) then waits for the approval when the plan asks,
 * and runs the call (ToolHandler.run). When a sandboxed run comes back with `escalate`, the
 * machine asks again and runs the call once more, outside the sandbox. This module builds the
 * two halves the machine calls:
 *
 * - Tools that run a command (`shell`, `exec_command`) implement `CommandTool`: how the command
 *   is described for approval, and how one attempt runs given the argv to execute.
 *   `commandHandler` does the rest: the plan from the approval policy and the exec-policy rules
 *   (approval/), the environment, the confinement in the sandbox (sandbox/), the begin, delta
 *   and end events (one `ExecEvents` per attempt), and, when the sandbox apparently blocked
 *   the command, the `escalate` request or the hint the model reads instead.
 * - Tools that run no command (`apply_patch`, MCP tools) declare what they need before they
 *   run as an `ApprovalNeed`; `planApproval` turns it into the plan, honouring approvals the
 *   session remembers.
 */
import type { z } from 'zod';
import type { ApprovalRequest } from '../../machines/tool-plan.js';
import { denialHint, escalationAfterDenial, planCommand, rulesHome, type ApprovalMemory, type CommandRequest } from '../../lib/approval/index.js';
import { confineCommand, isLikelySandboxDenial, SandboxUnavailableError, type FinishedCommand } from '../../lib/sandbox/index.js';
import { commandEnvironment, type Environment } from './environment-policy.js';
import { ExecEvents } from './exec-events.js';
import { shellSnapshotsOf, snapshotDirectories } from './shell-snapshot.js';
import type { RunPlan, ToolContext, ToolHandler, ToolOutput, ToolPlan } from './tool.js';

/** A command as its tool describes it: for approval, the rules, the events, and how it runs. */
export interface CommandDescription extends CommandRequest {
  /** It runs on a terminal: the sandbox then leaves it in the terminal's session. */
  readonly tty?: boolean | undefined;
}

/** One attempt at running the command: what the tool is given. */
export interface CommandAttempt {
  readonly ctx: ToolContext;
  /** The command as described (and as the user approved it). */
  readonly command: CommandDescription;
  /** What to execute: the command itself, or the sandbox's argv around it. */
  readonly argv: readonly string[];
  /** Whether `argv` runs in the sandbox. */
  readonly sandboxed: boolean;
  /** The environment: the session's shell_environment_policy applied, the same in and out of the sandbox. */
  readonly env: NodeJS.ProcessEnv;
  /** This attempt's events: call `begin` once the command started, then `output`, then `end`. */
  readonly events: ExecEvents;
}

/** What an attempt gives back. */
export interface AttemptResult {
  /** The call's output for the model (an escalation is the orchestrator's to add). */
  readonly output: Pick<ToolOutput, 'text' | 'success'>;
  /**
   * How the command ended, when it did within the call: looked at for signs of a sandbox
   * denial. Absent when it is still running (an exec session) or never started.
   */
  readonly finished?: FinishedCommand | undefined;
}

/** A tool that runs a command. */
export interface CommandTool<A> {
  readonly name: string;
  readonly description: string;
  /** Argument validation, and the source of the model-visible JSON schema. */
  readonly args: z.ZodType<A>;
  /** Variables added to the policy's environment (the policy's `set` still wins). One object: environments are cached by it. */
  readonly environment?: Environment | undefined;
  /** How the call's command is approved and run. */
  describe(args: A, ctx: ToolContext): CommandDescription;
  /** Run the command once, as `attempt.argv`. Failures to start are output, not exceptions. */
  attempt(args: A, attempt: CommandAttempt): Promise<AttemptResult>;
}

/** The registry's handler for a command tool. */
export function commandHandler<A>(tool: CommandTool<A>): ToolHandler<A> {
  return {
    name: tool.name,
    description: tool.description,
    args: tool.args,
    plan: (args, ctx, approvals) => planCommandTool(tool, args, ctx, approvals),
    run: (args, ctx, plan) => runCommandTool(tool, args, ctx, plan),
  };
}

/** The plan of a command tool's call: approval policy, exec-policy rules and sandbox policy. */
export function planCommandTool<A>(tool: CommandTool<A>, args: A, ctx: ToolContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  return planCommand(tool.describe(args, ctx), ctx, approvals);
}

/**
 * Run one attempt of a command tool's call as planned. `env` replaces the policy's environment
 * (only the user's own commands pass one).
 */
export async function runCommandTool<A>(tool: CommandTool<A>, args: A, ctx: ToolContext, plan: RunPlan, env?: NodeJS.ProcessEnv): Promise<ToolOutput> {
  const command = tool.describe(args, ctx);
  // A login shell (`bash -lc`) runs as `bash -c` with the session's snapshot of the profile sourced.
  const snapshots = shellSnapshotsOf(ctx);
  const argv = await snapshots.rewrite(command.argv, {
    warn: (message) => ctx.emit({ type: 'warning', message }),
    // The profile runs as confined as this command, in the snapshot's own directory.
    confine: async (capture, cwd) =>
      (await confineCommand(capture, { cwd, sandbox_policy: ctx.turn.sandbox_policy }, { sandboxed: plan.sandboxed, tty: false, home: rulesHome(ctx) })).argv,
  });
  let confined;
  try {
    confined = await confineCommand(argv, ctx.turn, {
      sandboxed: plan.sandboxed,
      tty: command.tty === true,
      home: rulesHome(ctx),
      readOnly: snapshotDirectories(),
    });
  } catch (error) {
    if (error instanceof SandboxUnavailableError) return { text: error.message, success: false };
    throw error;
  }
  const result = await tool.attempt(args, {
    ctx,
    command,
    argv: confined.argv,
    sandboxed: confined.spec !== undefined,
    env: env ?? commandEnvironment(ctx.turn.shell_environment_policy, tool.environment),
    events: new ExecEvents(ctx, command.argv, command.cwd),
  });
  const { spec } = confined;
  if (spec !== undefined && result.finished !== undefined && isLikelySandboxDenial(result.finished, spec)) {
    // The machine turns `escalate` into a question, and on approval runs the call again unsandboxed.
    const escalate = escalationAfterDenial(command, ctx.turn);
    const hint = denialHint(ctx.turn.approval_policy);
    ctx.emit({ type: 'tool_call_refused', call_id: ctx.callId, turn_id: ctx.turn.turn_id, tool: tool.name, by: 'sandbox', reason: hint });
    return { text: `${result.output.text}\n${hint}`, success: false, escalate };
  }
  return result.output;
}

/** What a tool that runs no command needs before it runs. */
export type ApprovalNeed =
  | { readonly kind: 'none' }
  /** Ask, unless the session already approved `approvalKey` for good. */
  | { readonly kind: 'ask'; readonly request: ApprovalRequest; readonly approvalKey: string }
  | { readonly kind: 'reject'; readonly reason: string };

/**
 * The plan of a tool that runs no command. `sandboxed` says whether its effects are held to the
 * sandbox policy (apply_patch checks every path against the writable roots) or not (an MCP
 * server runs outside); it is the same whether or not the user was asked.
 */
export function planApproval(need: ApprovalNeed, approvals: ApprovalMemory, sandboxed: boolean): ToolPlan {
  switch (need.kind) {
    case 'none':
      return { kind: 'run', sandboxed };
    case 'reject':
      return need;
    case 'ask':
      if (approvals.has(need.approvalKey)) return { kind: 'run', sandboxed, approvedKey: need.approvalKey };
      return { kind: 'ask', request: need.request, sandboxedAfterApproval: sandboxed, approvalKey: need.approvalKey };
  }
}
