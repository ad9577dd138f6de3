import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useScratch } from '../support/e2e.js';
import type { RecordedRequest } from '../../testing/fake-model-server.js';
import { waitFor } from '../support/wait.js';
import { doneStep, readCsv, readJsonl, reportStep, task, workerFirst, writeText } from './jobs-support.js';
import { useTroupeCli } from '../support/troupe-cli.js';

const scratch = useScratch();
const cli = useTroupeCli();

function env(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    OPENAI_BASE_URL: scratch.model.url,
    OPENAI_API_KEY: 'k',
    TROUPE_HOME: scratch.home,
    TROUPE_RETRY_BASE_MS: '1',
    TROUPE_MODEL: 'test-model',
  };
}

/** Start `troupe <args>` with no terminal. */
const start = (args: string[]) => cli.start(args, env());
const troupe = (args: string[]) => start(args).done;

const named = (name: string) => (r: RecordedRequest) => workerFirst(r) && task(r).row.name === name;

/** The id of the only job under TROUPE_HOME, once its log exists. */
async function onlyJobId(): Promise<string> {
  const dir = join(scratch.home, 'jobs');
  await waitFor(() => existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.jsonl')), 'the job log');
  const logs = readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
  expect(logs).toHaveLength(1);
  return logs[0]!.replace(/\.jsonl$/, '');
}

describe('troupe jobs', () => {
  it('run takes a JSON Lines file to a JSON Lines output; status shows the job', async () => {
    await writeText(scratch.workspace, 'tasks.jsonl', ['{"name":"alpha","n":1}', '{"name":"beta","n":2}', '{"name":"gamma","n":3}'].join('\n'));
    await writeText(scratch.workspace, 'schema.json', JSON.stringify({ type: 'object', properties: { double: { type: 'integer' } }, required: ['double'] }));
    scratch.model.enqueue(...Array.from({ length: 3 }, () => reportStep((row) => ({ double: Number(row.n) * 2 }))), ...Array.from({ length: 3 }, doneStep));
    const result = await troupe([
      'jobs',
      'run',
      '-C',
      scratch.workspace,
      '--csv',
      'tasks.jsonl',
      '--instruction',
      'Double {n} for {name}',
      '--concurrency',
      '2',
      '--output',
      'out.jsonl',
      '--output-schema',
      'schema.json',
    ]);
    expect(result.stderr).toMatch(/job [0-9a-f]{8} \[█+\] 3\/3 · completed/);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).toMatchObject({
      status: 'completed',
      total_items: 3,
      completed_items: 3,
      failed_items: 0,
      output_csv_path: join(scratch.workspace, 'out.jsonl'),
    });
    expect(readJsonl(join(scratch.workspace, 'out.jsonl'))).toEqual([
      { name: 'alpha', n: 1, status: 'completed', double: 2, error: null },
      { name: 'beta', n: 2, status: 'completed', double: 4, error: null },
      { name: 'gamma', n: 3, status: 'completed', double: 6, error: null },
    ]);
    const jobId = String(summary.job_id);
    const listed = await troupe(['jobs', 'status']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${jobId}  completed\\s+3/3 .*tasks\\.jsonl\\n$`));
    const shown = await troupe(['jobs', 'status', jobId.slice(0, 8)]);
    expect(shown.stdout).toContain(`job ${jobId}\n  status     completed\n  items      3: 3 completed, 0 failed, 0 running, 0 pending`);
    const json = await troupe(['jobs', 'status', '--json', jobId]);
    expect(JSON.parse(json.stdout)).toMatchObject({ job_id: jobId, status: 'completed', completed: 3, live: false });
    const again = await troupe(['jobs', 'cancel', jobId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`troupe jobs: job ${jobId} has already ended (completed)\n`);
  });

  it('bad arguments and bad input exit 2 with one line, and write nothing', async () => {
    await writeText(scratch.workspace, 'in.csv', 'name\na\n');
    const noCsv = await troupe(['jobs', 'run', '--instruction', 'x']);
    expect(noCsv.code).toBe(2);
    expect(noCsv.stderr).toBe('troupe jobs: jobs run needs --csv FILE (a CSV with a header row, or a .jsonl file) (see troupe jobs --help)\n');
    const placeholder = await troupe(['jobs', 'run', '-C', scratch.workspace, '--csv', 'in.csv', '--instruction', 'Do {nope}']);
    expect(placeholder.code).toBe(2);
    expect(placeholder.stderr).toBe(
      'troupe jobs: the instruction uses a placeholder that is not a column: {nope}; the columns are "name" (write {{ and }} for literal braces)\n',
    );
    const unknown = await troupe(['jobs', 'status', 'feedbeef']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`troupe jobs: no job feedbeef under ${scratch.home}\n`);
    expect(existsSync(join(scratch.home, 'jobs'))).toBe(false);
    expect(existsSync(join(scratch.home, 'sessions'))).toBe(false);
    expect(scratch.model.requests).toEqual([]);
  });

  it('cancel stops a job another process runs; that process writes the output and exits 1', async () => {
    await writeText(scratch.workspace, 'in.csv', 'name\none\ntwo\nthree\nfour\n');
    scratch.model.enqueue(
      reportStep(() => ({ ok: true }), { match: named('one') }),
      doneStep(),
      { kind: 'hang', match: named('two') },
      { kind: 'hang', match: named('three') },
    );
    const run = start(['jobs', 'run', '-C', scratch.workspace, '--csv', 'in.csv', '--instruction', 'Do {name}', '--concurrency', '2', '--output', 'out.csv']);
    const jobId = await onlyJobId();
    await waitFor(() => scratch.model.requests.filter((r) => named('two')(r) || named('three')(r)).length === 2, 'two hanging items', 20_000);
    const status = await troupe(['jobs', 'status', jobId]);
    expect(status.stdout).toMatch(/status {5}running \(process \d+\)/);
    const cancel = await troupe(['jobs', 'cancel', jobId]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^job ${jobId}: cancel requested; process \\d+ stops its items`));
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ job_id: jobId, status: 'cancelled', completed_items: 1, cancelled_items: 3 });
    expect(readCsv(join(scratch.workspace, 'out.csv')).map((r) => [r.name, r.status])).toEqual([
      ['one', 'completed'],
      ['two', 'cancelled'],
      ['three', 'cancelled'],
      ['four', 'cancelled'],
    ]);
    await waitFor(
      () => scratch.model.requests.filter((r) => named('two')(r) || named('three')(r)).every((r) => r.disconnected),
      'the hung requests to be dropped',
    );
  });

  it('cancel ends a job whose process was killed, writing what was done', async () => {
    await writeText(scratch.workspace, 'in.csv', 'name\none\ntwo\nthree\n');
    scratch.model.enqueue(
      reportStep(() => ({ ok: true }), { match: named('one') }),
      doneStep(),
      { kind: 'hang', match: named('two') },
    );
    const run = start(['jobs', 'run', '-C', scratch.workspace, '--csv', 'in.csv', '--instruction', 'Do {name}', '--concurrency', '1', '--output', 'out.csv']);
    const jobId = await onlyJobId();
    await waitFor(() => scratch.model.requests.some(named('two')), 'the second item', 20_000);
    run.child.kill('SIGKILL');
    await run.done;
    const status = await troupe(['jobs', 'status', jobId]);
    expect(status.stdout).toContain('status     stopped (no process runs it: resume its session to go on)');
    expect(status.stdout).toContain('items      3: 1 completed, 0 failed, 0 running, 2 pending');
    const cancel = await troupe(['jobs', 'cancel', jobId]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toBe(`job ${jobId} cancelled: 1 of 3 items completed; results in ${join(scratch.workspace, 'out.csv')}\n`);
    expect(readCsv(join(scratch.workspace, 'out.csv')).map((r) => [r.name, r.status])).toEqual([
      ['one', 'completed'],
      ['two', 'cancelled'],
      ['three', 'cancelled'],
    ]);
    expect(readdirSync(join(scratch.home, 'jobs', 'open'))).toEqual([]);
  });
});
