import { z } from 'zod';
import { AskForApproval, FileChange, PlanItem, ReviewOutput, ReviewTarget, SandboxPolicy, TokenUsage } from './common.js';

const ev = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) => z.object({ type: z.literal(type), ...shape });

export const ErrorCode = z.enum([
  'context_window_exceeded',
  'quota_exceeded',
  'bad_request',
  /** An op for a session no host has: never opened, or shut down already. */
  'unknown_session',
  'unauthorized',
  'server_error',
  'stream_failed',
  'sandbox_error',
  'internal',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const AgentStatus = z.enum(['pending_init', 'running', 'completed', 'errored', 'interrupted', 'shutdown']);
export type AgentStatus = z.infer<typeof AgentStatus>;

/** An agent job (`spawn_agents_on_csv`): running, or how it ended. */
export const AgentJobStatus = z.enum(['running', 'completed', 'failed', 'cancelled']);
export type AgentJobStatus = z.infer<typeof AgentJobStatus>;

export const TokenUsageInfo = z.object({
  total_token_usage: TokenUsage,
  last_token_usage: TokenUsage,
  model_context_window: z.number().int().nullable(),
});
export type TokenUsageInfo = z.infer<typeof TokenUsageInfo>;

export const RateLimitWindow = z.object({
  used_percent: z.number(),
  window_minutes: z.number().nullable().optional(),
  resets_in_seconds: z.number().nullable().optional(),
});
/** Rate limits as the provider reported them in response headers (`x-ratelimit-*`). */
export const RateLimitSnapshot = z.object({
  limit_requests: z.number().nullable(),
  remaining_requests: z.number().nullable(),
  reset_requests: z.string().nullable(),
  limit_tokens: z.number().nullable(),
  remaining_tokens: z.number().nullable(),
  reset_tokens: z.string().nullable(),
});
export type RateLimitSnapshot = z.infer<typeof RateLimitSnapshot>;

export const SessionSummary = z.object({
  session_id: z.string(),
  rollout_path: z.string(),
  created_at: z.string(),
  first_user_message: z.string().nullable(),
  /** The session's working directory when it was created. */
  cwd: z.string(),
  /** Set for a sub-agent's or review thread's session: the session that started it. */
  parent_session_id: z.string().nullable(),
});
export type SessionSummary = z.infer<typeof SessionSummary>;

export const EventMsg = z.discriminatedUnion('type', [
  ev('session_configured', {
    session_id: z.string(),
    model: z.string(),
    cwd: z.string(),
    approval_policy: AskForApproval,
    sandbox_policy: SandboxPolicy,
    rollout_path: z.string(),
    parent_session_id: z.string().nullable(),
    depth: z.number().int().nonnegative(),
    worker_id: z.string(),
    history_entries: z.number().int().nonnegative(),
  }),
  ev('session_list', { sessions: z.array(SessionSummary) }),
  ev('task_started', { turn_id: z.string(), model_context_window: z.number().int().nullable() }),
  ev('task_complete', { turn_id: z.string(), last_agent_message: z.string().nullable() }),
  ev('turn_aborted', { turn_id: z.string(), reason: z.enum(['interrupted', 'replaced', 'review_ended']) }),
  ev('user_message', { message: z.string() }),
  ev('agent_message_delta', { delta: z.string() }),
  ev('agent_message', { message: z.string() }),
  ev('agent_reasoning_delta', { delta: z.string() }),
  ev('agent_reasoning', { text: z.string() }),
  ev('exec_approval_request', {
    call_id: z.string(),
    turn_id: z.string(),
    command: z.array(z.string()),
    cwd: z.string(),
    reason: z.string().optional(),
  }),
  ev('apply_patch_approval_request', {
    call_id: z.string(),
    turn_id: z.string(),
    changes: z.record(z.string(), FileChange),
    reason: z.string().optional(),
  }),
  /** The model called a client tool: the call waits for a `client_tool_output` op with this call_id. */
  ev('client_tool_call', { call_id: z.string(), turn_id: z.string(), name: z.string(), arguments: z.unknown() }),
  ev('exec_command_begin', { call_id: z.string(), turn_id: z.string(), command: z.array(z.string()), cwd: z.string() }),
  ev('exec_command_output_delta', { call_id: z.string(), stream: z.enum(['stdout', 'stderr']), chunk: z.string() }),
  ev('exec_command_end', {
    call_id: z.string(),
    turn_id: z.string(),
    exit_code: z.number().int(),
    stdout: z.string(),
    stderr: z.string(),
    aggregated_output: z.string(),
    duration_ms: z.number().nonnegative(),
  }),
  /**
   * A tool call that did not run or was stopped: `policy` when the approval policy, an
   * exec-policy rule or the call's own arguments refused it before it ran; `sandbox` when it
   * ran and the sandbox apparently blocked it. `reason` says why, in the words the model reads.
   */
  ev('tool_call_refused', { call_id: z.string(), turn_id: z.string(), tool: z.string(), by: z.enum(['policy', 'sandbox']), reason: z.string() }),
  ev('patch_apply_begin', { call_id: z.string(), auto_approved: z.boolean(), changes: z.record(z.string(), FileChange) }),
  ev('patch_apply_end', { call_id: z.string(), success: z.boolean(), stdout: z.string(), stderr: z.string() }),
  ev('turn_diff', { unified_diff: z.string() }),
  ev('plan_update', { explanation: z.string().optional(), plan: z.array(PlanItem) }),
  ev('elicitation_request', {
    server: z.string(),
    request_id: z.union([z.string(), z.number()]),
    message: z.string(),
    requested_schema: z.record(z.string(), z.unknown()),
  }),
  ev('tool_approval_request', {
    call_id: z.string(),
    turn_id: z.string(),
    tool: z.string(),
    arguments: z.unknown(),
    reason: z.string().optional(),
  }),
  ev('tool_call_begin', { call_id: z.string(), turn_id: z.string(), tool: z.string(), arguments: z.unknown() }),
  ev('tool_call_progress', { call_id: z.string(), tool: z.string(), progress: z.unknown() }),
  ev('tool_call_end', {
    call_id: z.string(),
    turn_id: z.string(),
    tool: z.string(),
    success: z.boolean(),
    output: z.string(),
    duration_ms: z.number().nonnegative(),
  }),
  ev('mcp_tool_call_begin', { call_id: z.string(), server: z.string(), tool: z.string(), arguments: z.unknown() }),
  ev('mcp_tool_call_end', {
    call_id: z.string(),
    result: z.unknown().optional(),
    error: z.string().optional(),
    duration_ms: z.number().nonnegative(),
  }),
  ev('token_count', { info: TokenUsageInfo.nullable(), rate_limits: RateLimitSnapshot.nullable() }),
  ev('stream_error', { message: z.string(), attempt: z.number().int().positive(), max_attempts: z.number().int().positive() }),
  ev('error', { message: z.string(), code: ErrorCode }),
  ev('warning', { message: z.string() }),
  ev('background_event', { message: z.string() }),
  ev('entered_review_mode', { target: ReviewTarget, user_facing_hint: z.string().optional() }),
  ev('exited_review_mode', { review_output: ReviewOutput.nullable() }),
  ev('context_compacted', {}),
  ev('undo_started', {}),
  ev('undo_completed', { success: z.boolean(), message: z.string().optional() }),
  ev('thread_rolled_back', { num_turns: z.number().int().positive() }),
  ev('agent_spawned', {
    call_id: z.string(),
    agent_id: z.string(),
    parent_session_id: z.string(),
    depth: z.number().int().positive(),
    nickname: z.string().optional(),
    /** The role it plays (`agent_type`), when it was given one. */
    role: z.string().optional(),
    prompt: z.string(),
  }),
  ev('agent_status', { agent_id: z.string(), status: AgentStatus, message: z.string().optional() }),
  ev('agent_job_progress', {
    job_id: z.string(),
    status: AgentJobStatus,
    total: z.number().int().nonnegative(),
    pending: z.number().int().nonnegative(),
    running: z.number().int().nonnegative(),
    completed: z.number().int().nonnegative(),
    failed: z.number().int().nonnegative(),
    /** Estimated time to the end of the job from the pace so far; null until an item has finished. */
    eta_ms: z.number().int().nonnegative().nullable(),
  }),
  ev('shutdown_complete', {}),
]);
export type EventMsg = z.infer<typeof EventMsg>;
export type EventType = EventMsg['type'];
export type EventOf<T extends EventType> = Extract<EventMsg, { type: T }>;

/** An event: one line troupe writes (PROTOCOL.md §1). */
export const Event = z.object({
  id: z.string().nullable(),
  session_id: z.string().nullable(),
  seq: z.number().int().positive().nullable(),
  msg: EventMsg,
});
export type Event = z.infer<typeof Event>;
