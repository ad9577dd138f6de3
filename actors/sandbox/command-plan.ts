/**
 * From a model's command to the ToolCallMachine's plan: reads the exec-policy rules, asks the
 * ExecPlan matrix, and refuses sandboxed plans on a host without a sandbox backend. Shared by
 * `shell` and `exec_command`, so both tools obey the same policy.
 */
import { loadExecPolicy, loadShellParser, ExecPolicyError } from '../exec-policy/index.js';
import { troupeHome } from '../rollout/index.js';
import { isKnownSafeCommand } from '../tools/safe-commands.js';
import type { ApprovalMemory, ApprovalRequest, ToolContext, ToolPlan } from '../tools/tool.js';
import { detectSandbox, unavailableMessage } from './detect.js';
import { escalatesOnDenial, planExec, type ExecPlan } from './exec-plan.js';

export interface CommandRequest {
  /** The argv shown to the user, remembered for approvals and matched against the rules. */
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly escalationRequested: boolean;
  readonly justification?: string | undefined;
}

/** Approval keys: running the command as planned, and running it outside the sandbox. */
export function approvalKeys(argv: readonly string[]): { inside: string; outside: string } {
  const json = JSON.stringify(argv);
  return { inside: `exec:${json}`, outside: `exec-outside:${json}` };
}

/** Where the user's rules live: the session's TROUPE_HOME, else the process environment's. */
export function rulesHome(ctx?: Pick<ToolContext, 'home'>): string {
  return ctx?.home ?? troupeHome(process.env);
}

export async function planCommand(request: CommandRequest, ctx: ToolContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  const turn = ctx.turn;
  // The rules and isKnownSafeCommand read shell scripts synchronously, with this parser.
  await loadShellParser();
  let rule;
  try {
    rule = (await loadExecPolicy(rulesHome(ctx), turn.cwd)).evaluate(request.argv);
  } catch (error) {
    // Rules we cannot read must not be ignored: one of them might have forbidden this command.
    if (error instanceof ExecPolicyError) return { kind: 'reject', reason: `The exec-policy rules file is invalid, so no command runs until it is fixed: ${error.message}` };
    throw error;
  }
  const keys = approvalKeys(request.argv);
  const plan = planExec({
    approvalPolicy: turn.approval_policy,
    sandboxMode: turn.sandbox_policy.mode,
    rule,
    escalationRequested: request.escalationRequested,
    justification: request.justification,
    knownSafe: isKnownSafeCommand(request.argv),
    approved: { inside: approvals.has(keys.inside), outside: approvals.has(keys.outside) },
  });
  const needsSandbox = (plan.kind === 'run' && plan.sandboxed) || (plan.kind === 'ask' && plan.sandboxedAfterApproval);
  if (needsSandbox) {
    const found = await detectSandbox();
    if (!found.ok) return { kind: 'reject', reason: unavailableMessage(found.reason, turn.sandbox_policy.mode) };
  }
  return toToolPlan(plan, request, keys);
}

function toToolPlan(plan: ExecPlan, request: CommandRequest, keys: { inside: string; outside: string }): ToolPlan {
  switch (plan.kind) {
    case 'run':
      return { kind: 'run', sandboxed: plan.sandboxed };
    case 'reject':
      return plan;
    case 'ask':
      return {
        kind: 'ask',
        request: { type: 'exec', command: [...request.argv], cwd: request.cwd, reason: plan.reason },
        sandboxedAfterApproval: plan.sandboxedAfterApproval,
        approvalKey: plan.sandboxedAfterApproval ? keys.inside : keys.outside,
      };
  }
}

/**
 * The approval to ask for when a sandboxed run was blocked by the sandbox, or undefined when
 * the policy does not allow asking (then the model reads the failure and may ask itself).
 */
export function escalationAfterDenial(
  request: Pick<CommandRequest, 'argv' | 'cwd'>,
  ctx: ToolContext,
): { request: ApprovalRequest; approvalKey: string } | undefined {
  if (!escalatesOnDenial(ctx.turn.approval_policy, ctx.turn.sandbox_policy.mode)) return undefined;
  return {
    request: {
      type: 'exec',
      command: [...request.argv],
      cwd: request.cwd,
      reason: 'the command failed inside the sandbox, apparently because the sandbox blocked it; run it again outside the sandbox?',
    },
    approvalKey: approvalKeys(request.argv).outside,
  };
}

/** What the model reads after a sandbox denial that did not become an approval request. */
export function denialHint(ctx: ToolContext): string {
  switch (ctx.turn.approval_policy) {
    case 'on-request':
      return 'This looks like the sandbox blocked the command. If the task needs it, run it again with with_escalated_permissions: true and a justification; the user will be asked.';
    case 'never':
      return 'This looks like the sandbox blocked the command. Running outside the sandbox is not available under the approval policy "never"; find another way.';
    default:
      return 'This looks like the sandbox blocked the command.';
  }
}
