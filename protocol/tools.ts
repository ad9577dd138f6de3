import { z } from 'zod';
import { PlanItem } from './common.js';

/**
 * Arguments of the model-facing tools (PROTOCOL.md §6). Each schema is the single source of
 * both the JSON schema the model is shown and the validation of what it sends back.
 */
export const ShellArgs = z.object({
  command: z.array(z.string()).min(1).describe('The command and its arguments, as an argv array.'),
  workdir: z.string().optional().describe('Working directory; defaults to the turn cwd.'),
  timeout_ms: z.number().int().positive().optional().describe('Kill the command after this many milliseconds.'),
  with_escalated_permissions: z.boolean().optional().describe('Ask to run outside the sandbox. Only when the sandbox blocks something the task needs.'),
  justification: z.string().optional().describe('Why escalation is needed; shown to the user with the request.'),
});
export type ShellArgs = z.infer<typeof ShellArgs>;

export const ApplyPatchArgs = z.object({
  input: z.string().min(1).describe('The whole patch, from "*** Begin Patch" to "*** End Patch".'),
});
export type ApplyPatchArgs = z.infer<typeof ApplyPatchArgs>;

export const ReadFileArgs = z.object({
  file_path: z.string().describe('Absolute path of the file.'),
  offset: z.number().int().min(1).optional().describe('First line to return, counting from 1.'),
  limit: z.number().int().min(1).optional().describe('Most lines to return.'),
});
export type ReadFileArgs = z.infer<typeof ReadFileArgs>;

export const ListDirArgs = z.object({
  dir_path: z.string().describe('Absolute path of the directory.'),
  depth: z.number().int().min(1).optional().describe('How many levels to descend (default 2).'),
  offset: z.number().int().min(1).optional().describe('First entry to return, counting from 1.'),
  limit: z.number().int().min(1).optional().describe('Most entries to return.'),
});
export type ListDirArgs = z.infer<typeof ListDirArgs>;

export const UpdatePlanArgs = z.object({
  explanation: z.string().optional(),
  plan: z.array(PlanItem).describe('The steps, at most one of them in_progress.'),
});
export type UpdatePlanArgs = z.infer<typeof UpdatePlanArgs>;

export const SpawnAgentArgs = z.object({
  message: z.string().min(1).describe('The task for the new agent.'),
  agent_type: z.string().optional().describe('The role of the new agent, one of those listed in this description.'),
  fork_context: z.boolean().optional().describe("Start the agent with a copy of this conversation's history."),
  model: z.string().optional(),
});
export type SpawnAgentArgs = z.infer<typeof SpawnAgentArgs>;

export const SendInputArgs = z.object({
  agent_id: z.string().min(1),
  message: z.string().min(1),
  interrupt: z.boolean().optional().describe("Interrupt the agent's current turn first."),
});
export type SendInputArgs = z.infer<typeof SendInputArgs>;

export const WaitAgentArgs = z.object({
  agent_ids: z.array(z.string().min(1)).min(1),
  timeout_ms: z.number().int().positive().optional(),
  return_when: z.enum(['all', 'any']).optional(),
});
export type WaitAgentArgs = z.infer<typeof WaitAgentArgs>;

export const ListAgentsArgs = z.object({
  id_prefix: z.string().optional().describe('Only the agents whose id starts with this.'),
});
export type ListAgentsArgs = z.infer<typeof ListAgentsArgs>;

export const CloseAgentArgs = z.object({ agent_id: z.string().min(1) });
export type CloseAgentArgs = z.infer<typeof CloseAgentArgs>;

export const ExecCommandArgs = z.object({
  cmd: z.string().min(1).describe('The shell command line to run.'),
  tty: z.boolean().optional().describe('Run on a pseudo-terminal (for interactive programs). Default false: plain pipes.'),
  workdir: z.string().optional().describe('Working directory; defaults to the turn cwd.'),
  yield_time_ms: z.number().int().positive().optional().describe('Return after this long with the output so far (clamped to 250..30000; default 10000).'),
  max_output_tokens: z.number().int().positive().optional().describe('Shorten the returned output (in the middle) to about this many tokens.'),
  with_escalated_permissions: z.boolean().optional().describe('Ask to run outside the sandbox. Only when the sandbox blocks something the task needs.'),
  justification: z.string().optional().describe('Why escalation is needed; shown to the user with the request.'),
});
export type ExecCommandArgs = z.infer<typeof ExecCommandArgs>;

export const WriteStdinArgs = z.object({
  session_id: z.union([z.string(), z.number()]),
  chars: z.string(),
  yield_time_ms: z.number().int().positive().optional(),
});
export type WriteStdinArgs = z.infer<typeof WriteStdinArgs>;

/** `spawn_agents_on_csv`: one sub-agent per row of a CSV (or JSONL) file; the names are Codex's. */
export const SpawnAgentsOnCsvArgs = z.object({
  csv_path: z
    .string()
    .min(1)
    .describe('The input: a CSV file with a header row, or JSON Lines (one object a line) when the name ends in .jsonl. Relative to the working directory.'),
  instruction: z.string().describe("The task for each row. {column} is replaced with the row's value of that column; write {{ and }} for literal braces."),
  id_column: z.string().optional().describe('The column whose values name the items (a repeated value gets -2, -3, …). Default: row-1, row-2, …'),
  output_schema: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('A JSON Schema every result must match. With an object schema, each property becomes a column of the output.'),
  max_concurrency: z.number().int().min(1).optional().describe('Most items running at once (default 16, at most 64, and within agent_max_threads).'),
  max_workers: z.number().int().min(1).optional().describe('Another name for max_concurrency.'),
  max_runtime_seconds: z.number().int().min(1).optional().describe('Most seconds one item may run before it fails (default 1800).'),
  agent_type: z.string().optional().describe("The role of every item's agent, one of those spawn_agent lists (default: none)."),
  output_csv_path: z
    .string()
    .optional()
    .describe('Where to write the results (CSV, or JSON Lines when it ends in .jsonl). Default: next to the input, named after the job.'),
});
export type SpawnAgentsOnCsvArgs = z.infer<typeof SpawnAgentsOnCsvArgs>;

/** `report_agent_job_result`: a job item's agent hands in its result. */
export const ReportAgentJobResultArgs = z.object({
  job_id: z.string().min(1).describe('The job, as your task names it.'),
  item_id: z.string().min(1).describe('Your item, as your task names it.'),
  result: z
    .preprocess(
      (value, ctx) => {
        // Parsed into a new object, a "__proto__" key would set its prototype and be lost from
        // the result without a word: refused instead.
        if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__'))
          ctx.addIssue({ code: 'custom', message: 'a result cannot have a key named "__proto__"; rename it' });
        return value;
      },
      z.record(z.string(), z.unknown()),
    )
    .describe("The item's result: a JSON object (matching the job's output schema when it has one)."),
  stop: z.boolean().optional().describe('True stops the whole job once this result is recorded: items not yet reported are cancelled.'),
});
export type ReportAgentJobResultArgs = z.infer<typeof ReportAgentJobResultArgs>;
