import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cancelJob, createRuntime, InProcessBus, JobInputError, JobLookupError, jobStatus, listJobs, Runtime, runJob, type JobProgress } from '../index.js';
import { doneStep, heldReports, readCsv, reportStep, task, workerFirst, writeText } from './e2e/jobs-support.js';
import { waitFor } from './support/wait.js';
import { testJobSpec } from './support/job-spec.js';
import { FileJobStore } from '../actors/jobs/store.js';
import { processStart } from '../lib/processes.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';

let model: FakeModelServer;
let home: string;
let workspace: string;
let runtime: Runtime | null = null;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
});

afterEach(async () => {
  await runtime?.close();
  runtime = null;
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
});

describe('runJob', () => {
  it('runs a job in a session of its own and resolves to the summary', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, model: 'lib-model', cwd: workspace });
    await writeText(workspace, 'words.csv', 'word\nred\ngreen\nblue\n');
    model.enqueue(...Array.from({ length: 3 }, () => reportStep((row) => ({ letters: String(row.word).length }))), ...Array.from({ length: 3 }, doneStep));
    const progress: JobProgress[] = [];
    const started: string[] = [];
    const summary = await runJob(runtime, {
      csv_path: 'words.csv',
      instruction: 'Count the letters of {word}',
      output_csv_path: 'letters.csv',
      max_concurrency: 3,
      config: { cwd: workspace },
      onProgress: (p) => progress.push(p),
      onStart: ({ jobId }) => started.push(jobId),
    });
    expect(summary).toMatchObject({
      status: 'completed',
      total_items: 3,
      completed_items: 3,
      failed_items: 0,
      output_csv_path: join(workspace, 'letters.csv'),
    });
    expect(started).toEqual([summary.job_id]);
    expect(progress.at(-1)).toMatchObject({ job_id: summary.job_id, status: 'completed', completed: 3 });
    expect(readCsv(join(workspace, 'letters.csv')).map((r) => [r.word, r.status, r.result])).toEqual([
      ['red', 'completed', '{"letters":3}'],
      ['green', 'completed', '{"letters":5}'],
      ['blue', 'completed', '{"letters":4}'],
    ]);
    expect(
      model.requests
        .filter(workerFirst)
        .map((r) => task(r).row.word)
        .sort(),
    ).toEqual(['blue', 'green', 'red']);
    // The session the job ran in was closed with it.
    const sessions = await runtime.listSessions();
    expect(sessions.filter((s) => s.parent_session_id === null)).toHaveLength(1);
  });

  it('rejects bad input with a JobInputError before it opens a session', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: workspace });
    await writeText(workspace, 'dupes.csv', 'a,a\n1,2\n');
    await expect(runJob(runtime, { csv_path: 'dupes.csv', instruction: '{a}', config: { cwd: workspace } })).rejects.toThrow(JobInputError);
    await expect(runJob(runtime, { csv_path: 'dupes.csv', instruction: '{a}', config: { cwd: workspace } })).rejects.toThrow('names column "a" twice');
    expect(await runtime.listSessions()).toEqual([]);
    expect(existsSync(join(home, 'jobs'))).toBe(false);
  });

  it('needs a runtime with sessions in this process or on NATS', async () => {
    runtime = new Runtime({ bus: new InProcessBus() });
    await writeText(workspace, 'x.csv', 'a\n1\n');
    await expect(runJob(runtime, { csv_path: 'x.csv', instruction: 'x', config: { cwd: workspace } })).rejects.toThrow(
      'runJob needs a runtime with sessions in this process or on NATS',
    );
  });
});

