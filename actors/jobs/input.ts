import { constants } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve, sep } from 'node:path';
import { realPathOf } from '../../lib/sandbox/index.js';
import type { FileFormat, JobItemSpec } from './records.js';
import { TroupeError } from '../../protocol/index.js';

/**
 * A job's input read and checked before anything is written: the rows of a CSV (RFC 4180, by
 * csv-parse: quoted fields, embedded newlines, a BOM) or a JSON Lines file, their ids, and the
 * instruction's placeholders. Every problem is a JobInputError naming what was wrong.
 */
export class JobInputError extends TroupeError {
  override readonly name = 'JobInputError';
  override readonly code = 'bad_request';
}

export interface JobInput {
  readonly path: string;
  readonly format: FileFormat;
  readonly columns: readonly string[];
  readonly items: readonly JobItemSpec[];
}

/** CSV unless the name says JSON Lines. */
export function formatOf(path: string): FileFormat {
  const ext = extname(path).toLowerCase();
  return ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : 'csv';
}

export function resolvePath(path: string, cwd: string): string {
  return isAbsolute(path) ? path : resolve(cwd, path);
}

/** The largest input read: every row becomes an agent, and the whole file is parsed in memory. */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;
/** The most rows (items) and columns a job may have. */
export const MAX_JOB_ITEMS = 10_000;
export const MAX_JOB_COLUMNS = 1_000;
/**
 * How deep a JSON Lines value may nest (serde_json's limit, which Codex reads them with): a row
 * is written out with JSON.stringify, which recurses and overflows the stack on a line such as
 * `{"a":[[[[…]]]]}` that JSON.parse read.
 */
export const MAX_VALUE_DEPTH = 128;
/**
 * The largest task an item's agent is given: the instruction with its row's values in it. An
 * instruction can name a column many times, so an input within MAX_INPUT_BYTES could otherwise
 * make tasks of any size (600 copies of a 1 MiB cell overflow a JavaScript string); a task past
 * this is also past what a model's context holds.
 */
const MAX_TASK_BYTES = 4 * 1024 * 1024;
/** Room left in a 255-byte file name for the temporary file's affixes. */
const MAX_OUTPUT_NAME_BYTES = 230;

/**
 * Directories a sandboxed command never sees as troupe does: bubblewrap gives it a /proc and
 * a /dev of its own. Read here, /proc/self would be troupe's own process (its environment,
 * with the secrets the shell environment policy keeps from commands; its memory).
 */
const PRIVATE_TREES = ['/proc', '/dev'];

/**
 * Read a job's input. It must be a regular file (a FIFO would block, /dev/zero never ends)
 * of at most MAX_INPUT_BYTES, and not inside /proc or /dev: what a sandboxed command could
 * read, and no more.
 */
export async function readJobInput(path: string, idColumn: string | undefined): Promise<JobInput> {
  const text = await readJobFile(path, 'csv_path');
  const format = formatOf(path);
  const table = format === 'jsonl' ? jsonLines(text, path) : await csvRows(text, path);
  checkColumns(table.columns, path);
  return { path, format, columns: table.columns, items: itemsOf(table, idColumn, path) };
}

/**
 * Read a file a job is given (`what` names it in errors: `csv_path`, `--output-schema`) as the
 * input is read: a regular file of at most MAX_INPUT_BYTES, not inside /proc or /dev, read as
 * it was when opened. Throws a JobInputError naming what is wrong.
 */
