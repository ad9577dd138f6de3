import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { link, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { scratchDirectory } from './support/scratch-directory.js';
import { JobInputError, MAX_INPUT_BYTES, MAX_JOB_COLUMNS, MAX_JOB_ITEMS, MAX_VALUE_DEPTH, readJobInput, renderInstruction } from '../actors/jobs/input.js';
import { FileJobStore } from '../actors/jobs/store.js';
import { NatsJobStore } from '../actors/jobs/nats-store.js';
import { runJob } from '../actors/jobs/library.js';
import { connectRuntime } from '../actors/runtime.js';
import { natsServerWithConnection } from './support/nats-connection.js';
import { testJobSpec } from './support/job-spec.js';
import { writeJobOutput } from '../actors/jobs/output.js';
import { jobSpec, prepareJob, type JobRequest } from '../actors/jobs/prepare.js';
import { replay, type JobState } from '../actors/jobs/state.js';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';

// Hostile input files, instructions, schemas and limits: each is refused with a message naming
// what is wrong and nothing written, or read and written back correctly.

const scratch = scratchDirectory('troupe-jobs-inputs-');
const { file } = scratch;

const rowsOf = async (name: string, text: string) => (await readJobInput(await file(name, text), undefined)).items.map((i) => i.row);

const turn = buildTurnContext(settingsFromConfig({}, { model: 'm', cwd: '/', base_instructions: 'b' }), 't', {});

async function stateOf(request: JobRequest): Promise<JobState> {
  const prepared = await prepareJob(request, scratch.path);
  return replay([{ type: 'job_created', at: 'now', job: jobSpec(prepared, { sessionId: 's', callId: 'c', turn }) }]);
}

describe('hostile CSV input', () => {
  it('ends a row at CRLF, LF or CR alike when a file mixes them, and keeps line breaks inside quotes', async () => {
    // Edited on two systems: a Windows header, Unix rows, a lone CR.
    expect(await rowsOf('a.csv', 'name\r\na\nb\r\nc\rd\n')).toEqual([{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }]);
    expect(await rowsOf('b.csv', 'name\na\r\nb\n')).toEqual([{ name: 'a' }, { name: 'b' }]);
    expect(await rowsOf('c.csv', 'k,v\r\na,1\nb,2\r\n')).toEqual([
      { k: 'a', v: '1' },
      { k: 'b', v: '2' },
    ]);
    expect(await rowsOf('d.csv', '\uFEFF"k","v"\r\n1,"x\r\ny"\n2,"p\nq"\r\n')).toEqual([
      { k: '1', v: 'x\r\ny' },
      { k: '2', v: 'p\nq' },
    ]);
  });

  it('takes header names that differ only in case or spaces as different columns, and names with dots or spaces in placeholders', async () => {
    await file('in.csv', 'name,Name, name,a.b\nlower,upper,spaced,dotted\n');
    const prepared = await prepareJob({ csv_path: 'in.csv', instruction: '{name}|{Name}|{ name}|{a.b}|{{name}}' }, scratch.path);
    expect(prepared.input.columns).toEqual(['name', 'Name', ' name', 'a.b']);
    expect(renderInstruction(prepared.settings.instruction, prepared.input.items[0]!.row)).toBe('lower|upper|spaced|dotted|{name}');
  });

  it('takes exactly 10,000 rows, 1,000 columns and one field filling 16 MiB', async () => {
    expect(await readJobInput(await file('rows.csv', `n\n${'x\n'.repeat(MAX_JOB_ITEMS)}`), undefined)).toMatchObject({ items: { length: MAX_JOB_ITEMS } });
    const header = Array.from({ length: MAX_JOB_COLUMNS }, (_, i) => `c${i}`).join(',');
    expect((await readJobInput(await file('wide.csv', `${header}\n${'1,'.repeat(MAX_JOB_COLUMNS - 1)}1\n`), undefined)).columns).toHaveLength(MAX_JOB_COLUMNS);
    const long = await readJobInput(await file('long.csv', `name\n${'x'.repeat(MAX_INPUT_BYTES - 'name\n'.length)}`), undefined);
    expect((long.items[0]!.row.name as string).length).toBe(MAX_INPUT_BYTES - 5);
  });

  it('refuses a column named __proto__, whose values a stored job would lose, naming it', async () => {
    // A JSON record's parse drops the key: the item would run with "{__proto__}" unfilled.
    for (const [name, text] of [
      ['proto.csv', 'id,__proto__\n1,x\n'],
      ['proto.jsonl', '{"id":1,"__proto__":{"polluted":true}}\n'],
    ] as const) {
      const read = readJobInput(await file(name, text), undefined);
      await expect(read).rejects.toThrow(JobInputError);
      await expect(read).rejects.toThrow(`${join(scratch.path, name)} has a column named "__proto__", which agent jobs cannot carry; rename it`);
    }
    // Only the column's name: a nested key, or "constructor", is an ordinary value.
    const input = await readJobInput(await file('ok.jsonl', '{"constructor":"c","v":{"__proto__":1}}\n'), undefined);
    expect(renderInstruction('{constructor} {v}', input.items[0]!.row)).toBe('c {"__proto__":1}');
    // A result's property of that name is dropped likewise, when report_agent_job_result's arguments are parsed.
    const schema = JSON.parse('{"type":"object","properties":{"__proto__":{"type":"string"}},"required":["__proto__"]}') as Record<string, unknown>;
    await expect(prepareJob({ csv_path: 'ok.jsonl', instruction: '{v}', output_schema: schema }, scratch.path)).rejects.toThrow(
      'output_schema has a property named "__proto__", which a result cannot carry; rename it',
    );
  });
});

describe('hostile JSON Lines input', () => {
  it('refuses a line nesting deeper than 128 levels, which could not be stored, and takes one at 128', async () => {
    const nested = (levels: number) => `{"a":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}\n`;
    await file('deep.jsonl', nested(100_000));
    const prepare = prepareJob({ csv_path: 'deep.jsonl', instruction: '{a}', output_csv_path: 'out.jsonl' }, scratch.path);
    await expect(prepare).rejects.toThrow(JobInputError);
    await expect(prepare).rejects.toThrow(`${join(scratch.path, 'deep.jsonl')}: line 1 nests values deeper than ${MAX_VALUE_DEPTH} levels`);
    await file('edge.jsonl', nested(MAX_VALUE_DEPTH));
    const prepared = await prepareJob({ csv_path: 'edge.jsonl', instruction: '{a}' }, scratch.path);
    const store = new FileJobStore(join(scratch.path, 'home'));
    await (await store.create(jobSpec(prepared, { sessionId: 's', callId: 'c', turn }))).close();
    expect((await store.read(prepared.jobId))?.items.get('row-1')?.spec.row).toEqual(prepared.input.items[0]!.row);
  });
});

describe('hostile limits and schemas', () => {
  it.each([
    ['max_concurrency', -1],
    ['max_concurrency', 2.5],
    ['max_concurrency', Number.POSITIVE_INFINITY],
    ['max_runtime_seconds', 0],
    ['max_runtime_seconds', Number.NaN],
  ] as const)('refuses %s %s, writing nothing', async (name, value) => {
    await file('in.csv', 'name\na\n');
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'out.csv', [name]: value }, scratch.path)).rejects.toThrow(
      `${name} must be a whole number of at least 1, got ${value}`,
    );
    expect(await readdir(scratch.path)).toEqual(['in.csv']);
  });

  it('refuses a "pattern" that is not a string: the schema library turns it into a regular expression all the same', async () => {
    await file('in.csv', 'name\na\n');
    const schema = { type: 'object', properties: { a: { type: 'string', pattern: ['^(a+)+$'] } } };
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_schema: schema }, scratch.path)).rejects.toThrow(
      /output_schema uses "pattern" at output_schema\.properties\.a: troupe does not match results against regular expressions/,
    );
  });
});

