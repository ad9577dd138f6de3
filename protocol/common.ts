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
  /** Processes and threads one sandboxed command may have alive at once (default 2048). */
  max_processes: z.number().int().min(1).optional(),
  /** Largest file one sandboxed command may write, in bytes (default 4 GiB). */
  max_file_size_bytes: z.number().int().min(1).optional(),
});
export type SandboxPolicyObject = z.infer<typeof SandboxPolicyObject>;

export const SandboxPolicy = z.union([SandboxMode, SandboxPolicyObject]);
export type SandboxPolicy = z.infer<typeof SandboxPolicy>;

export const ReasoningEffort = z.enum(['minimal', 'low', 'medium', 'high']);
export type ReasoningEffort = z.infer<typeof ReasoningEffort>;

/** The reasoning summary the Responses API is asked for; `none` asks for none (nothing is sent). */
export const ReasoningSummary = z.enum(['auto', 'concise', 'detailed', 'none']);
export type ReasoningSummary = z.infer<typeof ReasoningSummary>;

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

/** Characters with a meaning in other glob dialects; refused rather than taken literally. */
const UNSUPPORTED_GLOB_CHARACTERS = /[[\]{}\\]/;

/** A pattern on environment variable names: `*` is any run of characters, `?` one character. */
export const EnvironmentNameGlob = z.string().superRefine((pattern, ctx) => {
  if (pattern === '') ctx.addIssue({ code: 'custom', message: 'a pattern must not be empty' });
  else if (pattern.includes('\0')) ctx.addIssue({ code: 'custom', message: 'a pattern must not contain a NUL character' });
  else if (pattern.includes('=')) {
    ctx.addIssue({ code: 'custom', message: `pattern ${JSON.stringify(pattern)} contains "=": patterns match variable names, which never contain "="` });
  } else if (UNSUPPORTED_GLOB_CHARACTERS.test(pattern)) {
    ctx.addIssue({ code: 'custom', message: `pattern ${JSON.stringify(pattern)}: only * and ? are wildcards; [ ] { } and \\ are not supported` });
  }
});

/**
 * Which variables of troupe's own environment the commands the model runs get (`shell`,
 * `exec_command`). Applied in this order: `inherit`, the default excludes (unless
 * `ignore_default_excludes`), `exclude`, `include_only`, `set`. Patterns match names
 * case-insensitively. Unknown keys are refused: a misspelt restriction must not pass silently.
 */
export const ShellEnvironmentPolicy = z.strictObject({
  inherit: z
    .enum(['all', 'core', 'none'])
    .optional()
    .describe(
      "Starting set: all of troupe's environment (default), core (HOME, LOGNAME, PATH, SHELL, USER, USERNAME, TMPDIR, TEMP, TMP, LANG, LC_*, TERM), or none.",
    ),
  exclude: z.array(EnvironmentNameGlob).optional().describe('Remove names matching any of these globs (* and ?, case-insensitive).'),
  include_only: z.array(EnvironmentNameGlob).optional().describe('When present, keep only names matching one of these globs.'),
  set: z
    .record(z.string(), z.string())
    .superRefine((set, ctx) => {
      for (const [name, value] of Object.entries(set)) {
        if (name === '') ctx.addIssue({ code: 'custom', path: [name], message: 'a variable name must not be empty' });
        else if (name.includes('=')) ctx.addIssue({ code: 'custom', path: [name], message: `variable name ${JSON.stringify(name)} must not contain "="` });
        else if (name.includes('\0')) ctx.addIssue({ code: 'custom', path: [name], message: 'a variable name must not contain a NUL character' });
        if (value.includes('\0')) ctx.addIssue({ code: 'custom', path: [name], message: 'a value must not contain a NUL character' });
      }
    })
    .optional()
    .describe('Variables set last, over whatever the other rules left.'),
  ignore_default_excludes: z
    .boolean()
    .optional()
    .describe('Keep names matching *KEY*, *SECRET*, *TOKEN*, *PASSWORD*, *CREDENTIAL*. OPENAI_* and TROUPE_NATS_* are removed regardless.'),
});
export type ShellEnvironmentPolicy = z.infer<typeof ShellEnvironmentPolicy>;

