import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobStatus } from '../../index.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { waitFor } from '../support/wait.js';
import type { ScriptStep } from '../../testing/index.js';
import { doneStep, heldReports, outcomesPerItem, readCsv, reportStep, sessionHeld, task, workerFirst, writeText } from './jobs-support.js';
import { useTroupeCli, type CliRun } from '../support/troupe-cli.js';

/**
 * `troupe jobs run | status | cancel` on NATS: real nats-server with JetStream, `troupe worker`
 * processes, the commands as child processes. The job's session runs on a worker and its
 * records live in JetStream, so the job outlives the `troupe jobs run` that started it.
 */

const cluster = new NatsCluster({ name: 'jobscli', settleMs: 200 });
const cli = useTroupeCli();

function startWorker(id: string, capacity: number) {
  return cluster.startWorker(id, capacity, { env: { TROUPE_LEASE_MS: '3000', TROUPE_LOG: process.env.JOBS_NATS_LOG ?? 'warn' } });
}

/** The commands' environment: NATS named by TROUPE_NATS_URL and TROUPE_NAMESPACE, as a user would set it. */
function env(): NodeJS.ProcessEnv {
  return { ...process.env, TROUPE_HOME: join(cluster.dir, 'cli-home'), TROUPE_NATS_URL: cluster.nats.url, TROUPE_NAMESPACE: cluster.namespace };
}

/** `troupe jobs run` with NATS named by its flags (the environment names none), in the cluster's directory. */
function run(args: readonly string[]): CliRun {
  const { TROUPE_NATS_URL: _url, TROUPE_NAMESPACE: _ns, ...rest } = env();
  return cli.start(['jobs', 'run', '--nats', cluster.nats.url, '--namespace', cluster.namespace, ...args], rest, { cwd: cluster.dir });
}

const troupe = (args: readonly string[]) => cli.run(args, env(), { cwd: cluster.dir });

/** The job id `troupe jobs run` announces on stderr once the job is stored. */
async function announcedJob(job: CliRun): Promise<string> {
  await waitFor(() => /troupe job [0-9a-f-]{36} /.test(job.stderr()), 'the job to be announced', 20_000);
  return /troupe job ([0-9a-f-]{36}) /.exec(job.stderr())![1]!;
}

function rows(n: number): string {
  return `name\n${Array.from({ length: n }, (_, i) => `item${i + 1}`).join('\n')}\n`;
}

const upper = (row: Record<string, unknown>) => ({ upper: String(row.name).toUpperCase() });
const shouted = (n: number) => Array.from({ length: n }, (_, i) => [`item${i + 1}`, 'completed', `ITEM${i + 1}`]);
/** Name, status and the shouted name of each output row (its own column with an output schema, else in the result's JSON). */
const outputRows = (path: string) => readCsv(path).map((r) => [r.name, r.status, r.upper ?? (JSON.parse(r.result!) as { upper: string }).upper]);

