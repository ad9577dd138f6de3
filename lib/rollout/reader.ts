import { constants, createReadStream } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describeZodError, RolloutLine, type MessageItem, type ResponseItem, type SessionMeta, type SessionSummary } from '../../protocol/index.js';
import { RolloutError } from './errors.js';
import { isFileSafeId, parseRolloutFileName, sessionsDir } from './paths.js';

export interface SkippedLine {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly error: string;
}

export interface Rollout {
  readonly meta: SessionMeta;
  /** Every line that parsed and validated, in file order, the session_meta line included. */
  readonly lines: RolloutLine[];
  readonly skipped: SkippedLine[];
}

type ParsedLine = { ok: true; line: RolloutLine } | { ok: false; error: string };

function parseLine(text: string): ParsedLine {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  const result = RolloutLine.safeParse(json);
  return result.success ? { ok: true, line: result.data } : { ok: false, error: describeZodError(result.error) };
}

/**
 * Read a whole rollout, tolerating damaged lines: a process that dies mid-write leaves a torn
 * last line, and that must not make the session impossible to resume. Only the first line is
 * required to be intact, because without its session_meta nothing can be rebuilt.
 */
export async function readRollout(path: string): Promise<Rollout> {
  let text: string;
  try {
    // Opened without blocking, and read only if it is a regular file: a client names the path
    // (resume_session, fork_session), and a FIFO nobody writes would hold the read, and a
    // thread of the pool, for ever; /dev/zero would never end.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!(await file.stat()).isFile()) throw new RolloutError(`rollout ${path} is not a regular file`, path);
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (cause) {
    if (cause instanceof RolloutError) throw cause;
    throw new RolloutError(`cannot read rollout ${path}`, path, { cause });
  }
  const rows = text.split('\n');
  const lines: RolloutLine[] = [];
  const skipped: SkippedLine[] = [];
  let meta: SessionMeta | null = null;
  for (const [index, row] of rows.entries()) {
    if (row.trim() === '') continue;
    const parsed = parseLine(row);
    if (meta === null) {
      if (!parsed.ok) throw new RolloutError(`rollout ${path} does not start with a valid session_meta line: ${parsed.error}`, path);
      if (parsed.line.type !== 'session_meta') {
        throw new RolloutError(`rollout ${path} starts with a ${parsed.line.type} line instead of session_meta`, path);
      }
      meta = parsed.line.payload;
    }
    if (parsed.ok) lines.push(parsed.line);
    else skipped.push({ line: index + 1, error: parsed.error });
  }
  if (meta === null) throw new RolloutError(`rollout ${path} is empty: no session_meta line`, path);
  return { meta, lines, skipped };
}

/**
 * The number of the last event the rollout kept, which a resumed session's stream goes on
 * from. Streaming deltas are not kept: a session that died in the middle of a stream numbers
 * again the deltas it sent after its last kept event.
 */
export function lastSeqOf(lines: readonly RolloutLine[]): number {
  let last = 0;
  for (const line of lines) if (line.type === 'event_msg' && line.seq !== undefined && line.seq > last) last = line.seq;
  return last;
}

/**
 * The history a resumed session starts from. A `compacted` line that carries its replacement
 * history stands for everything before it; one without (an older or summary-only record) says
 * nothing about history, so it is passed over.
 */
export function historyFromRollout(lines: readonly RolloutLine[]): ResponseItem[] {
  let history: ResponseItem[] = [];
  for (const line of lines) {
    if (line.type === 'response_item') history.push(line.payload);
    else if (line.type === 'compacted' && line.payload.replacement_history) history = [...line.payload.replacement_history];
  }
  return history;
}

/** Messages troupe itself puts in the user role to give the model context; they start no turn. */
const INJECTED_PREFIXES = [
  '<environment_context>',
  '<user_instructions>',
  '<user_action>',
  '<subagent_notification>',
  '<conversation_summary>',
  '<user_shell_command>',
] as const;

/** A message the user typed, as opposed to context troupe injected in the user role. */
export function isRealUserMessage(item: ResponseItem): item is MessageItem {
  if (item.type !== 'message' || item.role !== 'user') return false;
  const firstText = item.content.find((part) => part.type === 'input_text' || part.type === 'output_text');
  if (!firstText || !('text' in firstText)) return true;
  const text = firstText.text.trimStart();
  return !INJECTED_PREFIXES.some((prefix) => text.startsWith(prefix));
}

/**
 * The history a fork starts from: everything before the `nthUserMessage`-th real user message
 * (0-based), so `1` keeps exactly the first turn. Omitted, or past the last user message, the
 * whole history is kept.
 */
export function forkHistory(items: readonly ResponseItem[], nthUserMessage?: number): ResponseItem[] {
  if (nthUserMessage === undefined) return [...items];
  if (!Number.isInteger(nthUserMessage) || nthUserMessage < 0) {
    throw new RangeError(`nthUserMessage must be a non-negative integer, got ${nthUserMessage}`);
  }
  let seen = 0;
  for (let index = 0; index < items.length; index += 1) {
    const item = items[index];
    if (item && isRealUserMessage(item)) {
      if (seen === nthUserMessage) return items.slice(0, index);
      seen += 1;
    }
  }
  return [...items];
}

interface RolloutFile {
  readonly path: string;
  readonly timestamp: string;
  readonly sessionId: string;
}

/**
 * Every rollout file under `<home>/sessions`, newest name first at each level, so the usual
 * YYYY/MM/DD layout comes out newest first. Unreadable directories are skipped; only real
 * directories are entered (a symlink loop cannot trap the walk).
 */
async function* walkRollouts(dir: string): AsyncGenerator<RolloutFile> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      yield* walkRollouts(path);
    } else if (entry.isFile()) {
      const parsed = parseRolloutFileName(entry.name);
      if (parsed) yield { path, ...parsed };
    }
  }
}

