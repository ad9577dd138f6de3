import { closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cancelJob, createRuntime, JobInputError, jobStatus, JobLookupError, runJob, type Runtime } from '../index.js';
import type { Event } from '../protocol/index.js';
import { writeJobOutput } from '../actors/jobs/output.js';
import { replay } from '../actors/jobs/state.js';
import type { JobRecord } from '../actors/jobs/records.js';
import type { RecordedRequest, ScriptStep } from '../testing/index.js';
import { outputFor } from '../testing/requests.js';
import { doneStep, isWorker, jobLog, readCsv, task, workerFirst, writeText } from './e2e/jobs-support.js';
import { testJobSpec } from './support/job-spec.js';
import { waitFor } from './support/wait.js';
import { useScratch } from './support/e2e.js';

// Hostile model, repository and callers against agent jobs (in process). Each test states what
// should happen; they were written against defects found by reading actors/jobs and cli/jobs.ts.

const scratch = useScratch();
let runtime: Runtime | null = null;

afterEach(async () => {
  await runtime?.close();
  runtime = null;
});

/** A job log that someone other than troupe wrote (in a repository, say), naming `output` as its output. */
function plantedJobLog(path: string, jobId: string, output: string, finished: boolean): void {
  const spec = { ...testJobSpec({ jobId, dir: scratch.workspace, rows: ['=1+1'] }), output_path: output };
  const lines: JobRecord[] = [{ type: 'job_created', at: new Date().toISOString(), job: spec }];
  if (finished) lines.push({ type: 'job_finished', at: new Date().toISOString(), status: 'completed', error: null });
  writeFileSync(path, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
}

/** A worker's answer: report_agent_job_result with `args` written as raw JSON text. */
function rawReport(rawResult: (r: RecordedRequest) => string, match: (r: RecordedRequest) => boolean = workerFirst): ScriptStep {
  return {
    kind: 'reply',
    match,
    handler: (r) => {
      const { jobId, itemId } = task(r);
      return {
        kind: 'response',
        items: [
          {
            type: 'function_call',
            name: 'report_agent_job_result',
            call_id: `report-${itemId}`,
            arguments: `{"job_id":${JSON.stringify(jobId)},"item_id":${JSON.stringify(itemId)},"result":${rawResult(r)}}`,
          },
        ],
      };
    },
  };
}

/** The answer report_agent_job_result gave, in the worker's next request. */
function reportAnswer(itemId: string): string | undefined {
  for (const r of scratch.model.requests) {
    const out = outputFor(r, `report-${itemId}`);
    if (out !== undefined) return out;
  }
  return undefined;
}

describe('job ids that are paths', () => {
  it('cancelJob refuses a job id with "../" instead of ending a job log planted outside TROUPE_HOME and writing its output', async () => {
    // The repository holds a file that looks like a job log; its "output" is a file of the user's.
    const victim = await writeText(scratch.workspace, 'notes.txt', 'precious\n');
    const planted = join(scratch.workspace, 'planted.jsonl');
    const id = relative(join(scratch.home, 'jobs'), planted).replace(/\.jsonl$/, '');
    expect(id.startsWith('..')).toBe(true);
    // The log names itself by that id, as a log troupe wrote names its own.
    plantedJobLog(planted, id, victim, false);
    const before = readFileSync(planted, 'utf8');

    const outcome = await cancelJob(id, { home: scratch.home }).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(planted, 'utf8')).toBe(before);
    expect(outcome).toBeInstanceOf(JobLookupError);
  });

  it('jobStatus --write-output refuses a job id with "../" instead of writing the output a planted log names', async () => {
    const victim = await writeText(scratch.workspace, 'notes.txt', 'precious\n');
    const planted = join(scratch.workspace, 'planted.jsonl');
    const id = relative(join(scratch.home, 'jobs'), planted).replace(/\.jsonl$/, '');
    plantedJobLog(planted, id, victim, true);

    const outcome = await jobStatus(id, { home: scratch.home, writeOutput: true }).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(outcome).toBeInstanceOf(JobLookupError);
  });
});

