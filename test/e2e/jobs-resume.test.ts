import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { AppServerProcess } from '../support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer, type RecordedRequest } from '../../testing/fake-model-server.js';
import { inputTexts, mentions, outputFor } from '../../testing/requests.js';
import { waitFor } from '../support/wait.js';
import { doneStep, isWorker, jobLog, readCsv, reportStep, spawnJobStep, task, workerFirst, writeText } from './jobs-support.js';

const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function scratch(): Promise<{ model: FakeModelServer; home: string; workspace: string }> {
  const model = await startFakeModelServer();
  const home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  const workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
  cleanup.push(async () => {
    await model.close();
    await rm(home, { recursive: true, force: true });
    await rm(workspace, { recursive: true, force: true });
  });
  return { model, home, workspace };
}

async function appServer(modelUrl: string, home: string): Promise<AppServerProcess> {
  const server = await AppServerProcess.start({ modelUrl, home });
  cleanup.push(() => server.dispose());
  return server;
}

const named = (name: string) => (r: RecordedRequest) => workerFirst(r) && task(r).row.name === name;
const firstRequestsOf = (model: FakeModelServer, name: string) => model.requests.filter(named(name)).length;

it('a job survives kill -9 of its process: the resumed session finishes it, every item has exactly one result', async () => {
  const { model, home, workspace } = await scratch();
  const names = ['ant', 'bee', 'cat', 'dog', 'eel', 'fox'];
  await writeText(workspace, 'animals.csv', `name\n${names.join('\n')}\n`);
  const output = join(workspace, 'animals.out.csv');
  const result = (row: Record<string, unknown>) => ({ legs: String(row.name).length });
  // First process: two items report, the next two hang until the process dies.
  model.enqueue(
    spawnJobStep((r) => mentions(r, 'count the legs') && !isWorker(r), {
      csv_path: 'animals.csv',
      instruction: 'Count the legs of a {name}',
      max_concurrency: 2,
      output_csv_path: output,
    }),
    reportStep(result, { match: named('ant') }),
    reportStep(result, { match: named('bee') }),
    doneStep(),
    doneStep(),
    { kind: 'hang', match: named('cat') },
    { kind: 'hang', match: named('dog') },
  );
  const first = await appServer(model.url, home);
  const parent = await first.newSession({ cwd: workspace });
  first.submit({ type: 'user_turn', items: [{ type: 'text', text: 'count the legs' }] }, parent);
  const progress = await first.waitForMsg('agent_job_progress', { session: parent });
  const jobId = progress.msg.job_id;
  await waitFor(() => firstRequestsOf(model, 'cat') === 1 && firstRequestsOf(model, 'dog') === 1, 'the third and fourth items to start');
  expect(
    jobLog(home, jobId)
      .filter((r) => r.type === 'item_result')
      .map((r) => r.item_id),
  ).toEqual(expect.arrayContaining(['row-1', 'row-2']));
  await first.dispose(); // SIGKILL: nothing gets to shut down
  expect(readdirSync(join(home, 'jobs', 'open'))).toEqual([`${parent}.${jobId}`]);
  expect(existsSync(output)).toBe(false);

  // Second process: the session is resumed, and its job goes on with the items that had no result.
  model.enqueue(...['cat', 'dog', 'eel', 'fox'].map((name) => reportStep(result, { match: named(name) })), ...Array.from({ length: 4 }, doneStep));
  const second = await appServer(model.url, home);
  const resumeId = second.submit({ type: 'resume_session', session_id: parent });
  await second.waitForMsg('session_configured', { id: resumeId });
  const done = await second.waitFor(
    (e) => e.session_id === parent && e.msg.type === 'agent_job_progress' && e.msg.status !== 'running',
    'the job to end',
    30_000,
  );
  expect(done.msg).toMatchObject({ job_id: jobId, status: 'completed', total: 6, completed: 6, failed: 0 });
  await second.waitForMsg('background_event', { session: parent, where: (m) => m.message.includes(`agent job ${jobId} completed: 6 of 6`) });

  // Every item has exactly one result, and none that had one ran again.
  const log = jobLog(home, jobId);
  const results = log.filter((r) => r.type === 'item_result').map((r) => r.item_id);
  expect([...results].sort()).toEqual(['row-1', 'row-2', 'row-3', 'row-4', 'row-5', 'row-6']);
  expect(log.filter((r) => r.type === 'runner_started')).toHaveLength(2);
  expect(log.filter((r) => r.type === 'job_finished')).toEqual([expect.objectContaining({ status: 'completed' })]);
  expect(firstRequestsOf(model, 'ant')).toBe(1);
  expect(firstRequestsOf(model, 'bee')).toBe(1);
  expect(firstRequestsOf(model, 'cat')).toBe(2);
  expect(firstRequestsOf(model, 'dog')).toBe(2);
  expect(firstRequestsOf(model, 'eel')).toBe(1);
  expect(firstRequestsOf(model, 'fox')).toBe(1);
  const rows = readCsv(output);
  expect(rows.map((r) => [r.name, r.status, r.result, r.error])).toEqual(names.map((n) => [n, 'completed', JSON.stringify({ legs: n.length }), '']));
  expect(readdirSync(join(home, 'jobs', 'open'))).toEqual([]);

  // The parent's model hears of it in its next turn.
  model.enqueue({ kind: 'response', match: (r) => mentions(r, 'what came of it') && !isWorker(r), items: [{ type: 'message', text: 'six animals counted' }] });
  await second.turn(parent, 'what came of it?');
  const asked = model.requests.at(-1)!;
  expect(inputTexts(asked).join('\n')).toContain('<agent_job_notification>');
  expect(outputFor(asked, 'job')).toBeDefined();
  expect(second.junk).toEqual([]);
  expect(model.violations).toEqual([]);
});
