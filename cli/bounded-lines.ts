import { Transform, type TransformCallback } from 'node:stream';

/**
 * Newline-delimited messages with a size bound that costs one message, not the connection. The
 * MCP SDK's stdio transport closes itself when a line outgrows its buffer, which left `troupe
 * mcp-server` deaf to every later request of a client that once sent too much. Put in front of
 * it, this stream passes every line of at most `maxBytes` on whole, and drops a longer one
 * (holding at most `maxBytes` of it, never the rest), telling `onDropped` its size and what its
 * first bytes say its JSON-RPC id is.
 */
export class BoundedLines extends Transform {
  readonly #maxBytes: number;
  readonly #onDropped: (dropped: DroppedLine) => void;
  /** The current line so far, while it is within the bound. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** Set while the rest of a line over the bound is being skipped: its first bytes, and its size so far. */
  #dropping: { head: Buffer; bytes: number } | null = null;

  constructor(maxBytes: number, onDropped: (dropped: DroppedLine) => void) {
    super();
    this.#maxBytes = maxBytes;
    this.#onDropped = onDropped;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let rest = chunk;
    while (rest.length > 0) {
      const newline = rest.indexOf(0x0a);
      const part = newline === -1 ? rest : rest.subarray(0, newline + 1);
      rest = newline === -1 ? Buffer.alloc(0) : rest.subarray(newline + 1);
      this.#take(part, newline !== -1);
    }
    done();
  }

  #take(part: Buffer, ends: boolean): void {
    if (this.#dropping) {
      this.#dropping.bytes += part.length;
    } else if (this.#heldBytes + part.length > this.#maxBytes) {
      const bytes = this.#heldBytes + part.length;
      // A copy of the first bytes only: nothing else of the line is kept.
      this.#dropping = { head: Buffer.concat([...this.#held, part], Math.min(ID_WINDOW_BYTES, bytes)), bytes };
      this.#held = [];
      this.#heldBytes = 0;
    } else {
      this.#held.push(part);
      this.#heldBytes += part.length;
    }
    if (!ends) return;
    if (this.#dropping) {
      const { head, bytes } = this.#dropping;
      this.#dropping = null;
      this.#onDropped({ bytes, id: requestId(head.toString('utf8')) });
    } else {
      this.push(Buffer.concat(this.#held));
      this.#held = [];
      this.#heldBytes = 0;
    }
  }

  override _flush(done: TransformCallback): void {
    // A last line without a newline: passed on if it fits (the reader decides what it is).
    if (!this.#dropping && this.#heldBytes > 0) this.push(Buffer.concat(this.#held));
    done();
  }
}

export interface DroppedLine {
  readonly bytes: number;
  /** The request's id when its first bytes name one, else null. */
  readonly id: string | number | null;
}

/** How much of a dropped line is kept to find its id in. */
const ID_WINDOW_BYTES = 512;

/** The top-level `"id"` member of a JSON object's first bytes, or null (not there, or cut off). */
function requestId(head: string): string | number | null {
  let depth = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      const end = stringEnd(head, i);
      if (end === -1) return null;
      // A key (a string followed by a colon) at the top level, not a value that reads "id".
      const value = depth === 1 && head.slice(i, end + 1) === '"id"' ? /^\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)\s*[,}]/.exec(head.slice(end + 1))?.[1] : undefined;
      if (value !== undefined) return JSON.parse(value) as string | number;
      i = end;
    }
  }
  return null;
}

/** The index of the quote that closes the string opening at `start`, or -1. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}