describe('report_agent_job_result from a hostile model', () => {
  it('answers at once, refused, a job_id that walks out of TROUPE_HOME/jobs to a FIFO the model made', async () => {
    runtime = createRuntime({ baseURL: scratch.model.url, apiKey: 'k', home: scratch.home, cwd: scratch.workspace });
    // The model made a FIFO in its workspace (mkfifo is an ordinary command) and names it as its job.
    const fifo = join(scratch.workspace, 'trap.jsonl');
    execFileSync('mkfifo', [fifo]);
    const jobId = relative(join(scratch.home, 'jobs'), fifo).replace(/\.jsonl$/, '');
    const session = await runtime.newSession({ cwd: scratch.workspace });
    scratch.model.enqueue(
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'report_agent_job_result', call_id: 'trap', arguments: { job_id: jobId, item_id: 'row-1', result: { a: 1 } } }],
      },
      { kind: 'response', items: [{ type: 'message', text: 'done' }] },
    );
    const events = session.events();
    const turnId = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'report' }] });
    try {
      await waitFor(() => scratch.model.requests.some((r) => outputFor(r, 'trap') !== undefined), 'the answer to the report', 10_000);
      const answer = scratch.model.requests.map((r) => outputFor(r, 'trap')).find((o) => o !== undefined)!;
      expect(answer).toContain('"accepted":false');
      await untilDone(events, turnId);
    } finally {
      // Let a read that opened the FIFO go on (and end), so no thread of this process stays blocked.
      try {
        const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        closeSync(writer);
      } catch {
        // nobody had it open
      }
    }
  });

  it('refuses a result with a "__proto__" key, naming it, instead of recording it without that key', async () => {
    runtime = createRuntime({ baseURL: scratch.model.url, apiKey: 'k', home: scratch.home, cwd: scratch.workspace });
    await writeText(scratch.workspace, 'in.csv', 'name\na\n');
    scratch.model.enqueue(
      rawReport(() => '{"__proto__":{"secret":"kept?"},"plain":1}'),
      doneStep(),
      { kind: 'response', match: isWorker, items: [{ type: 'message', text: 'ok' }] },
    );
    const summary = await runJob(runtime, { csv_path: 'in.csv', instruction: 'Do {name}', output_csv_path: 'out.csv', config: { cwd: scratch.workspace } });
    const answer = reportAnswer('row-1') ?? '';
    const output = readFileSync(join(scratch.workspace, 'out.csv'), 'utf8');
    // The agent is told its result cannot be kept, naming the key; nothing of it is recorded.
    expect(answer).toContain('__proto__');
    expect(answer).not.toContain('"accepted":true');
    expect(summary.completed_items).toBe(0);
    expect(output).not.toContain('plain');
  });

  it('refuses, naming the problem, a result nested too deep to be logged, instead of starting the item again and again without counting attempts', async () => {
    runtime = createRuntime({ baseURL: scratch.model.url, apiKey: 'k', home: scratch.home, cwd: scratch.workspace });
    await writeText(scratch.workspace, 'in.csv', 'name\na\n');
    // 20,000 levels: 100 KB of JSON, which JSON.parse reads and JSON.stringify (the log's write) cannot.
    const depth = 20_000;
    const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    // Every agent of the item reports the same deep result, then says it is done.
    scratch.model.enqueue(
      ...Array.from({ length: 8 }, () => rawReport(() => deep)),
      ...Array.from({ length: 8 }, () => ({ kind: 'response' as const, match: isWorker, items: [{ type: 'message' as const, text: 'reported' }] })),
    );
    let jobId = '';
    const summary = await runJob(runtime, {
      csv_path: 'in.csv',
      instruction: 'Do {name}',
      output_csv_path: 'out.csv',
      max_attempts: 3,
      config: { cwd: scratch.workspace },
      onStart: (job) => (jobId = job.jobId),
    });
    const starts = jobLog(scratch.home, jobId).filter((r) => r.type === 'item_started').length;
    const answer = reportAnswer('row-1') ?? '';
    // The agent hears why its result was refused (not "Maximum call stack size exceeded").
    expect(answer).toMatch(/nest|deep/i);
    // The item gets at most its max_attempts agents, and the job ends with the item failed.
    expect(starts).toBeLessThanOrEqual(3);
    expect(summary).toMatchObject({ status: 'completed', failed_items: 1 });
  });
});

describe('placeholders', () => {
  it("refuses, before any agent starts, an instruction whose placeholders multiply a row's value past what a task can hold", async () => {
    runtime = createRuntime({ baseURL: scratch.model.url, apiKey: 'k', home: scratch.home, cwd: scratch.workspace });
    // A 1 MiB cell (well within the 16 MiB input limit) and a 1.8 KB instruction naming it 600
    // times: each item's task would be 600 MiB of text, more than a JavaScript string can hold.
    await writeText(scratch.workspace, 'in.csv', `a\n${'x'.repeat(1024 * 1024)}\n`);
    const instruction = '{a}'.repeat(600);
    const outcome = await runJob(runtime, { csv_path: 'in.csv', instruction, output_csv_path: 'out.csv', config: { cwd: scratch.workspace } }).then(
      (summary) => summary,
      (error: unknown) => error,
    );
    expect(outcome).toBeInstanceOf(JobInputError);
    expect((outcome as Error).message).toMatch(/instruction/);
    expect(scratch.model.requests).toEqual([]);
  });
});

describe('formula injection in a CSV output', () => {
  it("makes a JSON Lines input's values inert when the output is CSV: no spreadsheet would run them in the input", async () => {
    const spec = {
      ...testJobSpec({ jobId: 'jsonl-to-csv', dir: scratch.workspace, rows: ['=HYPERLINK("http://127.0.0.1/x?"&A1,"click")'] }),
      input_path: join(scratch.workspace, 'in.jsonl'),
      input_format: 'jsonl' as const,
      output_format: 'csv' as const,
    };
    const state = replay([{ type: 'job_created', at: new Date().toISOString(), job: spec }]);
    for (const item of state.items.values()) item.status = 'cancelled';
    await writeJobOutput(state);
    const rows = readCsv(spec.output_path);
    expect(rows[0]!.a!.startsWith('=')).toBe(false);
  });
});

async function untilDone(events: AsyncIterator<Event>, turnId: string): Promise<void> {
  for (;;) {
    const { value, done } = await events.next();
    if (done) return;
    if (value.id === turnId && (value.msg.type === 'task_complete' || value.msg.type === 'turn_aborted')) return;
  }
}
