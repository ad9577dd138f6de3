import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Op, parseOrThrow, type OpOf } from '../protocol/index.js';
import { jobOp, preparedFromOp } from '../actors/jobs/job-op.js';
import type { RunJobOptions } from '../actors/jobs/library.js';
import { MAX_JOB_CONCURRENCY, prepareJob, type PreparedJob } from '../actors/jobs/prepare.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'troupe-job-op-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The op as a session receives it: through JSON, checked by the protocol's schema. */
function overTheWire(prepared: PreparedJob, shutdownWhenDone?: boolean): OpOf<'run_agent_job'> {
  const op = parseOrThrow(Op, JSON.parse(JSON.stringify(jobOp(prepared, { shutdownWhenDone }))));
  if (op.type !== 'run_agent_job') throw new Error(`not a run_agent_job op: ${op.type}`);
  return op;
}

describe('run_agent_job op', () => {
  it('carries a prepared job with every setting to the session unchanged', async () => {
    await writeFile(join(dir, 'in.csv'), 'id,name\nk1,ann\nk2,bob\n');
    await writeFile(join(dir, 'real.csv'), '');
    // A link named .jsonl to a .csv file: the output is JSON Lines, as the name asked for says.
    await symlink(join(dir, 'real.csv'), join(dir, 'out.jsonl'));
    const prepared = await prepareJob(
      {
        csv_path: 'in.csv',
        instruction: 'Greet {name}',
        id_column: 'id',
        output_schema: { type: 'object', properties: { greeting: { type: 'string' } }, required: ['greeting'] },
        max_concurrency: 3,
        max_runtime_seconds: 60,
        output_csv_path: 'out.jsonl',
        max_attempts: 2,
        agent_type: 'worker',
      },
      dir,
    );
    expect(prepared).toMatchObject({ outputPath: join(dir, 'real.csv'), outputFormat: 'jsonl', concurrency: 3 });
    const op = overTheWire(prepared, true);
    expect(op).toMatchObject({ input_path: join(dir, 'in.csv'), output_csv_path: join(dir, 'real.csv'), output_format: 'jsonl', shutdown_when_done: true });
    expect(preparedFromOp(op)).toStrictEqual(prepared);
  });

  it('carries a job with the defaults, and only the request settings a job keeps', async () => {
    await writeFile(join(dir, 'in.jsonl'), '{"n":1}\n{"n":2}\n');
    // What runJob prepares from: its options beside the request are not the job's.
    const options: RunJobOptions = { csv_path: 'in.jsonl', instruction: 'Double {n}', config: { cwd: dir }, onProgress: () => undefined };
    const prepared = await prepareJob(options, dir);
    expect(prepared.settings).toStrictEqual({ instruction: 'Double {n}' });
    const op = overTheWire(prepared);
    expect(op).not.toHaveProperty('shutdown_when_done');
    expect(preparedFromOp(op)).toStrictEqual(prepared);
  });

  it('reads an op without output_format (an older client) by the output name, and caps its concurrency', async () => {
    await writeFile(join(dir, 'in.csv'), 'a\n1\n');
    const prepared = await prepareJob({ csv_path: 'in.csv', instruction: '{a}', output_csv_path: 'out.jsonl' }, dir);
    const { output_format: _format, ...older } = overTheWire(prepared);
    expect(preparedFromOp(older)).toStrictEqual(prepared);
    expect(preparedFromOp({ ...older, max_concurrency: MAX_JOB_CONCURRENCY + 10 }).concurrency).toBe(MAX_JOB_CONCURRENCY);
  });
});
