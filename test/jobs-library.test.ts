import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, InProcessBus, JobInputError, Runtime, runJob, type JobProgress } from '../index.js';
import { doneStep, readCsv, reportStep, task, workerFirst, writeText } from './e2e/jobs-support.js';
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
