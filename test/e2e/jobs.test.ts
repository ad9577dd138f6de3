import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { inputItems, inputTexts, mentions, outputFor } from '../../testing/requests.js';
import { waitFor } from '../support/wait.js';
import {
  doneStep,
  isWorker,
  jobLog,
  mostOpenAgents,
  progressEvents,
  readCsv,
  readCsvHeader,
  readJsonl,
  reportStep,
  spawnJobStep,
  task,
  workerFirst,
  writeText,
} from './jobs-support.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});

afterEach(() => finishE2E({ model, server, workspace }));

const isParent = (marker: string) => (r: RecordedRequest) => mentions(r, marker) && !isWorker(r);
const lastCallIs = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;
const say = (text: string, match: (r: RecordedRequest) => boolean): ScriptStep => ({ kind: 'response', match, items: [{ type: 'message', text }] });

/** Run one parent turn whose model calls spawn_agents_on_csv with `args`; returns the call's output, parsed when it is JSON. */
async function runJobTurn(parent: string, marker: string, args: Record<string, unknown>): Promise<{ text: string; json: Record<string, unknown> | null }> {
  const callId = `job-${marker.replaceAll(' ', '-')}`;
  model.enqueue(spawnJobStep(isParent(marker), args, callId), say(`${marker} over`, lastCallIs(callId)));
  await server.turn(parent, marker);
  const request = model.requests.find((r) => outputFor(r, callId) !== undefined);
  const text = request ? outputFor(request, callId)! : '';
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // an error message
  }
  return { text, json };
}