describe('jobStatus, listJobs and cancelJob under TROUPE_HOME', () => {
  it('see a running job and cancel it: the runJob waiting for it resolves to a cancelled summary', async () => {
    runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: workspace });
    await writeText(workspace, 'words.csv', 'word\nred\ngreen\nblue\n');
    const { holdStep, held, release } = heldReports((row) => ({ letters: String(row.word).length }));
    model.enqueue(...Array.from({ length: 3 }, holdStep));
    let jobId = '';
    const running = runJob(runtime, {
      csv_path: 'words.csv',
      instruction: 'Count the letters of {word}',
      output_csv_path: 'letters.csv',
      max_concurrency: 2,
      config: { cwd: workspace },
      onStart: (job) => (jobId = job.jobId),
    });
    try {
      await waitFor(() => held.length === 2, 'two items at the model');
      // By the first characters of its id, as the progress line shows it. An item is logged as
      // started once its agent's spawn has returned, which can be after that agent's request.
      let status = await jobStatus(jobId.slice(0, 8), { home });
      await waitFor(async () => (status = await jobStatus(jobId.slice(0, 8), { home })).running === 2, 'both items logged as started');
      expect(status).toMatchObject({
        job_id: jobId,
        status: 'running',
        live: true,
        runner_pid: process.pid,
        total: 3,
        running: 2,
        pending: 1,
        completed: 0,
        output_path: join(workspace, 'letters.csv'),
        cancel_requested: null,
      });
      expect((await listJobs({ home })).map((j) => [j.job_id, j.status])).toEqual([[jobId, 'running']]);

      const outcome = await cancelJob(jobId, { home, reason: 'enough words' });
      expect(outcome).toMatchObject({ kind: 'requested', job: { job_id: jobId, cancel_requested: 'enough words' } });
      const summary = await running;
      expect(summary).toMatchObject({ job_id: jobId, status: 'cancelled', completed_items: 0, cancelled_items: 3 });
    } finally {
      release();
      await running.catch(() => undefined);
    }
    expect(readCsv(join(workspace, 'letters.csv')).map((r) => [r.word, r.status])).toEqual([
      ['red', 'cancelled'],
      ['green', 'cancelled'],
      ['blue', 'cancelled'],
    ]);
    expect(await jobStatus(jobId, { home })).toMatchObject({ status: 'cancelled', live: false, cancelled: 3, cancel_requested: 'enough words' });
    expect((await cancelJob(jobId, { home })).kind).toBe('finished');
  });

  it("take a job whose runner's pid now belongs to another process as run by nobody, and end it on cancel", async () => {
    // The log of a job left running by a process that died, whose pid the kernel has since
    // given to another live process (here: this test's parent, with the start that pid had
    // before it).
    const reused = { pid: process.ppid, host: hostname() };
    const store = new FileJobStore(home);
    const jobId = randomUUID();
    const handle = await store.create(testJobSpec({ jobId, dir: workspace, rows: ['x', 'y'] }));
    await handle.append({ type: 'runner_started', ...reused, start: `${processStart(process.ppid)}-before` });
    await handle.close();

    expect(await jobStatus(jobId, { home })).toMatchObject({ status: 'running', live: false });
    expect(await cancelJob(jobId, { home, reason: 'left behind' })).toMatchObject({ kind: 'cancelled', job: { status: 'cancelled', cancelled: 2 } });
    expect(readCsv(join(workspace, `${jobId}.csv`)).map((r) => r.status)).toEqual(['cancelled', 'cancelled']);

    // The same pid with its own start is a live runner: it is asked to stop, not ended here.
    const other = randomUUID();
    const running = await store.create(testJobSpec({ jobId: other, dir: workspace, rows: ['x'] }));
    await running.append({ type: 'runner_started', ...reused, start: processStart(process.ppid)! });
    await running.close();
    expect(await jobStatus(other, { home })).toMatchObject({ live: true });
    expect(await cancelJob(other, { home })).toMatchObject({ kind: 'requested' });
    expect(existsSync(join(workspace, `${other}.csv`))).toBe(false);
  });

  it('reject an id no job has, or that is empty, with a JobLookupError naming it', async () => {
    await expect(jobStatus('feedbeef', { home })).rejects.toThrow(new JobLookupError(`no job feedbeef under ${home}`));
    await expect(cancelJob('feedbeef', { home })).rejects.toThrow(JobLookupError);
    await expect(jobStatus(' ', { home })).rejects.toThrow('the job id is empty');
    expect(await listJobs({ home })).toEqual([]);
  });
});