describe('troupe jobs on NATS', { timeout: 90_000 }, () => {
  it('run takes a job to its end on the workers and writes the output; status reads it from JetStream', async () => {
    await Promise.all([startWorker('a', 4), startWorker('b', 4)]);
    await writeText(cluster.dir, 'items.csv', rows(5));
    cluster.model.enqueue(...Array.from({ length: 5 }, (): ScriptStep => reportStep(upper)), ...Array.from({ length: 5 }, doneStep));
    const schema = JSON.stringify({ type: 'object', properties: { upper: { type: 'string' } }, required: ['upper'] });
    await writeText(cluster.dir, 'schema.json', schema);
    const result = await run([
      '--csv',
      'items.csv',
      '--instruction',
      'Shout {name}.',
      '--concurrency',
      '2',
      '--output',
      'out.csv',
      '--output-schema',
      'schema.json',
    ]).done;
    expect(result.stderr).toMatch(/job [0-9a-f]{8} \[█+\] 5\/5 · completed/);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).toMatchObject({ status: 'completed', total_items: 5, completed_items: 5, failed_items: 0, output_csv_path: join(cluster.dir, 'out.csv') });
    expect(outputRows(join(cluster.dir, 'out.csv'))).toEqual(shouted(5));
    const jobId = String(summary.job_id);
    expect(await outcomesPerItem(cluster.nats.url, cluster.namespace, jobId)).toEqual([1, 1, 1, 1, 1]);
    expect(cluster.model.requests.filter(workerFirst)).toHaveLength(5);

    const listed = await troupe(['jobs', 'status']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${jobId}  completed\\s+5/5 .*items\\.csv\\n$`));
    const shown = await troupe(['jobs', 'status', '--json', jobId.slice(0, 8)]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ job_id: jobId, status: 'completed', completed: 5, live: false });
    // Nothing went to the files of TROUPE_HOME: the job is JetStream's.
    expect(existsSync(join(cluster.dir, 'cli-home', 'jobs'))).toBe(false);
  });

  it('status and cancel from another process: the running job stops, and run writes the output and exits 1', async () => {
    await startWorker('a', 8);
    await writeText(cluster.dir, 'items.csv', rows(4));
    const { holdStep, held, release } = heldReports(upper);
    cluster.model.enqueue(...Array.from({ length: 4 }, holdStep));
    const job = run(['--csv', 'items.csv', '--instruction', 'Shout {name}.', '--concurrency', '2', '--output', 'out.csv']);
    const jobId = await announcedJob(job);
    await waitFor(() => held.length === 2, 'two items at the model', 20_000);
    // An item is logged as started once its agent's placement is answered, which can be after that agent's request.
    const at = { nats: cluster.nats.url, namespace: cluster.namespace };
    await waitFor(async () => (await jobStatus(jobId, at)).running === 2, 'both items logged as started', 20_000);

    const status = await troupe(['jobs', 'status', jobId]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/status {5}running \(process \d+\)/);
    expect(status.stdout).toContain('items      4: 0 completed, 0 failed, 2 running, 2 pending');
    const cancel = await troupe(['jobs', 'cancel', jobId]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^job ${jobId}: cancel requested; process \\d+ stops its items`));

    const result = await job.done;
    release();
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ job_id: jobId, status: 'cancelled', completed_items: 0, cancelled_items: 4 });
    expect(readCsv(join(cluster.dir, 'out.csv')).map((r) => r.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    const again = await troupe(['jobs', 'cancel', jobId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`troupe jobs: job ${jobId} has already ended (cancelled)\n`);
  });

  it('goes on after kill -9 of troupe jobs run: the job ends on the workers, each item with one result, and status writes the output', async () => {
    await Promise.all([startWorker('a', 8), startWorker('b', 8)]);
    await writeText(cluster.dir, 'items.csv', rows(6));
    const { holdStep, held, release } = heldReports(upper);
    cluster.model.enqueue(
      ...Array.from({ length: 3 }, (): ScriptStep => reportStep(upper)),
      ...Array.from({ length: 3 }, holdStep),
      ...Array.from({ length: 6 }, doneStep),
    );
    const job = run(['--csv', 'items.csv', '--instruction', 'Shout {name}.', '--concurrency', '3', '--output', 'out.csv']);
    const jobId = await announcedJob(job);
    // Items 1-3 have their results (4-6 start only then) and 4-6 are at the model when run dies.
    await waitFor(() => held.length === 3, 'items 4-6 at the model', 20_000);
    job.child.kill('SIGKILL');
    expect((await job.done).code).toBe(null);
    release();

    const statusOf = async () => JSON.parse((await troupe(['jobs', 'status', '--json', jobId])).stdout) as Record<string, unknown>;
    await waitFor(async () => (await statusOf()).status !== 'running', 'the job to end without its run', 60_000);
    const status = await statusOf();
    expect(status).toMatchObject({ status: 'completed', total: 6, completed: 6, failed: 0 });
    expect(await outcomesPerItem(cluster.nats.url, cluster.namespace, jobId)).toEqual([1, 1, 1, 1, 1, 1]);
    // Nobody is left to close the job's session: it shuts itself down, and its worker's slot is free.
    const jobSession = String(status.parent_session_id);
    await waitFor(async () => !(await sessionHeld(cluster.nats.url, cluster.namespace, jobSession)), "the job's session to shut down", 30_000);
    const tasksOf = (n: number) => cluster.model.requests.filter((r) => workerFirst(r) && task(r).itemId === `row-${n}`).length;
    expect([1, 2, 3, 4, 5, 6].map(tasksOf)).toEqual([1, 1, 1, 1, 1, 1]);

    // The output on this machine, from the records (the worker wrote its copy on its own disk).
    await rm(join(cluster.dir, 'out.csv'));
    const written = await troupe(['jobs', 'status', '--write-output', jobId]);
    expect(written.code).toBe(0);
    expect(written.stderr).toBe(`troupe jobs: wrote ${join(cluster.dir, 'out.csv')}\n`);
    expect(outputRows(join(cluster.dir, 'out.csv'))).toEqual(shouted(6));
  });

  it("goes on after kill -9 of the worker holding the job's session: troupe jobs run still ends with every result", async () => {
    const first = await startWorker('a', 8);
    await writeText(cluster.dir, 'items.csv', rows(4));
    const { holdStep, held, release } = heldReports(upper);
    cluster.model.enqueue(
      ...Array.from({ length: 2 }, (): ScriptStep => reportStep(upper)),
      ...Array.from({ length: 12 }, holdStep),
      ...Array.from({ length: 16 }, doneStep),
    );
    const job = run(['--csv', 'items.csv', '--instruction', 'Shout {name}.', '--concurrency', '2', '--output', 'out.csv']);
    const jobId = await announcedJob(job);
    // Items 1-2 have their results and 3-4 are at the model when the only worker dies.
    await waitFor(() => held.length === 2, 'items 3-4 at the model', 20_000);
    await startWorker('b', 8);
    await first.kill();
    release();

    const result = await job.done;
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toMatchObject({ job_id: jobId, status: 'completed', completed_items: 4, failed_items: 0 });
    expect(outputRows(join(cluster.dir, 'out.csv'))).toEqual(shouted(4));
    expect(await outcomesPerItem(cluster.nats.url, cluster.namespace, jobId)).toEqual([1, 1, 1, 1]);
    const tasksOf = (n: number) => cluster.model.requests.filter((r) => workerFirst(r) && task(r).itemId === `row-${n}`).length;
    expect([1, 2].map(tasksOf)).toEqual([1, 1]);
  });

  it('bad arguments and bad input exit 2 with one line, and store and write nothing', async () => {
    await startWorker('a', 4);
    await writeText(cluster.dir, 'in.csv', 'name\na\n');
    // The workers' homes aside (the role is checked in a session, whose rollout is the worker's).
    const files = () =>
      readdirSync(cluster.dir)
        .filter((name) => !name.startsWith('home-'))
        .sort();
    const before = files();
    const missing = await run(['--csv', 'nope.csv', '--instruction', 'x']).done;
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^troupe jobs: .*nope\.csv.*\n$/);
    const placeholder = await run(['--csv', 'in.csv', '--instruction', 'Do {nope}']).done;
    expect(placeholder.code).toBe(2);
    expect(placeholder.stderr).toBe(
      'troupe jobs: the instruction uses a placeholder that is not a column: {nope}; the columns are "name" (write {{ and }} for literal braces)\n',
    );
    const concurrency = await run(['--csv', 'in.csv', '--instruction', 'Do {name}', '--concurrency', '0']).done;
    expect(concurrency.code).toBe(2);
    expect(concurrency.stderr).toMatch(/^troupe jobs: --concurrency must be a whole number of at least 1, got "0"/);
    // Only the worker knows its roles: it refuses the job before storing it.
    const role = await run(['--csv', 'in.csv', '--instruction', 'Do {name}', '--agent-type', 'nosuchrole']).done;
    expect(role.code).toBe(2);
    expect(role.stderr).toMatch(/^troupe jobs: .*nosuchrole.*\n$/);
    const profile = await run(['--csv', 'in.csv', '--instruction', 'Do {name}', '--profile', 'fast']).done;
    expect(profile.code).toBe(2);

    const listed = await troupe(['jobs', 'status']);
    expect(listed).toMatchObject({ code: 0, stdout: '' });
    const unknown = await troupe(['jobs', 'status', 'feedbeef']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`troupe jobs: no job feedbeef in namespace ${cluster.namespace}\n`);
    expect(files()).toEqual(before);
    expect(cluster.model.requests).toEqual([]);
  });
});
