import { TroupeError } from '../../../protocol/index.js';
/**
 * Parser for the `apply_patch` format (PROTOCOL.md §6). It only reads text: locating hunks in
 * files and writing them is apply.ts's job. Models get the format slightly wrong in a few
 * predictable ways, so the parser accepts those instead of bouncing the call back.
 */

export interface HunkLine {
  readonly kind: 'context' | 'remove' | 'add';
  readonly text: string;
}

export interface Hunk {
  /**
   * Lines from `@@ <line>` headers, found one after another before the hunk's own lines are
   * searched; they narrow down where a hunk applies when its context is ambiguous.
   */
  readonly anchors: readonly string[];
  readonly lines: readonly HunkLine[];
  /** The hunk's lines must be the last lines of the file (`*** End of File`). */
  readonly atEndOfFile: boolean;
  /** 1-based line of the patch where the hunk starts, for error messages. */
  readonly patchLine: number;
}

export type PatchOperation =
  | { readonly type: 'add'; readonly path: string; readonly content: string }
  | { readonly type: 'delete'; readonly path: string }
  | { readonly type: 'update'; readonly path: string; readonly moveTo?: string | undefined; readonly hunks: readonly Hunk[] };

export class PatchParseError extends TroupeError {
  override readonly name = 'PatchParseError';
  override readonly code = 'bad_request';
  /** 1-based line of the patch text where parsing failed. */
  readonly line: number;

  constructor(line: number, problem: string, options?: ErrorOptions) {
    super(`invalid patch, line ${line}: ${problem}`, options);
    this.line = line;
  }
}

/** The lines a hunk expects to find (context and removed lines, in order). */
export function hunkOldLines(hunk: Hunk): string[] {
  return hunk.lines.filter((l) => l.kind !== 'add').map((l) => l.text);
}

/** The lines that replace them (context and added lines, in order). */
export function hunkNewLines(hunk: Hunk): string[] {
  return hunk.lines.filter((l) => l.kind !== 'remove').map((l) => l.text);
}

const BEGIN = '*** Begin Patch';
const END = '*** End Patch';
const ADD = '*** Add File:';
const DELETE = '*** Delete File:';
const UPDATE = '*** Update File:';
const MOVE = '*** Move to:';
const END_OF_FILE = '*** End of File';

interface Line {
  readonly text: string;
  readonly no: number;
}

export function parsePatch(patchText: string): PatchOperation[] {
  const lines = unwrapHeredoc(trimBlankEdges(patchText.split(/\r?\n/).map((text, i) => ({ text, no: i + 1 }))));
  const first = lines[0];
  const last = lines[lines.length - 1];
  if (first === undefined || last === undefined) throw new PatchParseError(1, `the patch is empty; expected '${BEGIN}'`);
  if (first.text.trim() !== BEGIN) throw new PatchParseError(first.no, `expected '${BEGIN}', found ${quote(first.text)}`);
  if (lines.length < 2 || last.text.trim() !== END) {
    throw new PatchParseError(last.no, `expected '${END}' as the last line, found ${quote(last.text)}`);
  }
  const operations = new BodyParser(lines.slice(1, -1)).parse();
  if (operations.length === 0) {
    throw new PatchParseError(last.no, `the patch changes no file; expected '${ADD}', '${UPDATE}' or '${DELETE}' before '${END}'`);
  }
  return operations;
}

class BodyParser {
  #i = 0;
  constructor(private readonly lines: readonly Line[]) {}

