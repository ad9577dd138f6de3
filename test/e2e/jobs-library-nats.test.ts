import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cancelJob, connectRuntime, JobLookupError, jobStatus, listJobs, runJob, type JobsOptions } from '../../index.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { waitFor } from '../support/wait.js';
import { heldReports, readCsv, writeText } from './jobs-support.js';

/**
 * The library's job calls on NATS: real nats-server with JetStream, `troupe worker` processes,
 * the job started with `runJob` on a runtime from `connectRuntime`, and seen and cancelled with
 * `jobStatus`, `listJobs` and `cancelJob`, which read and write the job's records in JetStream.
 */

const cluster = new NatsCluster({ name: 'jobslib', settleMs: 200 });

const upper = (row: Record<string, unknown>) => ({ upper: String(row.name).toUpperCase() });

describe('jobStatus and cancelJob on NATS', { timeout: 90_000 }, () => {
  it('see a job runJob runs on a worker, cancel it there, and write its output here from the records', async () => {
    await cluster.startWorker('a', 8, { env: { TROUPE_LEASE_MS: '3000', TROUPE_LOG: process.env.JOBS_NATS_LOG ?? 'warn' } });
    await writeText(cluster.dir, 'items.csv', 'name\nitem1\nitem2\nitem3\nitem4\n');
    const { holdStep, held, release } = heldReports(upper);
    cluster.model.enqueue(...Array.from({ length: 4 }, holdStep));
    const at: JobsOptions = { nats: cluster.nats.url, namespace: cluster.namespace };
    const runtime = await connectRuntime(at);
    let jobId = '';
    const running = runJob(runtime, {
      csv_path: 'items.csv',
      instruction: 'Shout {name}.',
      max_concurrency: 2,
      output_csv_path: 'out.csv',
      config: { cwd: cluster.dir },
      onStart: (job) => (jobId = job.jobId),
    });
    try {
      await waitFor(() => held.length === 2 && jobId !== '', 'two items at the model', 20_000);
      // An item is logged as started once its agent's placement is answered, which can be after that agent's request.
      let status = await jobStatus(jobId.slice(0, 8), at);
      await waitFor(async () => (status = await jobStatus(jobId.slice(0, 8), at)).running === 2, 'both items logged as started', 20_000);
      expect(status).toMatchObject({ job_id: jobId, status: 'running', live: true, total: 4, running: 2, pending: 2, completed: 0, cancel_requested: null });
      expect(status.runner_pid).not.toBe(process.pid);
      expect((await listJobs(at)).map((j) => [j.job_id, j.status])).toEqual([[jobId, 'running']]);

      const outcome = await cancelJob(jobId, { ...at, reason: 'the library cancelled it' });
      expect(outcome).toMatchObject({ kind: 'requested', job: { job_id: jobId, cancel_requested: 'the library cancelled it' } });
      // The worker's runner follows its records: the job ends, and runJob with it.
      expect(await running).toMatchObject({ job_id: jobId, status: 'cancelled', completed_items: 0, cancelled_items: 4 });
    } finally {
      release();
      await running.catch(() => undefined);
      await runtime.close();
    }
    expect(readCsv(join(cluster.dir, 'out.csv')).map((r) => [r.name, r.status])).toEqual([
      ['item1', 'cancelled'],
      ['item2', 'cancelled'],
      ['item3', 'cancelled'],
      ['item4', 'cancelled'],
    ]);
    expect(await jobStatus(jobId, at)).toMatchObject({ status: 'cancelled', live: false, cancelled: 4, cancel_requested: 'the library cancelled it' });
    expect((await cancelJob(jobId, at)).kind).toBe('finished');

    // The output again on this machine, from the records alone.
    await rm(join(cluster.dir, 'out.csv'));
    expect(await jobStatus(jobId, { ...at, writeOutput: true })).toMatchObject({ output_path: join(cluster.dir, 'out.csv') });
    expect(readCsv(join(cluster.dir, 'out.csv')).map((r) => r.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);

    await expect(jobStatus('feedbeef', at)).rejects.toThrow(new JobLookupError(`no job feedbeef in namespace ${cluster.namespace}`));
    // Nothing of it is under TROUPE_HOME: the job is JetStream's.
    const home = join(cluster.dir, 'library-home');
    expect(await listJobs({ home })).toEqual([]);
    expect(existsSync(join(home, 'jobs'))).toBe(false);
  });
});
