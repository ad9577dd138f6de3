/**
 * The ExecPlan: how one command runs, decided before it runs, from four inputs — the approval
 * policy, the sandbox policy, what the exec-policy rules say about the command, and whether
 * the model asked to leave the sandbox. Pure, so the whole matrix is unit-tested.
 *
 * The decisions, in order:
 * 1. A `forbidden` rule refuses the command under every policy.
 * 2. Under danger-full-access there is no sandbox to leave, so an escalation request is moot.
 * 3. `never` refuses escalation requests, and refuses what would need asking.
 * 4. `on-failure` ignores escalation requests: the command runs sandboxed, and only a sandbox
 *    denial asks to run it outside. `untrusted` and `on-request` ask before leaving the sandbox.
 * 5. Otherwise the command runs, unless a `prompt` rule or (under `untrusted`) a command not
 *    known to be read-only makes it ask first. `allow` rules waive that question but never
 *    take a command out of the sandbox: leaving it always takes a human.
 *
 * A `prompt` verdict is also what the exec-policy returns when it cannot rule out that a
 * command runs what a `prompt`/`forbidden` rule names, and before commands run through sudo
 * or doas; those verdicts carry the question to ask.
 */
import type { AskForApproval, SandboxMode } from '../../protocol/index.js';
import type { RuleVerdict } from '../exec-policy/index.js';

export interface ExecPlanInput {
  readonly approvalPolicy: AskForApproval;
  readonly sandboxMode: SandboxMode;
  readonly rule?: RuleVerdict | undefined;
  readonly escalationRequested: boolean;
  readonly justification?: string | undefined;
  /** The command only reads (safe-commands.ts); matters under `untrusted`. */
  readonly knownSafe: boolean;
  /** Approvals remembered for the session (`approved_for_session`). */
  readonly approved?: { readonly inside: boolean; readonly outside: boolean } | undefined;
}

export type ExecPlan =
  | {
      readonly kind: 'run';
      readonly sandboxed: boolean;
      /** A sandbox denial turns into a request to run the command outside (on-failure, untrusted). */
      readonly escalateOnDenial: boolean;
    }
  | { readonly kind: 'ask'; readonly sandboxedAfterApproval: boolean; readonly reason: string }
  | { readonly kind: 'reject'; readonly reason: string };

export const NEVER_ESCALATES =
  'Running outside the sandbox is not available: the approval policy is "never", so no one can approve it. ' +
  'Run the command without with_escalated_permissions, or find another way.';

/** Whether a sandboxed run that the sandbox blocked may ask to run again outside it. */
export function escalatesOnDenial(policy: AskForApproval, mode: SandboxMode): boolean {
  return mode !== 'danger-full-access' && (policy === 'on-failure' || policy === 'untrusted');
}

export function planExec(input: ExecPlanInput): ExecPlan {
  const { approvalPolicy: policy, sandboxMode: mode, rule } = input;
  const sandboxed = mode !== 'danger-full-access';
  const approved = input.approved ?? { inside: false, outside: false };

  if (rule?.decision === 'forbidden') {
    return {
      kind: 'reject',
      reason: `This command is forbidden by the exec-policy rule ${rule.description}${rule.reason ? `: ${rule.reason}` : ''}. Do not run it or a variant of it.`,
    };
  }
  const escalation = sandboxed && input.escalationRequested;
  if (escalation && policy === 'never') return { kind: 'reject', reason: NEVER_ESCALATES };

  const prompted = rule?.decision === 'prompt';
  const promptReason = prompted
    ? (rule.question ?? `the exec-policy rule ${rule.description} asks before running this command${rule.reason ? ` (${rule.reason})` : ''}`)
    : '';

  if (escalation && policy !== 'on-failure') {
    if (approved.outside && !prompted) return { kind: 'run', sandboxed: false, escalateOnDenial: false };
    const reason = input.justification ?? (prompted ? promptReason : 'the model asks to run this command outside the sandbox');
    return { kind: 'ask', sandboxedAfterApproval: false, reason };
  }

  const untrustedAsks = policy === 'untrusted' && !input.knownSafe && rule?.decision !== 'allow';
  if (!prompted && (!untrustedAsks || approved.inside || approved.outside)) {
    return { kind: 'run', sandboxed, escalateOnDenial: escalatesOnDenial(policy, mode) };
  }
  if (policy === 'never') {
    return { kind: 'reject', reason: `Not run: ${promptReason}, and the approval policy "never" forbids asking the user.` };
  }
  return {
    kind: 'ask',
    sandboxedAfterApproval: sandboxed,
    reason: prompted ? promptReason : 'the approval policy asks before commands that are not known to be read-only',
  };
}
