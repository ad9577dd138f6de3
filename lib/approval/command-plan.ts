/**
 * From a command to the ToolCallMachine's plan: reads the exec-policy rules, asks the ExecPlan
 * matrix, and refuses sandboxed plans on a host without a sandbox backend. Every tool that runs
 * a command is planned here (through the tool orchestrator), so all of them obey one policy.
 */
import type { ToolPlan } from '../../machines/tool-plan.js';
import type { TurnContext } from '../../machines/turn-context.js';
import { ExecPolicyError, loadExecPolicy, loadShellParser } from '../exec-policy/index.js';
import { troupeHome } from '../rollout/index.js';
import { detectSandbox, unavailableMessage } from '../sandbox/index.js';
import { planExec, type ExecPlan } from './exec-plan.js';
import { isKnownSafeCommand } from './safe-commands.js';

/** A command as the user is asked to approve it and as the rules match it. */
export interface CommandRequest {
  /** The argv shown to the user, remembered for approvals and matched against the rules. */
  readonly argv: readonly string[];
  readonly cwd: string;
  /** The model asked to run it outside the sandbox. */
  readonly escalationRequested: boolean;
  /** The model's reason for asking, shown to the user. */
  readonly justification?: string | undefined;
}

/** Read-only view of approvals the session tree has granted for the rest of the session. */
export interface ApprovalMemory {
  has(key: string): boolean;
}

/** What planning needs of the call: its turn's policies, and where the user's rules live. */
export interface PlanContext {
  readonly turn: Pick<TurnContext, 'cwd' | 'approval_policy' | 'sandbox_policy'>;
  /** TROUPE_HOME of the host running the session; absent: the environment's. */
  readonly home?: string | undefined;
}

/** Approval keys: running the command as planned, and running it outside the sandbox. */
export function approvalKeys(argv: readonly string[]): { inside: string; outside: string } {
  const json = JSON.stringify(argv);
  return { inside: `exec:${json}`, outside: `exec-outside:${json}` };
}

/** Where the user's rules live: the session's TROUPE_HOME, else the process environment's. */
export function rulesHome(ctx?: Pick<PlanContext, 'home'>): string {
  return ctx?.home ?? troupeHome(process.env);
}

export async function planCommand(request: CommandRequest, ctx: PlanContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  const turn = ctx.turn;
  // The rules and isKnownSafeCommand read shell scripts synchronously, with this parser.
  await loadShellParser();
  let rule;
  try {
    rule = (await loadExecPolicy(rulesHome(ctx), turn.cwd)).evaluate(request.argv);
  } catch (error) {
    // Rules we cannot read must not be ignored: one of them might have forbidden this command.
    if (error instanceof ExecPolicyError)
      return { kind: 'reject', reason: `The exec-policy rules file is invalid, so no command runs until it is fixed: ${error.message}` };
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
