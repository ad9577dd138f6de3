import { randomUUID } from 'node:crypto';
import { open, mkdir, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { ToolOutput } from '../../machines/tool-plan.js';
import { inBackground, log } from '../../lib/log.js';
import { processIsRunning, processStart } from '../../lib/processes.js';
import { MAX_VALUE_DEPTH, nestsDeeper } from './input.js';
import { JobRecord, type JobSpec, type NewJobRecord } from './records.js';
import { apply, replay, type JobState } from './state.js';

/**
 * Where jobs keep their state. The job's log is its truth: a handle appends records (each
 * durable once `append` resolves) and keeps the replayed state current. In-process the log is a
 * file under TROUPE_HOME (`FileJobStore`); on NATS it is a JetStream stream with the same
 * records (`NatsJobStore`, nats-store.ts), and the same runner on top.
 */
export interface JobStore {
  /** Store a new job (its first record); the job is durable when this resolves. */
  create(spec: JobSpec): Promise<JobHandle>;
  /** Take a job up to run it, or null when there is no such job. */
  open(jobId: string): Promise<JobHandle | null>;
  /** A job's state as its log says now, or null. */
  read(jobId: string): Promise<JobState | null>;
  /** Every job the store holds, newest first. */
  list(): Promise<JobState[]>;
  /** Ids of the jobs of session `sessionId` that have not finished. */
  unfinishedOf(sessionId: string): Promise<string[]>;
  /** Ask the job to stop (whoever runs it sees the record); returns its state after. */
  requestCancel(jobId: string, reason: string): Promise<JobState | null>;
  /**
   * Hand an item's result to the job's runner in another process (NATS: the item's agent runs
   * on another worker than its job); absent where every runner is in this process. Aborting
   * `signal` (the tool call's: its turn was interrupted, or its session shut down) stops
   * waiting for the runner at once and answers ABORTED_OUTPUT.
   */
  report?(jobId: string, request: ReportRequest, signal: AbortSignal): Promise<ToolOutput>;
}

/** `report_agent_job_result` as passed on to the job's runner. */
export const ReportRequest = z.object({
  agent_id: z.string(),
  item_id: z.string(),
  result: z.record(z.string(), z.unknown()),
  stop: z.boolean(),
});
export type ReportRequest = z.infer<typeof ReportRequest>;

/** What `report_agent_job_result` answers when a result is not taken, wherever it is refused. */
export function refusedReport(reason: string): ToolOutput {
  return { text: JSON.stringify({ accepted: false, reason }), success: false };
}

/** The largest result an item's agent may report, as JSON text (room left for the record around it). */
const MAX_RESULT_BYTES = 512 * 1024;

/**
 * The refusal of a result that cannot be kept in a job's records, or null. The log (a JSONL
 * file, or JetStream records of at most the server's payload limit, 1 MiB by default) stores
 * each result as one JSON text, and writing it recurses once per level: a result that cannot
 * be written would leave its item neither done nor failed.
 */
export function unfitResult(result: Record<string, unknown>): ToolOutput | null {
  let why: string | null = null;
  if (nestsDeeper(result, MAX_VALUE_DEPTH)) why = `it nests objects or arrays deeper than ${MAX_VALUE_DEPTH} levels`;
  else {
    const bytes = Buffer.byteLength(JSON.stringify(result));
    if (bytes > MAX_RESULT_BYTES) why = `it is ${bytes} bytes of JSON, more than the ${MAX_RESULT_BYTES} a result may take`;
  }
  return why === null ? null : refusedReport(`the result cannot be recorded: ${why}. Report it again, smaller.`);
}

/** What `report_agent_job_result` answers when the result is recorded (or was already). */
export const ACCEPTED_REPORT: ToolOutput = {
  text: JSON.stringify({ accepted: true, message: 'Result recorded. Your work on this item is done: stop now.' }),
  success: true,
};

/**
 * Whether a report is a copy of the result an item has recorded (`recorded`: who reported it,
 * and what; null while the item has none): from the same agent, and the same JSON value as
 * logged (-0 is stored as 0; key order does not count). A copy is the first report sent again
 * (its answer was lost with a process, or it is repeated after a failover) and gets the first's
 * answer; a different result, or one from another agent, is refused and the recorded one stays.
 */
export function isRecordedResult(
  recorded: { readonly agentId: string | null; readonly result: unknown } | null,
  agentId: string,
  result: Record<string, unknown>,
): boolean {
  return recorded !== null && recorded.agentId === agentId && sameJson(recorded.result, result);
}

/** Whether two results are the same JSON value (as logged: -0 is stored as 0; key order does not count). */
export function sameJson(a: unknown, b: unknown): boolean {
  const asLogged = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? null));
  return isDeepStrictEqual(asLogged(a), asLogged(b));
}

