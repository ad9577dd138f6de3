import { z } from 'zod';
import { AgentJobStatus } from '../../protocol/index.js';

/**
 * The lines of a job's log (`TROUPE_HOME/jobs/<job_id>.jsonl`, PROTOCOL.md §11): the first is
 * `job_created` with everything the job needs (its items included), each later one is a change.
 * Replaying the lines in order gives the job's state (state.ts); nothing else is stored.
 */

/** Values a row holds: strings from a CSV, any JSON value from JSON Lines. */
const Row = z.record(z.string(), z.unknown());

export const JobItemSpec = z.object({
  item_id: z.string(),
  /** Position among the input's rows, from 0. */
  row_index: z.number().int().nonnegative(),
  /** The value of `id_column` in this row, when the job has one and the value is not blank. */
  source_id: z.string().nullable(),
  row: Row,
});
export type JobItemSpec = z.infer<typeof JobItemSpec>;

export const FileFormat = z.enum(['csv', 'jsonl']);
export type FileFormat = z.infer<typeof FileFormat>;

/** What a job was made from and runs with; the turn it came from gives its agents their settings. */
export const JobSpec = z.object({
  job_id: z.string(),
  created_at: z.string(),
  /** The session whose sub-agents the items' agents are. */
  parent_session_id: z.string(),
  /** The tool call that started the job (`job-<id>` for one started without a model). */
  call_id: z.string(),
  /** The turn context the items' agents are configured from (as `spawn_agent` would), kept whole. */
  turn: z.record(z.string(), z.unknown()),
  input_path: z.string(),
  input_format: FileFormat,
  output_path: z.string(),
  output_format: FileFormat,
  instruction: z.string(),
  id_column: z.string().nullable(),
  output_schema: z.record(z.string(), z.unknown()).nullable(),
  /** The input's columns, in order: the output's first columns. */
  columns: z.array(z.string()),
  max_concurrency: z.number().int().positive(),
  max_runtime_seconds: z.number().int().positive(),
  /** Attempts an item gets when its agent errors (the first included). */
  max_attempts: z.number().int().positive(),
  /** The role of every item's agent (absent in jobs stored before roles existed). */
  agent_type: z.string().nullable().optional(),
  /** The session was opened for this job alone: it shuts down once the job has ended. */
  shutdown_when_done: z.boolean().optional(),
  items: z.array(JobItemSpec),
});
export type JobSpec = z.infer<typeof JobSpec>;

const at = z.string();

export const JobRecord = z.discriminatedUnion('type', [
  z.object({ type: z.literal('job_created'), at, job: JobSpec }),
  /** A process took the job up (first start, or after a restart). */
  /** `start`: which start of that pid (lib/processes.ts processStart), where the machine tells. */
  z.object({ type: z.literal('runner_started'), at, pid: z.number().int(), host: z.string(), start: z.string().optional() }),
  /** The process stopped running the job without finishing it (its session closed); it can go on later. */
  z.object({ type: z.literal('runner_stopped'), at, pid: z.number().int(), host: z.string(), start: z.string().optional() }),
  z.object({ type: z.literal('item_started'), at, item_id: z.string(), agent_id: z.string(), attempt: z.number().int().positive() }),
  /** The result the item's agent reported: the item is done and never runs again. */
  z.object({ type: z.literal('item_result'), at, item_id: z.string(), agent_id: z.string(), result: z.record(z.string(), z.unknown()) }),
  /** The attempt failed in a way another attempt may not (the agent errored): the item runs again. */
  z.object({ type: z.literal('item_retry'), at, item_id: z.string(), error: z.string() }),
  z.object({ type: z.literal('item_failed'), at, item_id: z.string(), error: z.string() }),
  z.object({ type: z.literal('cancel_requested'), at, reason: z.string() }),
  z.object({
    type: z.literal('job_finished'),
    at,
    status: AgentJobStatus.exclude(['running']),
    error: z.string().nullable(),
  }),
]);
export type JobRecord = z.infer<typeof JobRecord>;

/** A record without its time, which the log adds. */
export type NewJobRecord = JobRecord extends infer R ? (R extends JobRecord ? Omit<R, 'at'> : never) : never;