export async function readJobFile(path: string, what: string): Promise<string> {
  const fail = (why: string) => new JobInputError(`cannot read ${what} ${path}: ${why}`);
  const real = realPathOf(path);
  const hidden = PRIVATE_TREES.find((tree) => real === tree || real.startsWith(`${tree}${sep}`));
  if (hidden !== undefined) throw fail(`${real === resolve(path) ? 'it' : `it resolves to ${real}, which`} is inside ${hidden}, which agent jobs do not read`);
  let text: string;
  try {
    // Non-blocking, so that opening a FIFO returns at once (and is refused below).
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const info = await file.stat();
      if (info.isDirectory()) throw fail('it is a directory');
      if (!info.isFile()) throw fail('it is not a regular file');
      // The file opened must be the one checked above, not one a link was switched to since.
      const checked = await stat(real).catch(() => null);
      if (checked?.dev !== info.dev || checked.ino !== info.ino) throw fail('it changed while it was being opened; try again');
      if (info.size > MAX_INPUT_BYTES) throw fail(`it has ${info.size} bytes, more than the ${MAX_INPUT_BYTES} an agent job reads`);
      // No more than the size seen: a file that grows meanwhile is read as it was.
      const bytes = Buffer.alloc(info.size);
      let filled = 0;
      while (filled < bytes.length) {
        const { bytesRead } = await file.read(bytes, filled, bytes.length - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      text = bytes.subarray(0, filled).toString('utf8');
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof JobInputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file' : (error as Error).message);
  }
  return text;
}

interface Table {
  readonly columns: string[];
  /** Each row with where it came from (a line number, for messages). */
  readonly rows: { readonly values: Record<string, unknown>; readonly line: number }[];
}

/** csv-parse is loaded at the first CSV read, not when troupe starts. */
async function csvRows(text: string, path: string): Promise<Table> {
  const { parse: parseCsv, CsvError } = await import('csv-parse/sync');
  // Each record with the line it ends on. Rows whose every field is empty (",,,") are blank
  // lines too. Past the row limit the parse stops: tiny rows cost far more parsed than read.
  // A row ends at CRLF, LF or CR, whichever each line has: csv-parse would otherwise take the
  // first line's ending for the whole file, and join the rows of a file that mixes them.
  const records: { record: string[]; info: { lines: number } }[] = [];
  try {
    parseCsv(text, {
      bom: true,
      record_delimiter: ['\r\n', '\n', '\r'],
      relax_column_count: true,
      skip_empty_lines: true,
      on_record: (record, context) => {
        if (record.every((field) => field === '')) return null;
        if (records.length > MAX_JOB_ITEMS) throw tooManyRows(path);
        records.push({ record, info: { lines: context.lines } });
        return null;
      },
    });
  } catch (error) {
    if (error instanceof CsvError) throw new JobInputError(`${path} is not valid CSV: ${error.message}`);
    throw error;
  }
  const header = records[0];
  if (!header) throw new JobInputError(`${path} has no header row: it is empty`);
  const columns = header.record;
  const blank = columns.findIndex((c) => c.trim() === '');
  if (blank >= 0) throw new JobInputError(`${path}: column ${blank + 1} of the header row has no name`);
  const seen = new Map<string, number>();
  for (const [index, column] of columns.entries()) {
    const earlier = seen.get(column);
    if (earlier !== undefined) throw new JobInputError(`${path}: the header names column "${column}" twice (columns ${earlier + 1} and ${index + 1})`);
    seen.set(column, index);
  }
  const rows = records.slice(1).map(({ record, info }, index) => {
    if (record.length !== columns.length) {
      throw new JobInputError(
        `${path}: row ${index + 1} (ending on line ${info.lines}) has ${record.length} field${record.length === 1 ? '' : 's'}, the header has ${columns.length}`,
      );
    }
    return { values: Object.fromEntries(columns.map((c, i) => [c, record[i]!])), line: info.lines };
  });
  if (rows.length === 0) throw new JobInputError(`${path} has a header row but no rows`);
  return { columns, rows };
}

function jsonLines(text: string, path: string): Table {
  const columns: string[] = [];
  const known = new Set<string>();
  const rows: Table['rows'] = [];
  for (const [index, line] of text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new JobInputError(`${path}: line ${index + 1} is not JSON: ${(error as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JobInputError(`${path}: line ${index + 1} is not a JSON object`);
    if (nestsDeeper(value, MAX_VALUE_DEPTH)) throw new JobInputError(`${path}: line ${index + 1} nests values deeper than ${MAX_VALUE_DEPTH} levels`);
    for (const key of Object.keys(value)) {
      if (known.has(key)) continue;
      known.add(key);
      columns.push(key);
    }
    if (rows.length === MAX_JOB_ITEMS) throw tooManyRows(path);
    rows.push({ values: value as Record<string, unknown>, line: index + 1 });
  }
  if (rows.length === 0) throw new JobInputError(`${path} has no rows: it holds no JSON object`);
  return { columns, rows };
}

/** Whether arrays and objects in `value` nest more than `levels` deep (it counts as one). */
export function nestsDeeper(value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  return levels === 0 || Object.values(value).some((inner) => nestsDeeper(inner, levels - 1));
}

/**
 * What any job's columns must be, whether read here or sent in an op (`what` names them): at
 * most MAX_JOB_COLUMNS, and none named `__proto__`: a stored job's rows go through JSON
 * records whose parse drops that key (it would set the object's prototype), so the column's
 * values would be lost and its placeholder left unfilled.
 */
export function checkColumns(columns: readonly string[], what: string): void {
  if (columns.length > MAX_JOB_COLUMNS) throw new JobInputError(`${what} has ${columns.length} columns; an agent job takes at most ${MAX_JOB_COLUMNS}`);
  if (columns.includes('__proto__')) throw new JobInputError(`${what} has a column named "__proto__", which agent jobs cannot carry; rename it`);
}

/** Item ids: the id column's value, or row-N; a repeated id gets -2, -3, … as Codex does. */
function itemsOf(table: Table, idColumn: string | undefined, path: string): JobItemSpec[] {
  if (idColumn !== undefined && !table.columns.includes(idColumn)) {
    throw new JobInputError(`id_column "${idColumn}" is not a column of ${path}; its columns are ${list(table.columns)}`);
  }
  const taken = new Set<string>();
  return table.rows.map(({ values }, index) => {
    const raw = idColumn !== undefined ? values[idColumn] : undefined;
    const sourceId = raw === undefined || raw === null ? null : cell(raw);
    const base = sourceId !== null && sourceId.trim() !== '' ? sourceId : `row-${index + 1}`;
    let id = base;
    for (let suffix = 2; taken.has(id); suffix++) id = `${base}-${suffix}`;
    taken.add(id);
    return { item_id: id, row_index: index, source_id: sourceId !== null && sourceId.trim() !== '' ? sourceId : null, row: values };
  });
}

/** A value as text: strings as they are, anything else as JSON, null and absent as nothing. */
export function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

const PLACEHOLDER = /\{\{|\}\}|\{([^{}"\n]+)\}/g;

/** The names of the instruction's `{column}` placeholders, in order of first use. */
export function placeholders(instruction: string): string[] {
  const names = new Set<string>();
  for (const match of instruction.matchAll(PLACEHOLDER)) if (match[1] !== undefined) names.add(match[1]);
  return [...names];
}

/**
 * Check the instruction against the input: not empty, every placeholder a column (that every
 * row has, for JSON Lines, whose rows may differ).
 */
export function checkInstruction(instruction: string, input: JobInput): void {
  if (instruction.trim() === '') throw new JobInputError("instruction is empty: say what each row's agent should do, with {column} placeholders");
  const names = placeholders(instruction);
  const unknown = names.filter((n) => !input.columns.includes(n));
  if (unknown.length > 0) {
    throw new JobInputError(
      `the instruction uses ${unknown.length === 1 ? 'a placeholder that is not a column' : 'placeholders that are not columns'}: ${unknown.map((n) => `{${n}}`).join(', ')}; the columns are ${list(input.columns)} (write {{ and }} for literal braces)`,
    );
  }
  for (const item of input.items) {
    const missing = names.find((n) => !Object.hasOwn(item.row, n));
    if (missing !== undefined) throw new JobInputError(`${input.path}: row ${item.row_index + 1} has no "${missing}", which the instruction uses`);
  }
  checkTaskSizes(instruction, input);
}

/** Every item's task (the instruction with its row's values) within MAX_TASK_BYTES, measured without making it. */
function checkTaskSizes(instruction: string, input: JobInput): void {
  const uses = new Map<string, number>();
  let fixed = 0;
  let last = 0;
  for (const match of instruction.matchAll(PLACEHOLDER)) {
    fixed += Buffer.byteLength(instruction.slice(last, match.index)) + (match[1] === undefined ? 1 : 0);
    last = match.index + match[0].length;
    if (match[1] !== undefined) uses.set(match[1], (uses.get(match[1]) ?? 0) + 1);
  }
  fixed += Buffer.byteLength(instruction.slice(last));
  for (const item of input.items) {
    let size = fixed;
    for (const [name, times] of uses) size += times * Buffer.byteLength(cell(item.row[name]));
    if (size > MAX_TASK_BYTES) {
      const most = [...uses].sort((a, b) => b[1] - a[1])[0]!;
      throw new JobInputError(
        `${input.path}: row ${item.row_index + 1}: the instruction with this row's values would be ${size} bytes, more than the ${MAX_TASK_BYTES} an item's task may hold (it names {${most[0]}} ${most[1]} ${most[1] === 1 ? 'time' : 'times'})`,
      );
    }
  }
}

/** The instruction with the row's values in its placeholders. */
export function renderInstruction(instruction: string, row: Record<string, unknown>): string {
  return instruction.replace(PLACEHOLDER, (match, name: string | undefined) => {
    if (match === '{{') return '{';
    if (match === '}}') return '}';
    return name !== undefined && Object.hasOwn(row, name) ? cell(row[name]) : match;
  });
}

/** Where the output goes by default: next to the input, named after the job, in the input's format. */
export function defaultOutputPath(inputPath: string, format: FileFormat, jobId: string): string {
  const stem = basename(inputPath, extname(inputPath)) || 'agent_job_output';
  return join(dirname(inputPath), `${stem}.agent-job-${jobId.slice(0, 8)}.${format === 'jsonl' ? 'jsonl' : 'csv'}`);
}

/**
 * Where the output goes, checked: the real path of `outputPath` (symlinks resolved; the write
 * at the job's end goes there, and only if the path still resolves to it, see output.ts). It
 * must be in an existing directory, not be the input (by any name), and an existing file there
 * must be a regular file this process may write: the output replaces it.
 */
export async function checkOutputPath(outputPath: string, inputPath: string): Promise<string> {
  const real = realPathOf(outputPath);
  const via = real === resolve(outputPath) ? '' : ` (it resolves to ${real})`;
  if (real === realPathOf(inputPath)) throw new JobInputError(`output_csv_path ${outputPath}${via} is the input file; choose another path`);
  const dir = dirname(real);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new JobInputError(`output_csv_path ${outputPath}: the directory ${dir} does not exist`);
  // Found out now, not when the job has run: the output is written through a temporary file
  // in that directory, whose name is the output's with about 15 bytes more.
  if (
    !(await access(dir, constants.W_OK).then(
      () => true,
      () => false,
    ))
  )
    throw new JobInputError(`output_csv_path ${outputPath}: the directory ${dir} is not writable`);
  if (Buffer.byteLength(basename(real)) > MAX_OUTPUT_NAME_BYTES) {
    throw new JobInputError(`output_csv_path ${outputPath}: the file name is longer than ${MAX_OUTPUT_NAME_BYTES} bytes`);
  }
  const existing = await stat(real).catch(() => null);
  if (existing?.isDirectory()) throw new JobInputError(`output_csv_path ${outputPath}${via} is a directory`);
  if (existing && !existing.isFile()) throw new JobInputError(`output_csv_path ${outputPath}${via} is not a regular file`);
  // Renaming over a file needs only its directory writable: a file marked read-only, or one
  // this process may not write, is refused here instead.
  if (
    existing &&
    ((existing.mode & 0o222) === 0 ||
      !(await access(real, constants.W_OK).then(
        () => true,
        () => false,
      )))
  ) {
    throw new JobInputError(`output_csv_path ${outputPath}${via} is read-only: the output would replace it`);
  }
  return real;
}

function tooManyRows(path: string): JobInputError {
  return new JobInputError(`${path} has more than ${MAX_JOB_ITEMS} rows, the most an agent job takes`);
}

function list(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(', ');
}