/** The rollout of a session, found by its id alone (resume by id), or null. */
export async function findRolloutBySessionId(home: string, sessionId: string): Promise<string | null> {
  if (!isFileSafeId(sessionId)) return null;
  for await (const file of walkRollouts(sessionsDir(home))) {
    if (file.sessionId === sessionId) return file.path;
  }
  return null;
}

export interface ListSessionsOptions {
  readonly limit?: number;
}

/**
 * Saved sessions, newest first by `created_at`. Only the head of each file is read: the meta
 * line and lines up to the first user message. Files that cannot be read, or that do not
 * start with a session_meta, are left out.
 */
export async function listSessions(home: string, options: ListSessionsOptions = {}): Promise<SessionSummary[]> {
  const limit = options.limit;
  if (limit !== undefined && limit <= 0) return [];
  const files: RolloutFile[] = [];
  for await (const file of walkRollouts(sessionsDir(home))) files.push(file);
  // File names carry created_at to the second, so they give the order without opening files;
  // within one second the metas decide.
  files.sort((a, b) => compareDesc(a.timestamp, b.timestamp) || compareDesc(a.path, b.path));

  const summaries: SessionSummary[] = [];
  // Once `limit` are read, a file from an earlier second than all of them cannot be newer.
  let oldestStampRead = '';
  for (const file of files) {
    if (limit !== undefined && summaries.length >= limit && file.timestamp < oldestStampRead) break;
    const summary = await summarize(file.path);
    if (!summary) continue;
    summaries.push(summary);
    oldestStampRead = file.timestamp;
  }
  summaries.sort((a, b) => timeOf(b.created_at) - timeOf(a.created_at));
  return limit === undefined ? summaries : summaries.slice(0, limit);
}

function compareDesc(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

function timeOf(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

async function summarize(path: string): Promise<SessionSummary | null> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const rows = createInterface({ input: stream, crlfDelay: Infinity });
  let meta: SessionMeta | null = null;
  let firstUserMessage: string | null = null;
  try {
    for await (const row of rows) {
      if (meta === null) {
        const parsed = parseLine(row);
        if (!parsed.ok || parsed.line.type !== 'session_meta') return null;
        meta = parsed.line.payload;
        continue;
      }
      // Cheap test first: most lines are large response items that need no parsing here.
      if (!row.includes('"user_message"')) continue;
      const parsed = parseLine(row);
      if (parsed.ok && parsed.line.type === 'event_msg' && parsed.line.payload.type === 'user_message') {
        firstUserMessage = parsed.line.payload.message;
        break;
      }
    }
  } catch {
    return null;
  } finally {
    rows.close();
    stream.destroy();
  }
  if (meta === null) return null;
  return {
    session_id: meta.session_id,
    rollout_path: path,
    created_at: meta.created_at,
    first_user_message: firstUserMessage,
    cwd: meta.cwd,
    parent_session_id: meta.parent_session_id,
  };
}
