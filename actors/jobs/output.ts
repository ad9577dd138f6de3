import { randomUUID } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TroupeError } from '../../protocol/index.js';
import { cell, checkOutputPath } from './input.js';
import { resultColumns } from './schema.js';
import type { JobState } from './state.js';

/**
 * A job's results as a file: the input's columns, then `status`, the result (one column per
 * property of an object `output_schema`, and per other property a result has; else one
 * `result` column of JSON) and `error`. A name
 * already taken (by an input column, by troupe's `status` and `error` for a property) gets a
 * prefix (`result.<name>`, `job_status`). Written to a
 * temporary file in the same directory, fsync'd, then renamed over the target, so a reader
 * sees the old file or the whole new one.
 *
 * The job's agents worked in the directories around the output meanwhile: the path is checked
 * again first and must still resolve to where it was checked when the job started (its stored
 * real path), so a symbolic link put in its way sends the output nowhere else.
 *
 * In a CSV, the cells the models wrote (results, errors, the names of output_schema's
 * properties in the header) that a spreadsheet would take for a formula (=, +, -, @, a tab or a
 * carriage return first, and not a number) get a `'` first; so do the input's columns when the
 * input was JSON Lines, while a CSV input's are copied as they are (opening the output is then
 * no riskier than opening the input). JSON Lines output holds every value as is.
 */
export async function writeJobOutput(state: JobState): Promise<string> {
  const { spec } = state;
  const real = await checkOutputPath(spec.output_path, spec.input_path);
  if (real !== spec.output_path) {
    throw new JobOutputError(`${spec.output_path} now resolves to ${real}: a symbolic link was put in its way while the job ran, so nothing was written`);
  }
  const { columns, rows } = outputTable(state);
  // A CSV input's cells are copied as they were; a JSON Lines input was no spreadsheet, so its
  // values (and keys) are made inert like the models' cells.
  const copied = spec.input_format === 'csv' ? spec.columns.length : 0;
  const text =
    spec.output_format === 'jsonl'
      ? rows.map((row) => `${JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, row[i]])))}\n`).join('')
      : [columns, ...rows.map((row) => row.map(cell))]
          .map((fields) => `${fields.map((text, i) => csvField(i < copied ? text : inert(text))).join(',')}\n`)
          .join('');
  await writeAtomically(spec.output_path, text);
  return spec.output_path;
}

export class JobOutputError extends TroupeError {
  override readonly name = 'JobOutputError';
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A cell a spreadsheet would evaluate as a formula, made text with a leading `'` (OWASP's advice). */
function inert(text: string): string {
  return /^[=+\-@\t\r]/.test(text) && !NUMBER.test(text) ? `'${text}` : text;
}

/** The output's header and rows (values as they are; CSV turns them into text). */
export function outputTable(state: JobState): { columns: string[]; rows: unknown[][] } {
  const { spec } = state;
  const taken = new Set(spec.columns);
  // A name is taken as it is (JSON Lines) and as a CSV header shows it (`@x` as `'@x`).
  const clashes = (name: string) => taken.has(name) || taken.has(inert(name));
  const claim = (name: string, prefix: string): string => {
    let chosen = clashes(name) ? `${prefix}${name}` : name;
    for (let n = 2; clashes(chosen); n++) chosen = `${prefix}${name}_${n}`;
    taken.add(chosen).add(inert(chosen));
    return chosen;
  };
  // troupe's own columns first: a result property named `status` or `error` is the one renamed.
  const status = claim('status', 'job_');
  const error = claim('error', 'job_');
  const items = [...state.items.values()].sort((a, b) => a.spec.row_index - b.spec.row_index);
  const fields = resultFields(resultColumns(spec.output_schema), items);
  const resultNames = fields ? fields.map((f) => claim(f, 'result.')) : [claim('result', 'job_')];
  const columns = [...spec.columns, status, ...resultNames, error];
  const rows = items.map((item) => {
    const result = item.result;
    const resultValues = fields ? fields.map((f) => (result && Object.hasOwn(result, f) ? result[f] : undefined)) : [result ?? undefined];
    const shown = (v: unknown) => (v === undefined ? null : v);
    return [...spec.columns.map((c) => shown(item.spec.row[c])), item.status, ...resultValues.map(shown), item.error];
  });
  return { columns, rows };
}

/**
 * The result's columns when the schema has properties: those, then any other property a result
 * has (the schema allows them unless `additionalProperties` is false), in the order the rows
 * first show them, so that nothing an agent reported is left out of the file. Null: one
 * `result` column holds each result whole.
 */
function resultFields(properties: string[] | null, items: readonly { result: Record<string, unknown> | null }[]): string[] | null {
  if (properties === null) return null;
  const fields = new Set(properties);
  for (const { result } of items) for (const key of Object.keys(result ?? {})) fields.add(key);
  return [...fields];
}

/** RFC 4180: a field with a comma, quote, line break or edge spaces is quoted, quotes doubled. */
function csvField(text: string): string {
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomUUID().slice(0, 8)}.tmp`);
  // 'wx': never through something already there (a link planted under the temporary name).
  const file = await open(temp, 'wx');
  try {
    await file.writeFile(text);
    await file.sync();
  } catch (error) {
    await file.close();
    await rm(temp, { force: true });
    throw error;
  }
  await file.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // not every file system syncs directories
  } finally {
    await handle.close();
  }
}
