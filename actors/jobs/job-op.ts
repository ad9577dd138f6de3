import type { OpOf } from '../../protocol/index.js';
import { formatOf } from './input.js';
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
 * The prepared job `op` carries (what `jobOp` was given). Its instruction and schema are not
 * checked here: the session that runs it checks them again (requested.ts).
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
