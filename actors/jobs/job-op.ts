import type { OpOf } from '../../protocol/index.js';
import { checkColumns, checkOutputPath, formatOf, JobInputError, MAX_JOB_ITEMS } from './input.js';
import { MAX_JOB_CONCURRENCY, settingsOf, type PreparedJob } from './prepare.js';

/**
 * A prepared job and the `run_agent_job` op that carries it to the session that runs it (on
 * NATS, a worker's): both directions in one place, so that what `runJob` sends is what the
 * session stores and runs.
 */

/** The op that has a session store and run `prepared`; `shutdownWhenDone` for a session opened for the job alone. */
export function jobOp(prepared: PreparedJob, options: { readonly shutdownWhenDone?: boolean } = {}): OpOf<'run_agent_job'> {
  const { input, settings } = prepared;
  return {
    type: 'run_agent_job',
    job_id: prepared.jobId,
    input_path: input.path,
    input_format: input.format,
    columns: [...input.columns],
    items: [...input.items],
    ...settings,
    output_csv_path: prepared.outputPath,
    output_format: prepared.outputFormat,
    max_concurrency: prepared.concurrency,
    ...(options.shutdownWhenDone ? { shutdown_when_done: true } : {}),
  };
}

/**
 * What a session checks of a `run_agent_job` op before it stores the job, beyond the protocol's
 * schema: the op comes from a client, which read the input on its own machine, and the job runs
 * here. The items must be what reading an input gives (within the limits, each id and row once,
 * no value outside the columns), and the output must be writable here, where the job's end
 * writes it: found out now, not after every item has run. Throws a JobInputError naming what
 * is wrong; the instruction and the schema are checked by the caller (requested.ts).
 */
export async function checkJobOp(op: OpOf<'run_agent_job'>): Promise<void> {
  if (op.items.length > MAX_JOB_ITEMS) throw new JobInputError(`the job has ${op.items.length} items; an agent job takes at most ${MAX_JOB_ITEMS}`);
  checkColumns(op.columns, 'the job');
  const columns = new Set(op.columns);
  if (columns.size !== op.columns.length) throw new JobInputError(`the job's columns name ${repeated(op.columns)} more than once`);
  if (op.id_column !== undefined && !columns.has(op.id_column)) throw new JobInputError(`id_column "${op.id_column}" is not one of the job's columns`);
  const ids = op.items.map((item) => item.item_id);
  if (new Set(ids).size !== ids.length) throw new JobInputError(`the job's items repeat the item id ${repeated(ids)}`);
  const rows = op.items.map((item) => item.row_index);
  if (new Set(rows).size !== rows.length) throw new JobInputError(`the job's items repeat the row index ${repeated(rows)}`);
  for (const item of op.items) {
    const stray = Object.keys(item.row).find((key) => !columns.has(key));
    if (stray !== undefined) throw new JobInputError(`item ${item.item_id} has a value for "${stray}", which is not one of the job's columns`);
  }
  await checkOutputPath(op.output_csv_path, op.input_path);
}

/** The first value that appears twice in `values`, as JSON. */
function repeated(values: readonly (string | number)[]): string {
  const seen = new Set<string | number>();
  for (const value of values) {
    if (seen.has(value)) return JSON.stringify(value);
    seen.add(value);
  }
  return '';
}

/**
 * The prepared job `op` carries (what `jobOp` was given). Nothing is checked here: the session
 * that runs it checks the op first (`checkJobOp`, and the instruction and schema in requested.ts).
 */
export function preparedFromOp(op: OpOf<'run_agent_job'>): PreparedJob {
  return {
    jobId: op.job_id,
    input: { path: op.input_path, format: op.input_format, columns: op.columns, items: op.items },
    settings: settingsOf(op),
    outputPath: op.output_csv_path,
    outputFormat: op.output_format ?? formatOf(op.output_csv_path),
    concurrency: Math.min(MAX_JOB_CONCURRENCY, op.max_concurrency),
  };
}
