/**
 * Bounding tool output. Models pay for every token and the interesting parts of command
 * output are usually at the start (what ran) and the end (the error, the summary), so we keep
 * both ends and say how much of the middle was dropped.
 */

export interface TruncateLimits {
  readonly maxBytes: number;
  readonly maxLines: number;
}

/** Limits for text handed back to the model as a tool output. */
export const DEFAULT_OUTPUT_LIMITS: TruncateLimits = { maxBytes: 10 * 1024, maxLines: 256 };

/** Room kept for the marker line so the result stays within `maxBytes`. */
const MARKER_RESERVE = 80;

/**
 * Keeps the head and tail of `text` within the limits and replaces the middle with one marker
 * line. Whole lines are kept whenever possible; a line is cut (at a UTF-8 character boundary)
 * only when one end would otherwise have nothing to show, e.g. a single enormous line.
 * For limits of at least ~100 bytes and 3 lines the result respects both limits.
 */
export function truncateMiddle(text: string, limits: TruncateLimits = DEFAULT_OUTPUT_LIMITS): string {
  const totalBytes = Buffer.byteLength(text, 'utf8');
  const lines = splitLines(text);
  if (totalBytes <= limits.maxBytes && lines.length <= limits.maxLines) return text;

  const lineBudget = Math.max(0, limits.maxLines - 1);
  const byteBudget = Math.max(0, limits.maxBytes - MARKER_RESERVE);
  const headLineBudget = Math.ceil(lineBudget / 2);
  const tailLineBudget = lineBudget - headLineBudget;
  const headByteBudget = Math.ceil(byteBudget / 2);
  const tailByteBudget = byteBudget - headByteBudget;

  // Whole lines from the front.
  let headCount = 0;
  let headBytes = 0;
  while (headCount < lines.length && headCount < headLineBudget) {
    const size = Buffer.byteLength(lines[headCount]!, 'utf8');
    if (headBytes + size > headByteBudget) break;
    headBytes += size;
    headCount++;
  }
  // Whole lines from the back, never overlapping the head.
  let tailCount = 0;
  let tailBytes = 0;
  while (tailCount < lines.length - headCount && tailCount < tailLineBudget) {
    const size = Buffer.byteLength(lines[lines.length - 1 - tailCount]!, 'utf8');
    if (tailBytes + size > tailByteBudget) break;
    tailBytes += size;
    tailCount++;
  }

  let head = lines.slice(0, headCount).join('');
  let tail = lines.slice(lines.length - tailCount).join('');
  // A side that got no whole line shows part of its nearest line rather than nothing (one
  // enormous line keeps both its beginning and its end).
  if (headCount === 0 && headLineBudget > 0) head = utf8Prefix(lines[0]!, headByteBudget);
  if (tailCount === 0 && tailLineBudget > 0) tail = utf8Suffix(lines[lines.length - 1]!, tailByteBudget);

  const omittedBytes = totalBytes - Buffer.byteLength(head, 'utf8') - Buffer.byteLength(tail, 'utf8');
  // Partly shown lines count as omitted: the reader must know they are incomplete.
  const omittedLines = lines.length - headCount - tailCount;
  const marker = `[… ${omittedLines} lines (${omittedBytes} bytes) omitted …]\n`;
  const separator = head.length > 0 && !head.endsWith('\n') ? '\n' : '';
  return head + separator + marker + tail;
}

/** Lines with their terminators; a trailing newline does not start an extra empty line. */
function splitLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl === -1) break;
    out.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/** The longest prefix of `s` that fits in `maxBytes` without splitting a character. */
export function utf8Prefix(s: string, maxBytes: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= maxBytes) return s;
  let end = Math.max(0, maxBytes);
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** The longest suffix of `s` that fits in `maxBytes` without splitting a character. */
export function utf8Suffix(s: string, maxBytes: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= maxBytes) return s;
  let start = buf.length - Math.max(0, maxBytes);
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString('utf8');
}

/**
 * Collects a stream of text with bounded memory: the first and last `maxBytes / 2` bytes are
 * kept and the middle is replaced by a marker, so a runaway command cannot exhaust memory.
 */
export class HeadTailBuffer {
  private head = '';
  private headBytes = 0;
  private tail: string[] = [];
  private tailBytes = 0;
  private omitted = 0;
  private readonly half: number;

  constructor(maxBytes: number) {
    this.half = Math.max(1, Math.floor(maxBytes / 2));
  }

  append(chunk: string): void {
    if (chunk.length === 0) return;
    let rest = chunk;
    if (this.headBytes < this.half) {
      const taken = utf8Prefix(rest, this.half - this.headBytes);
      this.head += taken;
      this.headBytes += Buffer.byteLength(taken, 'utf8');
      rest = rest.slice(taken.length);
      if (rest.length === 0) return;
    }
    this.tail.push(rest);
    this.tailBytes += Buffer.byteLength(rest, 'utf8');
    while (this.tailBytes > this.half) {
      const first = this.tail[0]!;
      const firstBytes = Buffer.byteLength(first, 'utf8');
      const excess = this.tailBytes - this.half;
      if (firstBytes <= excess) {
        this.tail.shift();
        this.tailBytes -= firstBytes;
        this.omitted += firstBytes;
      } else {
        const kept = utf8Suffix(first, firstBytes - excess);
        const keptBytes = Buffer.byteLength(kept, 'utf8');
        this.tail[0] = kept;
        this.tailBytes -= firstBytes - keptBytes;
        this.omitted += firstBytes - keptBytes;
      }
    }
  }

  /** Bytes dropped from the middle so far. */
  get omittedBytes(): number {
    return this.omitted;
  }

  toString(): string {
    const tail = this.tail.join('');
    if (this.omitted === 0) return this.head + tail;
    const separator = this.head.endsWith('\n') || this.head.length === 0 ? '' : '\n';
    return `${this.head}${separator}[… ${this.omitted} bytes omitted …]\n${tail}`;
  }
}