  parse(): PatchOperation[] {
    const operations: PatchOperation[] = [];
    while (this.#i < this.lines.length) {
      const line = this.#line(this.#i);
      const trimmed = line.text.trim();
      if (trimmed === '') {
        this.#i++;
        continue;
      }
      if (trimmed.startsWith(ADD)) operations.push(this.#parseAdd(line));
      else if (trimmed.startsWith(DELETE)) {
        operations.push({ type: 'delete', path: headerPath(line, DELETE) });
        this.#i++;
      } else if (trimmed.startsWith(UPDATE)) operations.push(this.#parseUpdate(line));
      else {
        throw new PatchParseError(
          line.no,
          `expected a file header ('${ADD} <path>', '${UPDATE} <path>' or '${DELETE} <path>') or '${END}', found ${quote(line.text)}`,
        );
      }
    }
    return operations;
  }

  #parseAdd(header: Line): PatchOperation {
    const path = headerPath(header, ADD);
    this.#i++;
    const content: string[] = [];
    while (this.#i < this.lines.length) {
      const text = this.#line(this.#i).text;
      if (text.startsWith('+')) {
        content.push(text.slice(1));
        this.#i++;
        continue;
      }
      // A bare blank line between '+' lines is a blank line of the file whose '+' got lost;
      // blank lines before the next header are just spacing.
      if (text.trim() === '') {
        const next = this.#nextNonBlank(this.#i);
        if (next !== undefined && this.#line(next).text.startsWith('+')) {
          for (; this.#i < next; this.#i++) content.push('');
          continue;
        }
      }
      break;
    }
    return { type: 'add', path, content: content.length === 0 ? '' : content.join('\n') + '\n' };
  }

  #parseUpdate(header: Line): PatchOperation {
    const path = headerPath(header, UPDATE);
    this.#i++;
    let moveTo: string | undefined;
    const moveLine = this.lines[this.#i];
    if (moveLine !== undefined && moveLine.text.trim().startsWith(MOVE)) {
      moveTo = headerPath(moveLine, MOVE);
      this.#i++;
    }
    const hunks: Hunk[] = [];
    while (this.#i < this.lines.length) {
      const line = this.#line(this.#i);
      const trimmed = line.text.trim();
      if (isFileHeader(trimmed)) break;
      if (trimmed === '') {
        this.#i++;
        continue;
      }
      const hunk = this.#parseHunk(hunks.length === 0);
      hunks.push(hunk);
    }
    if (hunks.length === 0 && moveTo === undefined) {
      throw new PatchParseError(header.no, `expected at least one hunk ('@@' followed by ' ', '-' and '+' lines) for ${quote(path)}`);
    }
    return { type: 'update', path, moveTo, hunks };
  }

  /** A hunk: `@@` header lines (optional for the first hunk), then its lines. */
  #parseHunk(isFirst: boolean): Hunk {
    const startIndex = this.#i;
    const start = this.#line(startIndex);
    const anchors: string[] = [];
    while (this.#i < this.lines.length && isHunkHeader(this.#line(this.#i).text)) {
      const anchor = anchorOf(this.#line(this.#i).text);
      if (anchor !== undefined) anchors.push(anchor);
      this.#i++;
    }
    if (this.#i === startIndex && !isFirst) {
      throw new PatchParseError(start.no, `expected '@@' to start the next hunk, found ${quote(start.text)}`);
    }
    const lines: HunkLine[] = [];
    // Bare blank lines are read as empty context lines (editors and models drop the space),
    // but trailing ones are spacing before the next section and must not be required.
    let trailingBlanks = 0;
    let atEndOfFile = false;
    while (this.#i < this.lines.length) {
      const line = this.#line(this.#i);
      const text = line.text;
      const trimmed = text.trim();
      if (trimmed === END_OF_FILE) {
        atEndOfFile = true;
        this.#i++;
        break;
      }
      if (isHunkHeader(text) || isFileHeader(trimmed)) break;
      const marker = text[0];
      if (marker === '+') lines.push({ kind: 'add', text: text.slice(1) });
      else if (marker === '-') lines.push({ kind: 'remove', text: text.slice(1) });
      else if (marker === ' ') lines.push({ kind: 'context', text: text.slice(1) });
      else if (trimmed === '') {
        lines.push({ kind: 'context', text: '' });
        trailingBlanks++;
        this.#i++;
        continue;
      } else {
        throw new PatchParseError(
          line.no,
          `expected a hunk line starting with ' ' (context), '-' (removed) or '+' (added), or '@@', '${END_OF_FILE}' or a file header, found ${quote(text)}`,
        );
      }
      trailingBlanks = 0;
      this.#i++;
    }
    if (!atEndOfFile) lines.splice(lines.length - trailingBlanks, trailingBlanks);
    if (lines.length === 0) {
      throw new PatchParseError(start.no, "expected the hunk's lines (' ', '-' or '+') after its '@@' header, found none");
    }
    return { anchors, lines, atEndOfFile, patchLine: start.no };
  }

  #line(i: number): Line {
    const line = this.lines[i];
    if (line === undefined) throw new Error(`patch parser read past the end (line index ${i})`);
    return line;
  }

  #nextNonBlank(from: number): number | undefined {
    for (let j = from; j < this.lines.length; j++) if (this.#line(j).text.trim() !== '') return j;
    return undefined;
  }
}

function isFileHeader(trimmed: string): boolean {
  return trimmed.startsWith(ADD) || trimmed.startsWith(DELETE) || trimmed.startsWith(UPDATE);
}

/** A line starting with a space is a context line even if its content begins with '@@'. */
function isHunkHeader(text: string): boolean {
  return !text.startsWith(' ') && text.trim().startsWith('@@');
}

/**
 * The anchor of a `@@` header, if any. A unified-diff range header (`@@ -3,4 +3,5 @@`) is what
 * models write out of habit; its numbers are ignored rather than searched for.
 */
function anchorOf(header: string): string | undefined {
  const rest = header.trim().slice(2);
  const anchor = rest.startsWith(' ') ? rest.slice(1) : rest;
  if (anchor.trim() === '') return undefined;
  if (/^-\d+(,\d+)? \+\d+(,\d+)? @@/.test(anchor.trim())) return undefined;
  return anchor;
}

function headerPath(line: Line, prefix: string): string {
  const path = line.text.trim().slice(prefix.length).trim();
  if (path === '') throw new PatchParseError(line.no, `expected a path after '${prefix}'`);
  return path;
}

function trimBlankEdges(lines: Line[]): Line[] {
  let start = 0;
  let end = lines.length;
  while (start < end && lines[start]?.text.trim() === '') start++;
  while (end > start && lines[end - 1]?.text.trim() === '') end--;
  return lines.slice(start, end);
}

/**
 * Models sometimes send the shell form of the call (`apply_patch <<'EOF'` … `EOF`). The
 * wrapper lines are dropped; line numbers keep pointing at the text as sent.
 */
function unwrapHeredoc(lines: Line[]): Line[] {
  const first = lines[0];
  if (first === undefined) return lines;
  const opener = /<<-?\s*(['"]?)([A-Za-z_][\w-]*)\1\s*$/.exec(first.text);
  const tag = opener?.[2];
  if (tag === undefined) return lines;
  const last = lines[lines.length - 1];
  const closed = lines.length > 1 && last?.text.trim() === tag;
  return trimBlankEdges(lines.slice(1, closed ? -1 : undefined));
}

function quote(text: string): string {
  const shown = text.length > 120 ? `${text.slice(0, 120)}…` : text;
  return JSON.stringify(shown);
}
