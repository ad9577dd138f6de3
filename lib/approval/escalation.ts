/**
 * After the sandbox blocked a command: whether the policy lets the user be asked to run it
 * outside, and what the model is told when it does not.
 */
import type { ApprovalRequest } from '../../machines/tool-plan.js';
import type { TurnContext } from '../../machines/turn-context.js';
import type { AskForApproval } from '../../protocol/index.js';
import { approvalKeys, type CommandRequest } from './command-plan.js';
import { escalatesOnDenial } from './exec-plan.js';

/**
 * The approval to ask for when a sandboxed run was blocked by the sandbox, or undefined when
 * the policy does not allow asking (then the model reads the failure and may ask itself).
 */
export function escalationAfterDenial(
  request: Pick<CommandRequest, 'argv' | 'cwd'>,
  turn: Pick<TurnContext, 'approval_policy' | 'sandbox_policy'>,
): { request: ApprovalRequest; approvalKey: string } | undefined {
  if (!escalatesOnDenial(turn.approval_policy, turn.sandbox_policy.mode)) return undefined;
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
export function denialHint(policy: AskForApproval): string {
  switch (policy) {
    case 'on-request':
      return 'This looks like the sandbox blocked the command. If the task needs it, run it again with with_escalated_permissions: true and a justification; the user will be asked.';
    case 'never':
      return 'This looks like the sandbox blocked the command. Running outside the sandbox is not available under the approval policy "never"; find another way.';
    default:
      return 'This looks like the sandbox blocked the command.';
  }
}