/** A job opened for running: its state, and the only way to change it. */
export interface JobHandle {
  readonly state: JobState;
  /** Append records, in order; durable (and applied to `state`) when this resolves. */
  append(...records: NewJobRecord[]): Promise<void>;
  /** Call `listener` with each `cancel_requested` another process appends. */
  onCancel(listener: (reason: string) => void): void;
  /** Take the results `JobStore.report` passes on from other processes, until closed. */
  serveReports?(handler: (request: ReportRequest) => Promise<ToolOutput>): void;
  close(): Promise<void>;
}

const thisStart = processStart('self');

/**
 * Who runs a job: written in `runner_started`, read by `troupe jobs status` and `cancel`. `start`
 * (where /proc has it) tells this process from a later one the kernel gives the same pid.
 */
export const THIS_RUNNER: { readonly pid: number; readonly host: string; readonly start?: string } = {
  pid: process.pid,
  host: hostname(),
  ...(thisStart !== null ? { start: thisStart } : {}),
};

/** True when the runner a job names is this machine's process that is still alive (the same start of it, where that is known). */
export function runnerAlive(runner: { pid: number; host: string; start?: string | undefined } | null): boolean {
  if (!runner || runner.host !== THIS_RUNNER.host) return false;
  if (runner.pid === process.pid && runner.start === THIS_RUNNER.start) return true;
  if (runner.start !== undefined) return processStart(runner.pid) === runner.start;
  return processIsRunning(runner.pid);
}

const POLL_MS = 500;

export function jobsDir(home: string): string {
  return join(home, 'jobs');
}

/**
 * A job id as troupe makes them (a UUID). Ids come from models (`report_agent_job_result`),
 * command lines and ops: one that is not this shape names no job, and is never made into a
 * path (`../x` would be a file anywhere) or a NATS subject (`a.>` would be a wildcard).
 */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}

export function jobLogPath(home: string, jobId: string): string {
  if (!isJobId(jobId)) throw new TypeError(`not a job id: ${JSON.stringify(jobId)}`);
  return join(jobsDir(home), `${jobId}.jsonl`);
}

/**
 * Jobs as append-only JSONL files: `TROUPE_HOME/jobs/<job_id>.jsonl`, every append written and
 * fsync'd before it counts. `jobs/open/<session_id>.<job_id>` marks a job that has not finished,
 * so a resumed session finds its jobs without reading every log.
 */
export class FileJobStore implements JobStore {
  readonly #dir: string;
  readonly #openDir: string;

  constructor(readonly home: string) {
    this.#dir = jobsDir(home);
    this.#openDir = join(this.#dir, 'open');
  }

