import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { ReadFileArgs } from '../../../protocol/index.js';
import { defineTool, type ToolHandler, type ToolOutput } from '../tool.js';

export const DEFAULT_READ_LIMIT = 2000;
/** Longer lines (minified code, data blobs) are cut: they would eat the model's context. */
export const MAX_LINE_CHARS = 500;
/** A NUL byte in the first bytes is the usual sign of a binary file. */
const BINARY_SNIFF_BYTES = 8192;

const DESCRIPTION =
  'Read lines of a text file. `file_path` must be absolute. Returns up to `limit` lines ' +
  '(default 2000) starting at line `offset` (1-based, default 1), each prefixed with `L<number>: `. ' +
  `Lines longer than ${MAX_LINE_CHARS} characters are cut.`;

const failure = (text: string): ToolOutput => ({ text, success: false });

export async function readFileLines(args: ReadFileArgs): Promise<ToolOutput> {
  if (!path.isAbsolute(args.file_path)) {
    return failure(`file_path must be an absolute path; got "${args.file_path}"`);
  }
  const offset = args.offset ?? 1;
  const limit = args.limit ?? DEFAULT_READ_LIMIT;
  try {
    const info = await stat(args.file_path);
    if (info.isDirectory()) return failure(`${args.file_path} is a directory; use list_dir to see its entries`);
    if (!info.isFile()) return failure(`${args.file_path} is not a regular file`);
  } catch (error) {
    return failure(`cannot read ${args.file_path}: ${describeFsError(error)}`);
  }

  let scan: LineScan;
  try {
    scan = await scanLines(args.file_path, offset, limit);
  } catch (error) {
    return failure(`cannot read ${args.file_path}: ${describeFsError(error)}`);
  }
  if (scan.binary) return failure(`${args.file_path} looks like a binary file; read_file only reads text`);
  if (scan.selected.length === 0) {
    const n = scan.totalLines;
    return failure(`offset ${offset} is past the end of ${args.file_path}: the file has ${n} line${n === 1 ? '' : 's'}`);
  }
  const text = scan.selected.map((line, i) => `L${offset + i}: ${line}`).join('\n');
  return { text, success: true };
}

interface LineScan {
  readonly binary: boolean;
  /** The wanted lines, already cut to MAX_LINE_CHARS. */
  readonly selected: string[];
  /** Lines seen; the whole file's count when the read reached its end. */
  readonly totalLines: number;
}

/**
 * Streams the file instead of loading it, stopping after the last wanted line: the file may be
 * a multi-gigabyte log. Only the first MAX_LINE_CHARS of each line are ever held.
 */
function scanLines(file: string, offset: number, limit: number): Promise<LineScan> {
  const last = offset + limit - 1;
  return new Promise<LineScan>((resolve, reject) => {
    const stream = createReadStream(file);
    const decoder = new StringDecoder('utf8');
    const selected: string[] = [];
    let lineNumber = 1;
    let current = '';
    let currentTruncated = false;
    let sniffed = 0;
    let settled = false;

    const finish = (scan: LineScan) => {
      if (settled) return;
      settled = true;
      stream.destroy();
      resolve(scan);
    };
    const endLine = () => {
      if (lineNumber >= offset && lineNumber <= last) selected.push(cutLine(current, currentTruncated));
      lineNumber++;
      current = '';
      currentTruncated = false;
    };
    const consume = (text: string) => {
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        const piece = text.slice(start, nl === -1 ? text.length : nl);
        // Keep one character beyond the cap (and room for a CR) to know whether to cut.
        const room = MAX_LINE_CHARS + 2 - current.length;
        if (room > 0) current += piece.slice(0, room);
        if (piece.length > Math.max(0, room)) currentTruncated = true;
        if (nl === -1) return;
        endLine();
        if (lineNumber > last) return;
        start = nl + 1;
      }
    };

    stream.on('data', (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (sniffed < BINARY_SNIFF_BYTES) {
        const window = bytes.subarray(0, BINARY_SNIFF_BYTES - sniffed);
        sniffed += window.length;
        if (window.includes(0)) return finish({ binary: true, selected: [], totalLines: 0 });
      }
      consume(decoder.write(bytes));
      if (lineNumber > last) finish({ binary: false, selected, totalLines: lineNumber - 1 });
    });
    stream.on('end', () => {
      consume(decoder.end());
      // Text after the last newline is a line too; a trailing newline does not start one.
      if (current.length > 0) endLine();
      finish({ binary: false, selected, totalLines: lineNumber - 1 });
    });
    stream.on('error', (error) => {
      if (settled) return;
      settled = true;
      reject(error);
    });
  });
}

/** Drops a Windows line ending and cuts long lines without splitting a surrogate pair. */
function cutLine(line: string, truncated: boolean): string {
  let text = line;
  if (!truncated && text.endsWith('\r')) text = text.slice(0, -1);
  if (!truncated && text.length <= MAX_LINE_CHARS) return text;
  let end = Math.min(text.length, MAX_LINE_CHARS);
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--; // a high surrogate whose pair would be cut off
  return text.slice(0, end);
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

export const readFileHandler: ToolHandler<ReadFileArgs> = {
  name: 'read_file',
  description: DESCRIPTION,
  args: ReadFileArgs,
  run: (args) => readFileLines(args),
};

export const readFileTool = defineTool(readFileHandler);
