import { z } from 'zod';

/** Approval policy: when a tool call must ask the user first (PROTOCOL.md §3). */
export const AskForApproval = z.enum(['untrusted', 'on-failure', 'on-request', 'never']);
export type AskForApproval = z.infer<typeof AskForApproval>;

export const SandboxMode = z.enum(['read-only', 'workspace-write', 'danger-full-access']);
export type SandboxMode = z.infer<typeof SandboxMode>;

/** The object form of a sandbox policy; the string form is shorthand for `{ mode }`. */
export const SandboxPolicyObject = z.object({
  mode: SandboxMode,
  writable_roots: z.array(z.string()).optional(),
  network_access: z.boolean().optional(),
});
export type SandboxPolicyObject = z.infer<typeof SandboxPolicyObject>;

export const SandboxPolicy = z.union([SandboxMode, SandboxPolicyObject]);
export type SandboxPolicy = z.infer<typeof SandboxPolicy>;

export const ReasoningEffort = z.enum(['minimal', 'low', 'medium', 'high']);
export type ReasoningEffort = z.infer<typeof ReasoningEffort>;

export const ReviewDecision = z.enum(['approved', 'approved_for_session', 'denied', 'abort']);
export type ReviewDecision = z.infer<typeof ReviewDecision>;

export const AbsolutePath = z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });

export const UserInput = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('local_image'), path: AbsolutePath }),
]);
export type UserInput = z.infer<typeof UserInput>;

export const McpServerConfig = z.union([
  z.object({
    command: z.string().min(1),
    args: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().optional(),
  }),
  z.object({
    url: z.url(),
    headers: z.record(z.string(), z.string()).optional(),
  }),
]);
export type McpServerConfig = z.infer<typeof McpServerConfig>;

export const SessionConfig = z.object({
  model: z.string().min(1).optional(),
  cwd: AbsolutePath.optional(),
  approval_policy: AskForApproval.optional(),
  sandbox_policy: SandboxPolicy.optional(),
  base_instructions: z.string().optional(),
  developer_instructions: z.string().optional(),
  effort: ReasoningEffort.optional(),
  review_model: z.string().min(1).optional(),
  agent_max_depth: z.number().int().min(0).optional(),
  agent_max_threads: z.number().int().min(1).optional(),
  auto_compact_token_limit: z.number().int().positive().optional(),
  mcp_servers: z.record(z.string(), McpServerConfig).optional(),
});
export type SessionConfig = z.infer<typeof SessionConfig>;

/** Per-turn overrides: the optional fields shared by `user_turn` and `override_turn_context`. */
export const TurnOverrides = z.object({
  cwd: AbsolutePath.optional(),
  approval_policy: AskForApproval.optional(),
  sandbox_policy: SandboxPolicy.optional(),
  model: z.string().min(1).optional(),
  effort: ReasoningEffort.optional(),
});
export type TurnOverrides = z.infer<typeof TurnOverrides>;

export const ReviewTarget = z.discriminatedUnion('type', [
  z.object({ type: z.literal('uncommitted_changes') }),
  z.object({ type: z.literal('base_branch'), branch: z.string().min(1) }),
  z.object({ type: z.literal('commit'), sha: z.string().min(1), title: z.string().optional() }),
  z.object({ type: z.literal('custom'), instructions: z.string().min(1) }),
]);
export type ReviewTarget = z.infer<typeof ReviewTarget>;

export const TokenUsage = z.object({
  input_tokens: z.number().int().nonnegative(),
  cached_input_tokens: z.number().int().nonnegative(),
  output_tokens: z.number().int().nonnegative(),
  reasoning_output_tokens: z.number().int().nonnegative(),
  total_tokens: z.number().int().nonnegative(),
});
export type TokenUsage = z.infer<typeof TokenUsage>;

export const FileChange = z.discriminatedUnion('type', [
  z.object({ type: z.literal('add'), content: z.string() }),
  z.object({ type: z.literal('delete') }),
  z.object({ type: z.literal('update'), unified_diff: z.string(), move_path: z.string().optional() }),
]);
export type FileChange = z.infer<typeof FileChange>;

export const PlanStatus = z.enum(['pending', 'in_progress', 'completed']);
export const PlanItem = z.object({ step: z.string(), status: PlanStatus });
export type PlanItem = z.infer<typeof PlanItem>;

export const ReviewFinding = z.object({
  title: z.string(),
  body: z.string(),
  confidence_score: z.number(),
  priority: z.number().int().min(0).max(3),
  code_location: z.object({
    absolute_file_path: z.string(),
    line_range: z.object({ start: z.number().int(), end: z.number().int() }),
  }),
});
export type ReviewFinding = z.infer<typeof ReviewFinding>;

export const ReviewOutput = z.object({
  findings: z.array(ReviewFinding),
  overall_correctness: z.enum(['patch is correct', 'patch is incorrect']),
  overall_explanation: z.string(),
  overall_confidence_score: z.number(),
});
export type ReviewOutput = z.infer<typeof ReviewOutput>;