describe('agent jobs', () => {
  it('runs 20 rows, 4 at a time, each as its own sub-agent, and writes every result', async () => {
    const cities = Array.from({ length: 20 }, (_, i) => `City ${i + 1}`);
    await writeText(workspace, 'cities.csv', `city,country\n${cities.map((c, i) => `"${c}",C${i % 3}`).join('\n')}\n`);
    const output = join(workspace, 'out.csv');
    // The first four tasks are held until all four have arrived: they ran at the same time.
    let waiting: (() => void)[] = [];
    const held: ScriptStep[] = Array.from({ length: 4 }, () => ({
      kind: 'reply',
      match: workerFirst,
      handler: async (r) => {
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          if (waiting.length === 4) for (const go of waiting.splice(0)) go();
        });
        return (
          reportStep((row) => ({ upper: String(row.city).toUpperCase(), length: String(row.city).length })) as { handler: (r: RecordedRequest) => ScriptStep }
        ).handler(r);
      },
    }));
    // The other sixteen wait until the client has seen progress with items done and an ETA:
    // on a fast machine the whole job could otherwise end within one progress interval.
    const progressShown = () =>
      server.events.some((e) => e.msg.type === 'agent_job_progress' && e.msg.status === 'running' && e.msg.completed > 0 && e.msg.eta_ms !== null);
    const later: ScriptStep[] = Array.from({ length: 16 }, () => ({
      kind: 'reply',
      match: workerFirst,
      handler: async (r) => {
        await waitFor(progressShown, 'a progress event with items done');
        return (
          reportStep((row) => ({ upper: String(row.city).toUpperCase(), length: String(row.city).length })) as { handler: (r: RecordedRequest) => ScriptStep }
        ).handler(r);
      },
    }));
    model.enqueue(...held, ...later, ...Array.from({ length: 20 }, doneStep));
    const parent = await server.newSession({ cwd: workspace });
    const { json } = await runJobTurn(parent, 'run the city job', {
      csv_path: 'cities.csv',
      instruction: 'Describe {city} in {country}.',
      max_concurrency: 4,
      output_csv_path: output,
      output_schema: { type: 'object', properties: { upper: { type: 'string' }, length: { type: 'integer' } }, required: ['upper', 'length'] },
    });
    waiting = [];
    expect(json).toMatchObject({ status: 'completed', total_items: 20, completed_items: 20, failed_items: 0, output_csv_path: output, job_error: null });

    // Each rendered instruction reached the model once, as a task of its own agent.
    const firsts = model.requests.filter(workerFirst);
    expect(firsts).toHaveLength(20);
    for (const [i, city] of cities.entries()) {
      const rendered = `Describe ${city} in C${i % 3}.`;
      expect(firsts.filter((r) => inputTexts(r).some((t) => t.includes(rendered)))).toHaveLength(1);
    }
    expect(new Set(firsts.map((r) => task(r).itemId))).toEqual(new Set(cities.map((_, i) => `row-${i + 1}`)));
    // Never more than four at once, and four did run together.
    expect(mostOpenAgents(server, parent)).toBe(4);
    const children = server.events.filter((e) => e.msg.type === 'session_configured' && e.msg.parent_session_id === parent);
    expect(children).toHaveLength(20);

    // The output: input columns, status, the result's properties, error; rows in input order.
    expect(readCsvHeader(output)).toEqual(['city', 'country', 'status', 'upper', 'length', 'error']);
    const rows = readCsv(output);
    expect(rows.map((r) => r.city)).toEqual(cities);
    for (const row of rows) expect(row).toMatchObject({ status: 'completed', upper: row.city!.toUpperCase(), length: String(row.city!.length), error: '' });
    expect(readdirSync(workspace).filter((n) => n.endsWith('.tmp'))).toEqual([]);

    // Progress on the parent's stream: from nothing done to all done, never more than four running.
    const progress = progressEvents(server, parent);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress[0]).toMatchObject({ total: 20, completed: 0, failed: 0, status: 'running' });
    expect(progress.at(-1)).toMatchObject({ total: 20, completed: 20, failed: 0, running: 0, pending: 0, status: 'completed', eta_ms: 0 });
    for (const [i, p] of progress.entries()) {
      expect(p.running).toBeLessThanOrEqual(4);
      expect(p.pending + p.running + p.completed + p.failed).toBe(20);
      if (i > 0) expect(p.completed).toBeGreaterThanOrEqual(progress[i - 1]!.completed);
    }
    expect(progress.some((p) => p.status === 'running' && p.completed > 0 && p.eta_ms !== null)).toBe(true);

    // The log holds exactly one result per item.
    const jobId = String(json!.job_id);
    const results = jobLog(server.home, jobId).filter((r) => r.type === 'item_result');
    expect(results).toHaveLength(20);
    expect(new Set(results.map((r) => r.item_id)).size).toBe(20);
    expect(existsSync(join(server.home, 'jobs', 'open'))).toBe(true);
    expect(readdirSync(join(server.home, 'jobs', 'open'))).toEqual([]);
  });

  it("keeps within the tree's agent limits: a full tree makes items wait, no depth left fails the job", async () => {
    await writeText(workspace, 'six.csv', 'name\na\nb\nc\nd\ne\nf\n');
    model.enqueue(...Array.from({ length: 6 }, () => reportStep((row) => ({ name: row.name }), { delayMs: 20 })), ...Array.from({ length: 6 }, doneStep));
    const narrow = await server.newSession({ cwd: workspace, agent_max_threads: 2 });
    const { json } = await runJobTurn(narrow, 'run the narrow job', { csv_path: 'six.csv', instruction: 'Name {name}', max_concurrency: 4 });
    expect(json).toMatchObject({ status: 'completed', completed_items: 6, failed_items: 0 });
    expect(mostOpenAgents(server, narrow)).toBe(2);

    const shallow = await server.newSession({ cwd: workspace, agent_max_depth: 0 });
    const { json: failed } = await runJobTurn(shallow, 'run the shallow job', {
      csv_path: 'six.csv',
      instruction: 'Name {name}',
      output_csv_path: 'shallow.csv',
    });
    expect(failed).toMatchObject({ status: 'failed', completed_items: 0, cancelled_items: 6, job_error: expect.stringMatching(/agent_max_depth is 0/) });
    expect(readCsv(join(workspace, 'shallow.csv')).map((r) => r.status)).toEqual(Array.from({ length: 6 }, () => 'cancelled'));
  });

  it('refuses bad input with an error naming what was wrong, and writes nothing', async () => {
    await writeText(workspace, 'empty.csv', '');
    await writeText(workspace, 'dupe.csv', 'name,size,name\na,1,b\n');
    await writeText(workspace, 'ragged.csv', 'name,size\na,1\n"b",2,extra\n');
    await writeText(workspace, 'ok.csv', 'name,size\na,1\nb,2\n');
    await writeText(workspace, 'bad.jsonl', '{"name":"a"}\n[1,2]\n');
    const parent = await server.newSession({ cwd: workspace });
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['missing file', { csv_path: 'missing.csv', instruction: 'Do {name}' }, /cannot read csv_path .*missing\.csv: no such file/],
      ['no header', { csv_path: 'empty.csv', instruction: 'Do {name}' }, /empty\.csv has no header row/],
      ['duplicate headers', { csv_path: 'dupe.csv', instruction: 'Do {name}' }, /names column "name" twice \(columns 1 and 3\)/],
      ['ragged rows', { csv_path: 'ragged.csv', instruction: 'Do {name}' }, /row 2 \(ending on line 3\) has 3 fields, the header has 2/],
      [
        'id column missing',
        { csv_path: 'ok.csv', instruction: 'Do {name}', id_column: 'id' },
        /id_column "id" is not a column of .*ok\.csv; its columns are "name", "size"/,
      ],
      ['empty instruction', { csv_path: 'ok.csv', instruction: '   ' }, /instruction is empty/],
      ['unknown placeholder', { csv_path: 'ok.csv', instruction: 'Do {name} with {colour}' }, /not a column: \{colour\}; the columns are "name", "size"/],
      ['not a JSON object', { csv_path: 'bad.jsonl', instruction: 'Do {name}' }, /bad\.jsonl: line 2 is not a JSON object/],
      ['bad schema', { csv_path: 'ok.csv', instruction: 'Do {name}', output_schema: { type: 'bogus' } }, /output_schema is not a JSON Schema/],
      ['output over the input', { csv_path: 'ok.csv', instruction: 'Do {name}', output_csv_path: 'ok.csv' }, /is the input file/],
    ];
    for (const [what, args, expected] of cases) {
      const { text, json } = await runJobTurn(parent, `bad input ${what}`, args);
      expect(json, what).toBeNull();
      expect(text, what).toMatch(expected);
    }
    expect(model.requests.filter(isWorker)).toEqual([]);
    expect(server.events.filter((e) => e.msg.type === 'session_configured')).toHaveLength(1);
    expect(existsSync(join(server.home, 'jobs'))).toBe(false);
    expect(readdirSync(workspace).sort()).toEqual(['bad.jsonl', 'dupe.csv', 'empty.csv', 'ok.csv', 'ragged.csv']);
  });

  it("gives every item's agent the role agent_type names, and refuses an unknown role", async () => {
    await writeText(workspace, 'files.csv', 'file\na.js\nb.js\n');
    const grader = { description: 'Grades one file.', instructions: 'Grade the file strictly.', sandbox_policy: 'read-only' };
    const parent = await server.newSession({ cwd: workspace, agent_roles: { grader } });
    const unknown = await runJobTurn(parent, 'unknown role', { csv_path: 'files.csv', instruction: 'Grade {file}', agent_type: 'judge' });
    expect(unknown.text).toMatch(/unknown agent_type "judge"; the roles are: default, explorer, worker, grader/);
    expect(existsSync(join(server.home, 'jobs'))).toBe(false);
    model.enqueue(
      reportStep((row) => ({ grade: `A for ${String(row.file)}` })),
      reportStep((row) => ({ grade: `A for ${String(row.file)}` })),
      doneStep(),
      doneStep(),
    );
    const { json } = await runJobTurn(parent, 'graded job', { csv_path: 'files.csv', instruction: 'Grade {file}', agent_type: 'grader' });
    expect(json).toMatchObject({ status: 'completed', completed_items: 2 });
    const workers = model.requests.filter(isWorker);
    expect(workers.length).toBeGreaterThanOrEqual(2);
    for (const request of workers) expect(JSON.stringify(inputItems(request).filter((i) => i.role === 'developer'))).toContain('Grade the file strictly.');
    const children = server.events.filter((e) => e.msg.type === 'session_configured' && e.msg.parent_session_id === parent);
    expect(children.map((e) => e.msg)).toEqual([
      expect.objectContaining({ sandbox_policy: expect.objectContaining({ mode: 'read-only' }) }),
      expect.objectContaining({ sandbox_policy: expect.objectContaining({ mode: 'read-only' }) }),
    ]);
    expect(server.events.filter((e) => e.msg.type === 'agent_spawned').map((e) => (e.msg.type === 'agent_spawned' ? e.msg.role : null))).toEqual([
      'grader',
      'grader',
    ]);
  });

  it('reads RFC 4180 CSV (BOM, quotes, embedded newlines), suffixes repeated ids and writes JSON Lines', async () => {
    const csv = '\uFEFFid,text\r\nx,"a, ""quoted"" one"\r\nx,"two\r\nlines"\r\ny,plain\r\n\r\nx,last\r\n';
    await writeText(workspace, 'in.csv', csv);
    model.enqueue(...Array.from({ length: 4 }, () => reportStep((row) => ({ echo: row.text }))), ...Array.from({ length: 4 }, doneStep));
    const parent = await server.newSession({ cwd: workspace });
    const { json } = await runJobTurn(parent, 'run the quoting job', {
      csv_path: 'in.csv',
      instruction: 'Echo <{text}> as {{"echo": …}}',
      id_column: 'id',
      output_csv_path: 'out.jsonl',
    });
    expect(json).toMatchObject({ status: 'completed', completed_items: 4, failed_items: 0 });
    const firsts = model.requests.filter(workerFirst);
    expect(firsts.map((r) => task(r).itemId).sort()).toEqual(['x', 'x-2', 'x-3', 'y']);
    const texts = firsts.map((r) => task(r).text);
    expect(texts.some((t) => t.includes('Echo <a, "quoted" one> as {"echo": …}'))).toBe(true);
    expect(texts.some((t) => t.includes('Echo <two\r\nlines>'))).toBe(true);
    const rows = readJsonl(join(workspace, 'out.jsonl'));
    expect(rows).toEqual([
      { id: 'x', text: 'a, "quoted" one', status: 'completed', result: { echo: 'a, "quoted" one' }, error: null },
      { id: 'x', text: 'two\r\nlines', status: 'completed', result: { echo: 'two\r\nlines' }, error: null },
      { id: 'y', text: 'plain', status: 'completed', result: { echo: 'plain' }, error: null },
      { id: 'x', text: 'last', status: 'completed', result: { echo: 'last' }, error: null },
    ]);
  });

  it('sends a result that does not match output_schema back once, then fails the item with the validation error', async () => {
    await writeText(workspace, 'two.csv', 'name\nstubborn\nlearner\n');
    const of = (name: string) => (r: RecordedRequest) => isWorker(r) && task(r).row.name === name;
    const reports = (r: RecordedRequest) => inputItems(r).filter((i) => i.type === 'function_call_output').length;
    model.enqueue(
      reportStep(() => ({ n: 'one' }), { match: (r) => of('stubborn')(r) && reports(r) === 0, callId: 's1' }),
      reportStep(() => ({ n: 'still one' }), { match: (r) => of('stubborn')(r) && reports(r) === 1, callId: 's2' }),
      reportStep(() => ({ n: 'one' }), { match: (r) => of('learner')(r) && reports(r) === 0, callId: 'l1' }),
      reportStep(() => ({ n: 1 }), { match: (r) => of('learner')(r) && reports(r) === 1, callId: 'l2' }),
      say('gave up', (r) => of('stubborn')(r) && reports(r) === 2),
      say('done', (r) => of('learner')(r) && reports(r) === 2),
    );
    const parent = await server.newSession({ cwd: workspace });
    const schema = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] };
    const { json } = await runJobTurn(parent, 'run the schema job', {
      csv_path: 'two.csv',
      instruction: 'Count {name}',
      output_schema: schema,
      output_csv_path: 'out.csv',
    });
    expect(json).toMatchObject({ status: 'completed', completed_items: 1, failed_items: 1 });
    const failure = (json!.failed_item_errors as { item_id: string; last_error: string }[])[0]!;
    expect(failure.item_id).toBe('row-1');
    expect(failure.last_error).toMatch(/does not match output_schema: result\.n: .*expected number/);
    // Each agent was told once what was wrong with its first result.
    const told = (callId: string) => model.requests.find((r) => outputFor(r, callId) !== undefined);
    // Answered as every refusal is: JSON with accepted false and the reason.
    const answer = (callId: string) => JSON.parse(outputFor(told(callId)!, callId) ?? 'null') as { accepted: boolean; reason: string };
    expect(answer('s1')).toMatchObject({ accepted: false });
    expect(answer('s1').reason).toMatch(/does not match the job's output_schema \(result\.n: .*\)\. Call report_agent_job_result again/);
    expect(answer('l1')).toMatchObject({ accepted: false });
    expect(answer('s2')).toMatchObject({ accepted: false });
    expect(answer('s2').reason).toMatch(/refused again .* has failed/);
    expect(model.requests.filter((r) => of('stubborn')(r) && reports(r) === 0)).toHaveLength(1);
    const rows = readCsv(join(workspace, 'out.csv'));
    expect(rows.map((r) => [r.name, r.status, r.n])).toEqual([
      ['stubborn', 'failed', ''],
      ['learner', 'completed', '1'],
    ]);
    expect(rows[0]!.error).toMatch(/does not match output_schema/);
  });

  it('fails an item whose agent finishes without reporting, and does not run it again', async () => {
    await writeText(workspace, 'one.csv', 'name\nquiet\nloud\n');
    model.enqueue(
      say('I looked at it and I am done.', (r) => workerFirst(r) && task(r).row.name === 'quiet'),
      reportStep(() => ({ ok: true }), { match: (r) => workerFirst(r) && task(r).row.name === 'loud' }),
      doneStep(),
    );
    const parent = await server.newSession({ cwd: workspace });
    const { json } = await runJobTurn(parent, 'run the quiet job', { csv_path: 'one.csv', instruction: 'Check {name}' });
    expect(json).toMatchObject({ status: 'completed', completed_items: 1, failed_items: 1 });
    const failure = (json!.failed_item_errors as { item_id: string; last_error: string }[])[0]!;
    expect(failure).toMatchObject({
      item_id: 'row-1',
      last_error: 'the agent finished without calling report_agent_job_result (its last message: I looked at it and I am done.)',
    });
    expect(model.requests.filter((r) => workerFirst(r) && task(r).row.name === 'quiet')).toHaveLength(1);
    // The default output: next to the input, named after the job.
    const output = String(json!.output_csv_path);
    expect(output).toBe(join(workspace, `one.agent-job-${String(json!.job_id).slice(0, 8)}.csv`));
    expect(readCsv(output).map((r) => r.status)).toEqual(['failed', 'completed']);
  });

  it('fails an item that runs past max_runtime_seconds and stops its agent', async () => {
    await writeText(workspace, 'slow.csv', 'name\nsleepy\nquick\n');
    model.enqueue(
      { kind: 'hang', match: (r) => workerFirst(r) && task(r).row.name === 'sleepy' },
      reportStep(() => ({ ok: true })),
      doneStep(),
    );
    const parent = await server.newSession({ cwd: workspace });
    const { json } = await runJobTurn(parent, 'run the slow job', { csv_path: 'slow.csv', instruction: 'Wake {name}', max_runtime_seconds: 1 });
    expect(json).toMatchObject({ status: 'completed', completed_items: 1, failed_items: 1 });
    expect((json!.failed_item_errors as { last_error: string }[])[0]!.last_error).toBe(
      'the item ran past max_runtime_seconds (1 s) without reporting a result',
    );
    const hung = model.requests.find((r) => workerFirst(r) && task(r).row.name === 'sleepy')!;
    await waitFor(() => hung.disconnected, 'the hung request to be dropped');
    expect(model.requests.filter((r) => workerFirst(r) && task(r).row.name === 'sleepy')).toHaveLength(1);
  });

  it('runs an item again when its agent errors, up to three attempts', async () => {
    await writeText(workspace, 'flaky.csv', 'name\nbroken\nflaky\n');
    const refused = (name: string): ScriptStep => ({
      kind: 'http_error',
      match: (r) => workerFirst(r) && task(r).row.name === name,
      status: 401,
      body: { error: { message: `no key for ${name}` } },
    });
    model.enqueue(
      refused('broken'),
      refused('broken'),
      refused('broken'),
      refused('flaky'),
      reportStep(() => ({ ok: true })),
      doneStep(),
    );
    const parent = await server.newSession({ cwd: workspace });
    const { json } = await runJobTurn(parent, 'run the flaky job', { csv_path: 'flaky.csv', instruction: 'Try {name}', max_concurrency: 1 });
    expect(json).toMatchObject({ status: 'completed', completed_items: 1, failed_items: 1 });
    expect((json!.failed_item_errors as { last_error: string }[])[0]!.last_error).toMatch(/^its agent failed: .*no key for broken.* \(attempt 3 of 3\)$/);
    expect(model.requests.filter((r) => workerFirst(r) && task(r).row.name === 'broken')).toHaveLength(3);
    expect(model.requests.filter((r) => workerFirst(r) && task(r).row.name === 'flaky')).toHaveLength(2);
    const log = jobLog(server.home, String(json!.job_id));
    const of = (type: string, item: string) => log.filter((r) => r.type === type && r.item_id === item);
    expect(of('item_retry', 'row-1')).toHaveLength(2);
    expect(of('item_retry', 'row-2')).toHaveLength(1);
    expect(of('item_started', 'row-1').map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(of('item_started', 'row-2').map((r) => r.attempt)).toEqual([1, 2]);
    expect(of('item_failed', 'row-1')).toHaveLength(1);
    expect(of('item_result', 'row-2')).toHaveLength(1);
  });

  it('interrupting the parent cancels the job: its agents stop and the output says what was done', async () => {
    await writeText(workspace, 'stuck.csv', 'name\nfirst\nsecond\nthird\nfourth\n');
    model.enqueue(
      reportStep(() => ({ ok: true }), { match: (r) => workerFirst(r) && task(r).row.name === 'first' }),
      doneStep(),
      { kind: 'hang', match: (r) => workerFirst(r) && task(r).row.name === 'second' },
      { kind: 'hang', match: (r) => workerFirst(r) && task(r).row.name === 'third' },
      spawnJobStep(isParent('run the stuck job'), { csv_path: 'stuck.csv', instruction: 'Do {name}', max_concurrency: 2, output_csv_path: 'out.csv' }),
    );
    const parent = await server.newSession({ cwd: workspace });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'run the stuck job' }] }, parent);
    await waitFor(
      () => model.requests.filter((r) => workerFirst(r) && ['second', 'third'].includes(String(task(r).row.name))).length === 2,
      'two hanging items',
    );
    server.submit({ type: 'interrupt' }, parent);
    await server.waitForMsg('turn_aborted', { session: parent, id: turn });
    const last = await server.waitForMsg('agent_job_progress', { session: parent, where: (m) => m.status !== 'running' });
    expect(last.msg).toMatchObject({ status: 'cancelled', completed: 1, running: 0, pending: 0 });
    const rows = readCsv(join(workspace, 'out.csv'));
    expect(rows.map((r) => [r.name, r.status])).toEqual([
      ['first', 'completed'],
      ['second', 'cancelled'],
      ['third', 'cancelled'],
      ['fourth', 'cancelled'],
    ]);
    await waitFor(
      () => model.requests.filter((r) => workerFirst(r) && ['second', 'third'].includes(String(task(r).row.name))).every((r) => r.disconnected),
      'the hung requests to be dropped',
    );
    expect(model.requests.filter((r) => workerFirst(r) && task(r).row.name === 'fourth')).toEqual([]);
  });
});
