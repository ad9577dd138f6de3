import type { FileChange } from '../protocol/index.js';

/** What the user is asked to approve. */
export type ApprovalRequest =
  | { readonly type: 'exec'; readonly command: readonly string[]; readonly cwd: string; readonly reason?: string | undefined }
  | { readonly type: 'patch'; readonly changes: Record<string, FileChange>; readonly reason?: string | undefined }
  /** A tool that runs no command and changes no file as a patch (a user-defined tool): its name and arguments. */
  | { readonly type: 'tool'; readonly tool: string; readonly arguments: unknown; readonly reason?: string | undefined };

/**
 * The plan for one call, decided before anything runs (DESIGN.md: plan, then execute).
 * `sandboxed` says whether the run is confined by the sandbox.
 */
export type ToolPlan =
  /** `approvedKey`: the call runs unasked because the user approved this key for the session. */
  | { readonly kind: 'run'; readonly sandboxed: boolean; readonly approvedKey?: string | undefined }
  | {
      readonly kind: 'ask';
      readonly request: ApprovalRequest;
      /** Run sandboxed (false: outside the sandbox) once approved. */
      readonly sandboxedAfterApproval: boolean;
      /** Key under which an `approved_for_session` decision is remembered. */
      readonly approvalKey: string;
    }
  /** A client tool: the client runs it; the call waits for its answer. `arguments` is the parsed JSON the model sent. */
  | { readonly kind: 'client'; readonly arguments: unknown }
  | { readonly kind: 'reject'; readonly reason: string };

/** What goes back to the model as the call's output. */
export interface ToolOutput {
  readonly text: string;
  readonly success: boolean;
  /**
   * Set when a sandboxed run failed because of the sandbox and the policy allows asking to
   * run it again outside: the call then waits for this approval instead of finishing.
   */
  readonly escalate?: { readonly request: ApprovalRequest; readonly approvalKey: string } | undefined;
}
