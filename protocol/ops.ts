import { z } from 'zod';
import { ReviewDecision, ReviewTarget, SessionConfig, TurnOverrides, UserInput } from './common.js';

const SessionRef = {
  rollout_path: z.string().min(1).optional(),
  session_id: z.string().min(1).optional(),
};
const needsRef = (op: { rollout_path?: string | undefined; session_id?: string | undefined }) => op.rollout_path !== undefined || op.session_id !== undefined;
const refMessage = { message: 'needs rollout_path or session_id', path: ['rollout_path'] };

export const NewSessionOp = z.object({ type: z.literal('new_session'), config: SessionConfig.default({}) });
export const ResumeSessionOp = z.object({ type: z.literal('resume_session'), ...SessionRef, config: SessionConfig.optional() }).refine(needsRef, refMessage);
export const ForkSessionOp = z
  .object({
    type: z.literal('fork_session'),
    ...SessionRef,
    nth_user_message: z.number().int().min(0).optional(),
    config: SessionConfig.optional(),
  })
  .refine(needsRef, refMessage);
export const ListSessionsOp = z.object({ type: z.literal('list_sessions') });

export const UserTurnOp = TurnOverrides.extend({
  type: z.literal('user_turn'),
  items: z.array(UserInput).min(1),
  final_output_json_schema: z.record(z.string(), z.unknown()).optional(),
});
export const UserInputOp = z.object({ type: z.literal('user_input'), items: z.array(UserInput).min(1) });
export const OverrideTurnContextOp = TurnOverrides.extend({ type: z.literal('override_turn_context') });
export const InterruptOp = z.object({ type: z.literal('interrupt') });
export const ExecApprovalOp = z.object({ type: z.literal('exec_approval'), id: z.string().min(1), decision: ReviewDecision });
export const PatchApprovalOp = z.object({ type: z.literal('patch_approval'), id: z.string().min(1), decision: ReviewDecision });
export const ToolApprovalOp = z.object({ type: z.literal('tool_approval'), id: z.string().min(1), decision: ReviewDecision });
export const ReviewOp = z.object({
  type: z.literal('review'),
  review_request: z.object({ target: ReviewTarget, user_facing_hint: z.string().optional() }),
});
export const CompactOp = z.object({ type: z.literal('compact') });
export const UndoOp = z.object({ type: z.literal('undo') });
export const ThreadRollbackOp = z.object({ type: z.literal('thread_rollback'), num_turns: z.number().int().min(1) });
export const RunUserShellCommandOp = z.object({ type: z.literal('run_user_shell_command'), command: z.string().min(1) });
export const ResolveElicitationOp = z.object({
  type: z.literal('resolve_elicitation'),
  server: z.string().min(1),
  request_id: z.union([z.string(), z.number()]),
  decision: z.enum(['accept', 'decline', 'cancel']),
  content: z.record(z.string(), z.unknown()).optional(),
});
/** The client's answer to a `client_tool_call`: `output` is what the model is given as the call's output. */
export const ClientToolOutputOp = z.object({
  type: z.literal('client_tool_output'),
  call_id: z.string().min(1),
  output: z.string(),
  success: z.boolean(),
});
export const ShutdownOp = z.object({ type: z.literal('shutdown') });
/**
 * Run an agent job in the session without a model turn (`runJob` and `troupe jobs run` on NATS):
 * the client has read and checked the input, the session stores the job and runs it as
 * `spawn_agents_on_csv` would. Paths are absolute; the items are the input's rows.
 */
/** A week: an item's deadline must stay within what a timer can wait (about 24.8 days). */
export const MAX_ITEM_RUNTIME_SECONDS = 7 * 24 * 3600;
/** The most attempts an item whose agent errors gets, in all. */
export const MAX_ITEM_ATTEMPTS = 10;

export const RunAgentJobOp = z.object({
  type: z.literal('run_agent_job'),
  job_id: z.string().uuid(),
  input_path: z.string().min(1),
  input_format: z.enum(['csv', 'jsonl']),
  columns: z.array(z.string()),
  items: z.array(
    z.object({
      item_id: z.string().min(1),
      row_index: z.number().int().nonnegative(),
      source_id: z.string().nullable(),
      row: z.record(z.string(), z.unknown()),
    }),
  ),
  instruction: z.string().min(1),
  id_column: z.string().optional(),
  output_schema: z.record(z.string(), z.unknown()).optional(),
  output_csv_path: z.string().min(1),
  /**
   * The format the output is written in, from the name the caller asked for (a link named
   * `.jsonl` to a `.csv` file gets JSON Lines). Default: from `output_csv_path`'s extension.
   */
  output_format: z.enum(['csv', 'jsonl']).optional(),
  max_concurrency: z.number().int().positive(),
  max_runtime_seconds: z.number().int().positive().max(MAX_ITEM_RUNTIME_SECONDS).optional(),
  max_attempts: z.number().int().positive().max(MAX_ITEM_ATTEMPTS).optional(),
  agent_type: z.string().optional(),
  /**
   * The session was opened for this job alone: it shuts itself down once the job has ended, so
   * a job whose caller died does not keep its session (and a worker's slot) open.
   */
  shutdown_when_done: z.boolean().optional(),
});

export const Op = z.discriminatedUnion('type', [
  NewSessionOp,
  ResumeSessionOp,
  ForkSessionOp,
  ListSessionsOp,
  UserTurnOp,
  UserInputOp,
  OverrideTurnContextOp,
  InterruptOp,
  ExecApprovalOp,
  PatchApprovalOp,
  ToolApprovalOp,
  ReviewOp,
  CompactOp,
  UndoOp,
  ThreadRollbackOp,
  RunUserShellCommandOp,
  ResolveElicitationOp,
  ClientToolOutputOp,
  RunAgentJobOp,
  ShutdownOp,
]);
export type Op = z.infer<typeof Op>;
export type OpType = Op['type'];
export type OpOf<T extends OpType> = Extract<Op, { type: T }>;

/** Ops that address no existing session: the host (or gateway) answers them itself. */
export const SESSIONLESS_OPS = ['new_session', 'resume_session', 'fork_session', 'list_sessions'] as const;
export type SessionlessOp = OpOf<(typeof SESSIONLESS_OPS)[number]>;
export type SessionOp = Exclude<Op, SessionlessOp>;
export const isSessionlessOp = (op: Op): op is SessionlessOp => (SESSIONLESS_OPS as readonly string[]).includes(op.type);

/** A submission: one line a client writes (PROTOCOL.md §1). */
export const Submission = z.object({
  id: z.string().min(1),
  session_id: z.string().min(1).optional(),
  op: Op,
});
export type Submission = z.infer<typeof Submission>;
