import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { scratchDirectory } from './support/scratch-directory.js';
import { checkInstruction, JobInputError, placeholders, readJobInput, renderInstruction } from '../actors/jobs/input.js';
import { outputTable, writeJobOutput } from '../actors/jobs/output.js';
import { jobSpec, prepareJob } from '../actors/jobs/prepare.js';
import { replay } from '../actors/jobs/state.js';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';

const scratch = scratchDirectory('troupe-jobs-');
const { file } = scratch;

const turn = buildTurnContext(settingsFromConfig({}, { model: 'm', cwd: '/', base_instructions: 'b' }), 't1', {});

describe('job input', () => {
  it('reads CSV as RFC 4180: quotes, doubled quotes, embedded newlines, CRLF, a BOM; blank rows are skipped', async () => {
    const input = await readJobInput(await file('a.csv', '\uFEFFk,v\r\n1,"x, ""y"""\r\n\r\n,\r\n2,"multi\nline"\r\n'), undefined);
    expect(input.columns).toEqual(['k', 'v']);
    expect(input.items.map((i) => [i.item_id, i.row])).toEqual([
      ['row-1', { k: '1', v: 'x, "y"' }],
      ['row-2', { k: '2', v: 'multi\nline' }],
    ]);
  });

  it('names items by id_column, suffixing repeats as Codex does, and falls back to row-N for blank ids', async () => {
    const input = await readJobInput(await file('ids.csv', 'id,v\na,1\na,2\na-2,3\n ,4\na,5\n'), 'id');
    expect(input.items.map((i) => [i.item_id, i.source_id])).toEqual([
      ['a', 'a'],
      ['a-2', 'a'],
      ['a-2-2', 'a-2'],
      ['row-4', null],
      ['a-3', 'a'],
    ]);
  });

  it.each([
    ['an unclosed quote', 'a,b\n"x,1\n', /is not valid CSV: Quote Not Closed/],
    ['a header with an empty name', 'a,,b\n1,2,3\n', /column 2 of the header row has no name/],
    ['a header and no rows', 'a,b\n', /has a header row but no rows/],
    ['only blank lines', '\n\n', /has no header row/],
    ['a short row', 'a,b\n1\n', /row 1 \(ending on line 2\) has 1 field, the header has 2/],
  ])('refuses CSV with %s', async (_what, text, expected) => {
    const read = readJobInput(await file('bad.csv', text), undefined);
    await expect(read).rejects.toThrow(JobInputError);
    await expect(read).rejects.toThrow(expected);
  });

  it('reads JSON Lines, keeping values as they are; a placeholder a row lacks is an error', async () => {
    const input = await readJobInput(await file('a.jsonl', '{"n":1,"tags":["x"]}\n\n{"n":2,"extra":true}\n'), undefined);
    expect(input.columns).toEqual(['n', 'tags', 'extra']);
    expect(renderInstruction('n={n} tags={tags}', input.items[0]!.row)).toBe('n=1 tags=["x"]');
    expect(() => checkInstruction('{tags}', input)).toThrow('row 2 has no "tags", which the instruction uses');
    await expect(readJobInput(await file('b.jsonl', '{"n":1}\nnot json\n'), undefined)).rejects.toThrow(/line 2 is not JSON/);
    await expect(readJobInput(await file('c.jsonl', '\n'), undefined)).rejects.toThrow(/has no rows/);
  });

  it('renders placeholders; {{ and }} are literal braces and JSON in the instruction is left alone', () => {
    expect(placeholders('{a} {{b}} {"c": 1} {a} {d e}')).toEqual(['a', 'd e']);
    expect(renderInstruction('{a} {{b}} {"c": 1} {d e} {missing}', { a: 'A', 'd e': 'DE' })).toBe('A {b} {"c": 1} DE {missing}');
  });

  it('prepares nothing for a bad request, and checks the output path', async () => {
    await file('in.csv', 'a\n1\n');
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{a}', max_concurrency: 0 }, scratch.path)).rejects.toThrow(
      'max_concurrency must be a whole number of at least 1',
    );
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{a}', output_csv_path: 'no/such/dir/out.csv' }, scratch.path)).rejects.toThrow(
      /the directory .*no\/such\/dir does not exist/,
    );
    const prepared = await prepareJob({ csv_path: 'in.csv', instruction: '{a}', max_concurrency: 500 }, scratch.path);
    expect(prepared.concurrency).toBe(64);
    expect(prepared.outputPath).toBe(join(scratch.path, `in.agent-job-${prepared.jobId.slice(0, 8)}.csv`));
  });
});

describe('job output', () => {
  it('flattens an object schema into columns, renaming those an input column already has, and quotes CSV as RFC 4180', async () => {
    await file('in.csv', 'status,note\nx,"a,b"\ny,plain\n');
    const prepared = await prepareJob(
      {
        csv_path: 'in.csv',
        instruction: '{note}',
        output_csv_path: 'out.csv',
        output_schema: { type: 'object', properties: { note: { type: 'string' }, score: { type: 'number' } } },
      },
      scratch.path,
    );
    const state = replay([{ type: 'job_created', at: 'now', job: jobSpec(prepared, { sessionId: 's', callId: 'c', turn }) }]);
    state.items.get('row-1')!.status = 'completed';
    state.items.get('row-1')!.result = { note: 'line one\nline "two"', score: 1.5 };
    state.items.get('row-2')!.status = 'failed';
    state.items.get('row-2')!.error = 'it broke, badly';
    expect(outputTable(state).columns).toEqual(['status', 'note', 'job_status', 'result.note', 'score', 'error']);
    await writeJobOutput(state);
    const rows = parse<Record<string, string>>(await readFile(join(scratch.path, 'out.csv'), 'utf8'), { columns: true });
    expect(rows).toEqual([
      { status: 'x', note: 'a,b', job_status: 'completed', 'result.note': 'line one\nline "two"', score: '1.5', error: '' },
      { status: 'y', note: 'plain', job_status: 'failed', 'result.note': '', score: '', error: 'it broke, badly' },
    ]);
  });

  it("keeps a result's properties the schema allows but does not name, in columns after the schema's, in the order rows first show them", async () => {
    await file('in.csv', 'name\na\nb\nc\n');
    const schema = { type: 'object', properties: { score: { type: 'number' } }, required: ['score'] };
    const prepared = await prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'out.csv', output_schema: schema }, scratch.path);
    const state = replay([{ type: 'job_created', at: 'now', job: jobSpec(prepared, { sessionId: 's', callId: 'c', turn }) }]);
    const results: Record<string, unknown>[] = [{ score: 1, why: 'short' }, { score: 2 }, { score: 3, name: 'C', why: 'long' }];
    results.forEach((result, i) => Object.assign(state.items.get(`row-${i + 1}`)!, { status: 'completed', result }));
    await writeJobOutput(state);
    const rows = parse<Record<string, string>>(await readFile(join(scratch.path, 'out.csv'), 'utf8'), { columns: true });
    expect(rows).toEqual([
      { name: 'a', status: 'completed', score: '1', why: 'short', 'result.name': '', error: '' },
      { name: 'b', status: 'completed', score: '2', why: '', 'result.name': '', error: '' },
      { name: 'c', status: 'completed', score: '3', why: 'long', 'result.name': 'C', error: '' },
    ]);
  });
});
