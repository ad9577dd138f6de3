import { randomUUID } from 'node:crypto';
import { MAX_ITEM_ATTEMPTS, MAX_ITEM_RUNTIME_SECONDS } from '../../protocol/index.js';
import type { TurnContext } from '../../machines/turn-context.js';
import { checkInstruction, checkOutputPath, defaultOutputPath, formatOf, JobInputError, readJobInput, resolvePath, type JobInput } from './input.js';
import type { FileFormat, JobSpec } from './records.js';
import { resultCheck } from './schema.js';
import { roleConfig, RoleError } from '../agents/roles.js';

export const DEFAULT_JOB_CONCURRENCY = 16;
export const MAX_JOB_CONCURRENCY = 64;
export const DEFAULT_ITEM_RUNTIME_SECONDS = 1800;
/** An item whose agent errors runs again, up to this many attempts in all. */
export const DEFAULT_ITEM_ATTEMPTS = 3;

/** A job as asked for: the arguments of `spawn_agents_on_csv`, plus the attempts of an erroring item. */
export interface JobRequest {
  readonly csv_path: string;
  readonly instruction: string;
  readonly id_column?: string | undefined;
  readonly output_schema?: Record<string, unknown> | undefined;
  readonly max_concurrency?: number | undefined;
  readonly max_runtime_seconds?: number | undefined;
  readonly output_csv_path?: string | undefined;
  /** Attempts an item gets when its agent errors (default 3). */
  readonly max_attempts?: number | undefined;
  /** The role of every item's agent: one of the session's agent roles. */
  readonly agent_type?: string | undefined;
}

/**
 * What a prepared job keeps of its request as asked: the input's path, the output's and the
 * concurrency are resolved into the job itself.
 */
export type JobSettings = Pick<JobRequest, 'instruction' | 'id_column' | 'output_schema' | 'max_runtime_seconds' | 'max_attempts' | 'agent_type'>;

/** The settings of `source` (a request, an op), without the fields it leaves unset. */
export function settingsOf(source: JobSettings): JobSettings {
  const { instruction, id_column, output_schema, max_runtime_seconds, max_attempts, agent_type } = source;
  return {
    instruction,
    ...(id_column !== undefined ? { id_column } : {}),
    ...(output_schema !== undefined ? { output_schema } : {}),
    ...(max_runtime_seconds !== undefined ? { max_runtime_seconds } : {}),
    ...(max_attempts !== undefined ? { max_attempts } : {}),
    ...(agent_type !== undefined ? { agent_type } : {}),
  };
}

/**
 * A request checked against its input, ready to be stored; nothing has been written yet. What
 * `run_agent_job` carries to the session that runs it (job-op.ts).
 */
export interface PreparedJob {
  readonly jobId: string;
  readonly input: JobInput;
  readonly settings: JobSettings;
  /** The output's real path (symlinks resolved), checked. */
  readonly outputPath: string;
  /** From the name asked for (a link named .jsonl to a .csv file still gets JSON Lines). */
  readonly outputFormat: FileFormat;
  readonly concurrency: number;
}

function positiveInteger(value: number | undefined, name: string, most = Infinity): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1) throw new JobInputError(`${name} must be a whole number of at least 1, got ${value}`);
  if (value > most) throw new JobInputError(`${name} must be at most ${most}, got ${value}`);
  return value;
}

/**
 * Read and check everything a job needs (paths relative to `cwd`): the input, the instruction's
 * placeholders, the output schema and path. Throws a JobInputError naming what is wrong, and
 * writes nothing.
 */
export async function prepareJob(request: JobRequest, cwd: string): Promise<PreparedJob> {
  positiveInteger(request.max_concurrency, 'max_concurrency');
  positiveInteger(request.max_runtime_seconds, 'max_runtime_seconds', MAX_ITEM_RUNTIME_SECONDS);
  positiveInteger(request.max_attempts, 'max_attempts', MAX_ITEM_ATTEMPTS);
  if (request.instruction.trim() === '') throw new JobInputError("instruction is empty: say what each row's agent should do, with {column} placeholders");
  if (request.output_schema !== undefined) resultCheck(request.output_schema);
  const input = await readJobInput(resolvePath(request.csv_path, cwd), request.id_column);
  checkInstruction(request.instruction, input);
  const jobId = randomUUID();
  const asked = request.output_csv_path !== undefined ? resolvePath(request.output_csv_path, cwd) : defaultOutputPath(input.path, input.format, jobId);
  const outputPath = await checkOutputPath(asked, input.path);
  const concurrency = Math.min(MAX_JOB_CONCURRENCY, request.max_concurrency ?? DEFAULT_JOB_CONCURRENCY);
  return { jobId, input, settings: settingsOf(request), outputPath, outputFormat: formatOf(asked), concurrency };
}

/**
 * Where a request's output will go, known before its input is read: `output_csv_path`, or the
 * default next to the input with `*` for the job id it does not have yet. What the sandbox
 * check before the job (tools.ts) looks at.
 */
export function plannedOutputPath(request: Pick<JobRequest, 'csv_path' | 'output_csv_path'>, cwd: string): string {
  if (request.output_csv_path !== undefined) return resolvePath(request.output_csv_path, cwd);
  const input = resolvePath(request.csv_path, cwd);
  return defaultOutputPath(input, formatOf(input), '*');
}

/** The job's first record, for a job of session `parentSessionId` started by call `callId` of `turn`. */
export function jobSpec(
  prepared: PreparedJob,
  parent: { sessionId: string; callId: string; turn: TurnContext; shutdownWhenDone?: boolean | undefined },
): JobSpec {
  const { settings, input } = prepared;
  if (settings.agent_type !== undefined) {
    try {
      roleConfig(parent.turn, settings.agent_type);
    } catch (error) {
      if (error instanceof RoleError) throw new JobInputError(error.message);
      throw error;
    }
  }
  const { final_output_json_schema: _unused, ...turn } = parent.turn;
  return {
    job_id: prepared.jobId,
    created_at: new Date().toISOString(),
    parent_session_id: parent.sessionId,
    call_id: parent.callId,
    turn: JSON.parse(JSON.stringify(turn)) as Record<string, unknown>,
    input_path: input.path,
    input_format: input.format,
    output_path: prepared.outputPath,
    output_format: prepared.outputFormat,
    instruction: settings.instruction,
    id_column: settings.id_column ?? null,
    output_schema: settings.output_schema ?? null,
    columns: [...input.columns],
    max_concurrency: prepared.concurrency,
    max_runtime_seconds: settings.max_runtime_seconds ?? DEFAULT_ITEM_RUNTIME_SECONDS,
    max_attempts: settings.max_attempts ?? DEFAULT_ITEM_ATTEMPTS,
    agent_type: settings.agent_type ?? null,
    ...(parent.shutdownWhenDone ? { shutdown_when_done: true } : {}),
    items: [...input.items],
  };
}
