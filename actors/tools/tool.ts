import type { z } from 'zod';
import type { AgentInfo, AgentStatus, EventMsg, FileChange, TreePool } from '../../protocol/index.js';
import type { ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import type { TurnContext } from '../../machines/turn-context.js';
import type { ApprovalMemory } from '../../lib/approval/index.js';
import type { FlowSignal } from '../../lib/flow/flow-gate.js';

/** Something a tool keeps open beyond one call (a PTY session, a server connection). */
export interface SessionResource {
  dispose(): void | Promise<void>;
}

/** Per-session storage for tools: what is created here is disposed when the session closes. */
export interface SessionResources {
  /** The resource stored under `key`, created by `create` on first use. */
  get<T extends SessionResource>(key: string, create: () => T): T;
}

/** A sub-agent as the model sees it in tool results. */
export interface AgentReport {
  readonly agent_id: string;
  readonly nickname: string;
  readonly status: AgentStatus;
  /** The final message when completed, the error when errored. */
  readonly message: string | null;
}

/** What the sub-agent tools may ask of their session (implemented by its AgentSupervisor). */
export interface AgentControl {
  spawn(request: { message: string; agentType?: string | undefined; forkContext: boolean; model?: string | undefined }, ctx: ToolContext): Promise<AgentReport>;
  sendInput(agentId: string, message: string, interrupt: boolean): Promise<AgentReport>;
  wait(
    agentIds: readonly string[],
    options: { returnWhen: 'all' | 'any'; timeoutMs: number; signal: AbortSignal },
  ): Promise<{ agents: AgentReport[]; timed_out: boolean }>;
  close(agentId: string): Promise<AgentReport>;
  /** The live sub-agents of the whole tree, optionally those whose id starts with `idPrefix`. */
  list(idPrefix?: string): Promise<AgentInfo[]>;
}

/** Limits shared by every session of a tree (wherever each runs), kept by the tree's root. */
export interface TreeSlots {
  /** Take a slot of `pool`; false when the tree is at its limit. */
  acquire(pool: TreePool): Promise<boolean>;
  release(pool: TreePool): void;
}

/** What a tool's handler may use while it runs. */
export interface ToolContext {
  readonly sessionId: string;
  /** The root session of the session's tree; absent outside a session (unit tests). */
  readonly rootSessionId?: string | undefined;
  readonly callId: string;
  readonly turn: TurnContext;
  /** Aborted when the turn is interrupted: the handler must stop and kill what it started. */
  readonly signal: AbortSignal;
  /** The tree's shared limits (live exec sessions); absent outside a session (unit tests). */
  readonly treeSlots?: TreeSlots | undefined;
  /** The session's sub-agents; absent in sessions that may not have any (review threads). */
  readonly agents?: AgentControl | undefined;
  /** TROUPE_HOME of the host running the session (rules, protected paths); absent: the environment's. */
  readonly home?: string | undefined;
  /**
   * Closed while the reader of the session's events is behind: output deltas are skipped then
   * (the end event still carries the output). Absent: always open.
   */
  readonly flow?: FlowSignal | undefined;
  /** Resources that outlive this call and end with the session. */
  readonly resources: SessionResources;
  /** Emit a protocol event on the session's stream (the session assigns id, session and seq). */
  emit(msg: EventMsg): void;
  /** Record file changes made by this call into the turn's cumulative diff (`turn_diff`). */
  trackChanges?(changes: Record<string, FileChange>, before: ReadonlyMap<string, string | null>): void | Promise<void>;
}

export type { ApprovalRequest, ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
export type { ApprovalMemory } from '../../lib/approval/index.js';

/** How the call runs, once planned (and approved, when it had to ask). */
export interface RunPlan {
  readonly sandboxed: boolean;
  /** True when the user approved this call; false when the policy let it run without asking. */
  readonly userApproved: boolean;
  /** The approval key the user approved this call under, now or for the session (ToolRunInput). */
  readonly approvedKey?: string | undefined;
}

/**
 * A tool as the registry and the ToolCallMachine see it. Tools that run a command implement
 * `CommandTool` instead and get their handler from `commandHandler` (orchestrator.ts); a tool
 * that asks before it runs builds its plan with `planApproval`.
 */
export interface ToolHandler<A = unknown> {
  readonly name: string;
  readonly description: string;
  /** Argument validation, and the source of the model-visible JSON schema unless `parameters` is set. */
  readonly args: z.ZodType<A>;
  /**
   * The model-visible JSON schema, given as is: for tools described elsewhere (MCP servers
   * declare JSON Schema, and validate their own arguments). Absent: generated from `args`.
   */
  readonly parameters?: Record<string, unknown>;
  /** Decide whether the call runs, asks first, or is refused. Absent: always runs. */
  plan?(args: A, ctx: ToolContext, approvals: ApprovalMemory): ToolPlan | Promise<ToolPlan>;
  /**
   * Running a call again with the same arguments does what running it once does (the handler
   * makes sure of it). On NATS, a call that was running on a worker that died is then run again
   * by the worker that adopts the session; any other tool's call gets INTERRUPTED_BY_FAILOVER.
   */
  readonly repeatable?: boolean;
  run(args: A, ctx: ToolContext, plan: RunPlan): Promise<ToolOutput>;
}

/** Erases a handler's argument type for storage in the registry (the registry validates arguments with `args`). */
export function defineTool<A>(handler: ToolHandler<A>): ToolHandler<unknown> {
  return handler;
}