/** Names of tools and tool sets: what the model providers accept for a function name. */
export const ToolName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, _ or - (what model providers accept)');

/**
 * A kind of sub-agent `spawn_agent` can start (`agent_type`): its own instructions, and
 * optionally its model, an allow-list of tools, and a narrower sandbox or approval policy than
 * its parent's (a wider one is not taken: the parent's stays).
 */
export const AgentRole = z.strictObject({
  description: z.string().min(1).describe('What the role is for; the model reads it in the spawn_agent tool description.'),
  instructions: z.string().min(1).describe("Given to the role's agents as developer instructions."),
  model: z.string().min(1).optional(),
  tools: z.array(z.string().min(1)).optional().describe("The only tools its agents are offered (by name); absent: all of its parent's."),
  sandbox_policy: SandboxPolicy.optional(),
  approval_policy: AskForApproval.optional(),
  project_docs: z.boolean().optional().describe("false: its agents do not read the project's AGENTS.md files (default true)."),
});
export type AgentRole = z.infer<typeof AgentRole>;

/**
 * A tool the client answers (`client_tools`): the model sees it as a function tool; each call is
 * announced with `client_tool_call` and waits for the client's `client_tool_output` (PROTOCOL.md §6).
 */
export const ClientToolSpec = z.object({
  name: ToolName.describe('The function name the model calls.'),
  description: z.string().describe('What the tool does, for the model.'),
  parameters: z
    .looseObject({
      type: z.literal('object'),
      properties: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
      required: z.array(z.string()).optional(),
    })
    .describe('The JSON Schema of the arguments: an object schema. The model is shown it as is; the client checks the arguments it gets.'),
});
export type ClientToolSpec = z.infer<typeof ClientToolSpec>;

export const SessionConfig = z.object({
  model: z.string().min(1).optional(),
  cwd: AbsolutePath.optional(),
  approval_policy: AskForApproval.optional(),
  sandbox_policy: SandboxPolicy.optional(),
  base_instructions: z.string().optional(),
  developer_instructions: z.string().optional(),
  effort: ReasoningEffort.optional(),
  /** Sent as the Responses API's `reasoning.summary` (the chat wire API has no such field). */
  reasoning_summary: ReasoningSummary.optional(),
  review_model: z.string().min(1).optional(),
  agent_max_depth: z.number().int().min(0).optional(),
  agent_max_threads: z.number().int().min(1).optional(),
  auto_compact_token_limit: z.number().int().positive().optional(),
  mcp_servers: z.record(z.string(), McpServerConfig).optional(),
  /** The environment of the commands the model runs; replaces TROUPE_HOME/config.json's as a whole. */
  shell_environment_policy: ShellEnvironmentPolicy.optional(),
  /** At most this many bytes of AGENTS.md project instructions (default 32 KiB; 0 reads none). */
  project_doc_max_bytes: z.number().int().min(0).optional(),
  /** Tool sets this session needs (a worker's `--tools` modules, a library session's own tools); a host without one refuses the session. */
  tool_sets: z.array(ToolName).optional(),
  /** The roles `spawn_agent` may start, over TROUPE_HOME/config.json's; sub-agents inherit them. */
  agent_roles: z.record(ToolName, AgentRole).optional(),
  /** The role this session plays (set by `spawn_agent` for a sub-agent); one of `agent_roles`. */
  agent_role: z.string().min(1).optional(),
  /** Tools the client answers; offered to this session only, not to its sub-agents or review threads. */
  client_tools: z
    .array(ClientToolSpec)
    .refine((tools) => new Set(tools.map((t) => t.name)).size === tools.length, { message: 'two client tools have the same name' })
    .optional(),
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