describe('hostile output', () => {
  it("keeps troupe's status and error columns under their names when output_schema has properties named so", async () => {
    await file('in.csv', 'name\na\n');
    const state = await stateOf({
      csv_path: 'in.csv',
      instruction: '{name}',
      output_csv_path: 'out.csv',
      output_schema: { type: 'object', properties: { status: {}, error: {} } },
    });
    const item = state.items.get('row-1')!;
    item.status = 'failed';
    item.result = { status: 'fine', error: 'none' };
    item.error = 'the agent stopped without reporting';
    await writeJobOutput(state);
    expect(parse(await readFile(join(scratch.path, 'out.csv'), 'utf8'), { columns: true })).toEqual([
      { name: 'a', status: 'failed', 'result.status': 'fine', 'result.error': 'none', error: 'the agent stopped without reporting' },
    ]);
  });

  it('writes no header name twice once the names the agents chose are made inert for spreadsheets', async () => {
    await file('in.csv', "'@x\n1\n");
    const schema = { type: 'object', properties: { '@x': {}, "'@y": {}, '@y': {} } };
    const state = await stateOf({ csv_path: 'in.csv', instruction: 'go', output_csv_path: 'out.csv', output_schema: schema });
    state.items.get('row-1')!.status = 'completed';
    state.items.get('row-1')!.result = { '@x': 'X', "'@y": 'Y1', '@y': 'Y2' };
    await writeJobOutput(state);
    const [header, row]: string[][] = parse(await readFile(join(scratch.path, 'out.csv'), 'utf8'), { columns: false });
    expect(new Set(header).size).toBe(header!.length);
    expect(Object.fromEntries(header!.map((h, i) => [h, row![i]]))).toEqual({
      "'@x": '1',
      status: 'completed',
      'result.@x': 'X',
      "'@y": 'Y1',
      'result.@y': 'Y2',
      error: '',
    });
  });

  it('writes over a hard link to the input without touching the input; refuses a FIFO or a directory', async () => {
    const input = await file('in.csv', 'name\na\n');
    await link(input, join(scratch.path, 'same.csv'));
    const state = await stateOf({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'same.csv' });
    state.items.get('row-1')!.status = 'completed';
    state.items.get('row-1')!.result = { ok: true };
    await writeJobOutput(state);
    expect(await readFile(input, 'utf8')).toBe('name\na\n');
    expect(parse(await readFile(join(scratch.path, 'same.csv'), 'utf8'), { columns: true })).toEqual([
      { name: 'a', status: 'completed', result: '{"ok":true}', error: '' },
    ]);

    execFileSync('mkfifo', [join(scratch.path, 'fifo.csv')]);
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'fifo.csv' }, scratch.path)).rejects.toThrow(
      `output_csv_path ${join(scratch.path, 'fifo.csv')} is not a regular file`,
    );
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: `${scratch.path}/` }, scratch.path)).rejects.toThrow(
      `output_csv_path ${scratch.path}/ is a directory`,
    );
  });
});