  async create(spec: JobSpec): Promise<JobHandle> {
    await mkdir(this.#openDir, { recursive: true });
    const path = jobLogPath(this.home, spec.job_id);
    const temp = join(this.#dir, `.${spec.job_id}.${randomUUID()}.tmp`);
    const line = `${JSON.stringify({ type: 'job_created', at: new Date().toISOString(), job: spec } satisfies JobRecord)}\n`;
    const file = await open(temp, 'wx');
    try {
      await file.writeFile(line);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    await writeFile(join(this.#openDir, marker(spec.parent_session_id, spec.job_id)), '');
    await syncDir(this.#openDir);
    await syncDir(this.#dir);
    const handle = await this.open(spec.job_id);
    if (!handle) throw new Error(`job ${spec.job_id} vanished as it was created`);
    return handle;
  }

  async open(jobId: string): Promise<JobHandle | null> {
    if (!isJobId(jobId)) return null;
    const path = jobLogPath(this.home, jobId);
    const read = await readLog(path);
    if (!read) return null;
    const file = await open(path, 'a');
    return new FileJobHandle(path, file, replay(read.records), read.bytes, () => this.#finished(read.records[0]!));
  }

  async read(jobId: string): Promise<JobState | null> {
    if (!isJobId(jobId)) return null;
    const read = await readLog(jobLogPath(this.home, jobId));
    return read ? replay(read.records) : null;
  }

  async list(): Promise<JobState[]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch {
      return [];
    }
    const states: JobState[] = [];
    for (const name of names) {
      if (!name.endsWith('.jsonl')) continue;
      try {
        const read = await readLog(join(this.#dir, name));
        if (read) states.push(replay(read.records));
      } catch (error) {
        log.warn({ err: error, file: name }, 'skipping a job log that cannot be read');
      }
    }
    return states.sort((a, b) => b.spec.created_at.localeCompare(a.spec.created_at));
  }

  async unfinishedOf(sessionId: string): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.#openDir);
    } catch {
      return [];
    }
    return names.filter((n) => n.startsWith(`${sessionId}.`)).map((n) => n.slice(sessionId.length + 1));
  }

  async requestCancel(jobId: string, reason: string): Promise<JobState | null> {
    if (!isJobId(jobId)) return null;
    const path = jobLogPath(this.home, jobId);
    if (!(await readLog(path))) return null;
    const file = await open(path, 'a');
    try {
      await file.write(`${JSON.stringify({ type: 'cancel_requested', at: new Date().toISOString(), reason } satisfies JobRecord)}\n`);
      await file.datasync();
    } finally {
      await file.close();
    }
    return this.read(jobId);
  }

  /** The job is over: its session no longer needs to find it. */
  async #finished(first: JobRecord): Promise<void> {
    if (first.type !== 'job_created') return;
    await rm(join(this.#openDir, marker(first.job.parent_session_id, first.job.job_id)), { force: true });
  }
}

function marker(sessionId: string, jobId: string): string {
  return `${sessionId}.${jobId}`;
}

class FileJobHandle implements JobHandle {
  readonly #path: string;
  readonly #file: FileHandle;
  readonly #onFinished: () => Promise<void>;
  /** Records waiting for the next write; one write and one fsync carry all of them. */
  #queue: { line: string; record: JobRecord; done: (error?: unknown) => void }[] = [];
  #writing = false;
  #closed = false;
  /** How far the file has been read for records other processes appended. */
  #readOffset: number;
  #poll: NodeJS.Timeout | null = null;
  readonly #cancelListeners: ((reason: string) => void)[] = [];

  constructor(
    path: string,
    file: FileHandle,
    readonly state: JobState,
    readOffset: number,
    onFinished: () => Promise<void>,
  ) {
    this.#path = path;
    this.#file = file;
    this.#readOffset = readOffset;
    this.#onFinished = onFinished;
  }

  append(...records: NewJobRecord[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`the log of job ${this.state.spec.job_id} is closed`));
    const at = new Date().toISOString();
    const written = records.map(
      (partial) =>
        new Promise<void>((resolve, reject) => {
          const record = JobRecord.parse({ ...partial, at });
          this.#queue.push({
            line: `${JSON.stringify(record)}\n`,
            record,
            done: (error) =>
              error === undefined ? resolve() : reject(error instanceof Error ? error : new Error('the job log could not be written', { cause: error })),
          });
        }),
    );
    this.#kick();
    return Promise.all(written).then(() => undefined);
  }

  #kick(): void {
    if (this.#writing) return;
    this.#writing = true;
    // #drain hands every write failure to the entries' callers; this catches only its own bugs.
    inBackground(this.#drain(), `writing the log of job ${this.state.spec.job_id}`);
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      try {
        await this.#file.write(batch.map((b) => b.line).join(''));
        await this.#file.datasync();
        let finished = false;
        for (const entry of batch) {
          apply(this.state, entry.record);
          if (entry.record.type === 'job_finished') finished = true;
        }
        if (finished)
          await this.#onFinished().catch((error: unknown) => log.warn({ err: error, job: this.state.spec.job_id }, 'could not clear the open-job marker'));
        for (const entry of batch) entry.done();
      } catch (error) {
        for (const entry of batch) entry.done(error);
      }
    }
    this.#writing = false;
  }

  onCancel(listener: (reason: string) => void): void {
    this.#cancelListeners.push(listener);
    this.#poll ??= setInterval(
      () =>
        void this.#readOthers().catch((error: unknown) =>
          log.warn({ err: error, job: this.state.spec.job_id }, 'could not read the job log for cancellations'),
        ),
      POLL_MS,
    );
    this.#poll.unref();
  }

  /** Read what was appended since the last look and pass on the cancellations (one this process wrote comes back too; a second cancel does nothing). */
  async #readOthers(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.#path)).size;
    } catch {
      return;
    }
    if (size <= this.#readOffset) return;
    const handle = await open(this.#path, 'r');
    try {
      const buffer = Buffer.alloc(size - this.#readOffset);
      await handle.read(buffer, 0, buffer.length, this.#readOffset);
      const text = buffer.toString('utf8');
      const end = text.lastIndexOf('\n');
      if (end < 0) return;
      this.#readOffset += Buffer.byteLength(text.slice(0, end + 1));
      for (const line of text.slice(0, end).split('\n')) {
        const record = parseLine(line);
        if (record?.type === 'cancel_requested') {
          apply(this.state, record);
          for (const listener of this.#cancelListeners) listener(record.reason);
        }
      }
    } finally {
      await handle.close();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    while (this.#writing || this.#queue.length > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await this.#file.close();
  }
}

/** The records of a log, skipping a torn or invalid line; null when there is no log. */
async function readLog(path: string): Promise<{ records: JobRecord[]; bytes: number } | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const records: JobRecord[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const record = parseLine(line);
    if (record) records.push(record);
    else log.warn({ file: path, line: index + 1 }, 'skipping a line of a job log that is torn or invalid');
  }
  if (records[0]?.type !== 'job_created') throw new Error(`${path} does not begin with job_created`);
  return { records, bytes: Buffer.byteLength(text) };
}

function parseLine(line: string): JobRecord | null {
  try {
    const parsed = JobRecord.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

async function syncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } catch {
    // Some file systems cannot fsync a directory; the rename is then as durable as they make it.
  } finally {
    await dir.close();
  }
}
