import type { z } from 'zod';
import type { EventMsg, FileChange } from '../../protocol/index.js';
import type { TurnContext } from '../../machines/turn-context.js';

/** What a tool's handler may use while it runs. */
export interface ToolContext {
  readonly sessionId: string;
  readonly callId: string;
  readonly turn: TurnContext;
  /** Aborted when the turn is interrupted: the handler must stop and kill what it started. */
  readonly signal: AbortSignal;
  /** Emit a protocol event on the session's stream (the session assigns id, session and seq). */
  emit(msg: EventMsg): void;
  /** Record file changes made by this call into the turn's cumulative diff (`turn_diff`). */
  trackChanges?(changes: Record<string, FileChange>, before: ReadonlyMap<string, string | null>): void;
}

/** What the user is asked to approve. */
export type ApprovalRequest =
  | { readonly type: 'exec'; readonly command: readonly string[]; readonly cwd: string; readonly reason?: string | undefined }
  | { readonly type: 'patch'; readonly changes: Record<string, FileChange>; readonly reason?: string | undefined };

/**
 * The plan for one call, decided before anything runs (DESIGN.md: plan, then execute).
 * `sandboxed` says whether the run is confined by the sandbox (enforced by the sandbox issue).
 */
export type ToolPlan =
  | { readonly kind: 'run'; readonly sandboxed: boolean }
  | {
      readonly kind: 'ask';
      readonly request: ApprovalRequest;
      /** Run sandboxed (false: outside the sandbox) once approved. */
      readonly sandboxedAfterApproval: boolean;
      /** Key under which an `approved_for_session` decision is remembered. */
      readonly approvalKey: string;
    }
  | { readonly kind: 'reject'; readonly reason: string };

/** What goes back to the model as the call's output. */
export interface ToolOutput {
  readonly text: string;
  readonly success: boolean;
}

/** Read-only view of approvals the session tree has granted for the rest of the session. */
export interface ApprovalMemory {
  has(key: string): boolean;
}

export interface ToolHandler<A = unknown> {
  readonly name: string;
  readonly description: string;
  /** The single source of the model-visible JSON schema and of argument validation. */
  readonly args: z.ZodType<A>;
  /** Decide whether the call runs, asks first, or is refused. Absent: always runs. */
  plan?(args: A, ctx: ToolContext, approvals: ApprovalMemory): ToolPlan | Promise<ToolPlan>;
  run(args: A, ctx: ToolContext, plan: { readonly sandboxed: boolean }): Promise<ToolOutput>;
}

/** Erases a handler's argument type for storage in the registry. */
export function defineTool<A>(handler: ToolHandler<A>): ToolHandler<unknown> {
  return handler as unknown as ToolHandler<unknown>;
}
