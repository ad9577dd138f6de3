import { join } from 'node:path';
import type { JobSpec } from '../../actors/jobs/records.js';

/**
 * The spec of a job over one-column rows (`a`), for tests that drive a job store or runner
 * directly: input and output files under `dir`, none of which need exist until the job writes.
 */
export function testJobSpec(options: {
  readonly jobId: string;
  readonly dir: string;
  readonly rows: readonly string[];
  readonly maxConcurrency?: number;
  readonly maxRuntimeSeconds?: number;
  readonly createdAt?: string;
}): JobSpec {
  return {
    job_id: options.jobId,
    created_at: options.createdAt ?? new Date().toISOString(),
    parent_session_id: 'parent',
    call_id: 'call-1',
    turn: {},
    input_path: join(options.dir, 'in.csv'),
    input_format: 'csv',
    output_path: join(options.dir, `${options.jobId}.csv`),
    output_format: 'csv',
    instruction: 'do {a}',
    id_column: null,
    output_schema: null,
    columns: ['a'],
    max_concurrency: options.maxConcurrency ?? 2,
    max_runtime_seconds: options.maxRuntimeSeconds ?? 60,
    max_attempts: 3,
    items: options.rows.map((a, i) => ({ item_id: `row-${i + 1}`, row_index: i, source_id: null, row: { a } })),
  };
}