describe('a job larger than a NATS message may be', { timeout: 30_000 }, () => {
  const nats = natsServerWithConnection();

  // An input well within 16 MiB, whose rows do not fit the server's max_payload (1 MiB here).
  const rows = Array.from({ length: 2000 }, (_, i) => `${i}-${'x'.repeat(1000)}`);

  it('is refused by the NATS job store with a JobInputError naming the limit, and nothing is stored', async () => {
    const store = await NatsJobStore.open(nats.connection, `big${randomUUID().slice(0, 8)}`);
    const jobId = randomUUID();
    const create = store.create(testJobSpec({ jobId, dir: scratch.path, rows }));
    await expect(create).rejects.toThrow(JobInputError);
    await expect(create).rejects.toThrow(/^the job is \d+ bytes as a NATS message, more than the 1048576 its server takes \(max_payload\)/);
    expect(await store.read(jobId)).toBeNull();
  });

  it('is refused by runJob before it opens a session for it', async () => {
    // No worker runs here: asking for a session would fail with "no host is available".
    await file('big.csv', `name\n${rows.join('\n')}\n`);
    const namespace = `big${randomUUID().slice(0, 8)}`;
    const runtime = await connectRuntime({ nats: nats.url, namespace });
    try {
      const run = runJob(runtime, { csv_path: 'big.csv', instruction: '{name}', output_csv_path: 'out.csv', config: { cwd: scratch.path } });
      await expect(run).rejects.toThrow(JobInputError);
      await expect(run).rejects.toThrow(/more than the 1048576 its server takes \(max_payload\)/);
    } finally {
      await runtime.close();
    }
    expect(await readdir(scratch.path)).toEqual(['big.csv']);
  });
});
