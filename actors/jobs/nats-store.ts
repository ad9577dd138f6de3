import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { RequestError, TimeoutError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { ToolOutput } from '../../machines/tool-plan.js';
import { ABORTED_OUTPUT } from '../../lib/history/conversation-history.js';
import { subjects, type Subjects } from '../../lib/bus/subjects.js';
import { inBackground, log } from '../../lib/log.js';
import { JobInputError } from './input.js';
import { JobRecord, type JobSpec, type NewJobRecord } from './records.js';
import { apply, replay, type JobState } from './state.js';
import { ACCEPTED_REPORT, isJobId, isRecordedResult, refusedReport, ReportRequest, type JobHandle, type JobStore } from './store.js';

/** How long JetStream remembers a record's id, so a publication sent again after a timeout is stored once. */
const DUPLICATE_WINDOW_NS = 2 * 60 * 1_000_000_000;
const WRONG_LAST_SEQUENCE = 10071;
/** Publishing a record: tries, and the pause between them (NATS away for a moment). */
const PUBLISH_TRIES = 8;
const PUBLISH_RETRY_MS = 500;
/**
 * How long one attempt to pass a result on waits for the runner's answer (it logs the result
 * first). A runner that died holding the request never answers: the result is sent again, and
 * a runner that did take it answers the copy as it answered the first (JobRunner.report).
 */
const REPORT_TIMEOUT_MS = 5_000;
/** How long a result waits for a runner to appear (the job's session being adopted by another worker). */
const REPORT_PATIENCE_MS = 60_000;
const REPORT_RETRY_MS = 500;

const ReportReply = z.object({ text: z.string(), success: z.boolean() });
/** A report whose call was aborted ends as any aborted call does (the history's aborted output). */
const ABORTED_REPORT: ToolOutput = { text: ABORTED_OUTPUT, success: false };

export function jobStreamName(namespace: string): string {
  return `TROUPE_JOBS_${namespace.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/**
 * Jobs in JetStream, for workers on NATS: one stream per namespace holds every job's records,
 * on subjects of the job (`troupe.<ns>.jobs.<job_id>.<part>`):
 *
 * - `created`: `job_created`, the first record, published only if the subject is empty;
 * - `log`: runner records, `item_started`, `item_retry`, `cancel_requested`;
 * - `item.<row_index>`: the item's outcome (`item_result` or `item_failed`), published only if
 *   the subject is empty, so an item has at most one outcome whichever runner logs it;
 * - `end`: `job_finished`, also at most once.
 *
 * The job's state is the replay of all of them in stream order, as with the file log. A handle
 * follows the job with an ordered consumer, so its state includes what other processes append
 * (a cancellation from `troupe jobs cancel`, an outcome logged by a runner that lost its session).
 */
export class NatsJobStore implements JobStore {
  readonly subjects: Subjects;
  readonly stream: string;

  private constructor(
    readonly connection: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    namespace: string,
  ) {
    this.subjects = subjects(namespace);
    this.stream = jobStreamName(namespace);
  }

  /** The store of `namespace`, its stream created if need be (every worker may try at once). */
  static async open(connection: NatsConnection, namespace: string): Promise<NatsJobStore> {
    const jsm = await jetstreamManager(connection);
    const store = new NatsJobStore(connection, jetstream(connection), jsm, namespace);
    const exists = () =>
      jsm.streams.info(store.stream).then(
        () => true,
        () => false,
      );
    if (!(await exists())) {
      try {
        await jsm.streams.add({
          name: store.stream,
          subjects: [store.subjects.allJobs()],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          duplicate_window: DUPLICATE_WINDOW_NS,
        });
      } catch (error) {
        if (!(await exists())) throw error;
      }
    }
    return store;
  }

  async create(spec: JobSpec): Promise<JobHandle> {
    const record = JobRecord.parse({ type: 'job_created', at: new Date().toISOString(), job: spec });
    const outcome = await this.publish(this.subjects.job(spec.job_id, 'created'), record, true);
    if (outcome === 'taken') throw new Error(`job ${spec.job_id} exists already`);
    const handle = await this.open(spec.job_id);
    if (!handle) throw new Error(`job ${spec.job_id} vanished as it was created`);
    return handle;
  }

  async open(jobId: string): Promise<JobHandle | null> {
    if (!(await this.#stored(jobId, 'created'))) return null;
    const handle = new NatsJobHandle(this, jobId);
    await handle.caughtUp();
    return handle;
  }

  async read(jobId: string): Promise<JobState | null> {
    if (!(await this.#stored(jobId, 'created'))) return null;
    const handle = new NatsJobHandle(this, jobId);
    try {
      await handle.caughtUp();
      return handle.state;
    } finally {
      await handle.close();
    }
  }

  async list(): Promise<JobState[]> {
    const states: JobState[] = [];
    for (const jobId of await this.#jobIds()) {
      const state = await this.read(jobId).catch((error: unknown) => {
        log.warn({ err: error, job: jobId }, 'skipping a job that cannot be read');
        return null;
      });
      if (state) states.push(state);
    }
    return states.sort((a, b) => b.spec.created_at.localeCompare(a.spec.created_at));
  }

  /** Reads only each job's first record and whether it has ended, not the whole job. */
  async unfinishedOf(sessionId: string): Promise<string[]> {
    const found: string[] = [];
    for (const jobId of await this.#jobIds()) {
      if ((await this.#spec(jobId))?.parent_session_id !== sessionId) continue;
      if (!(await this.#stored(jobId, 'end'))) found.push(jobId);
    }
    return found;
  }

  async requestCancel(jobId: string, reason: string): Promise<JobState | null> {
    if (!(await this.#stored(jobId, 'created'))) return null;
    await this.publish(this.subjects.job(jobId, 'log'), JobRecord.parse({ type: 'cancel_requested', at: new Date().toISOString(), reason }), false);
    return this.read(jobId);
  }

  /**
   * Pass a result on to the job's runner, wherever it runs. While no runner answers (its
   * session is being adopted by another worker, or its process died with the request) the
   * result is sent again, unless the job has ended: then the item's recorded outcome answers
   * (`#reportAfterEnd`). Aborting `signal` ends the wait at once: the request in flight is no
   * longer waited for (what it comes to is nobody's answer), and nothing is sent after it.
   */
  async report(jobId: string, request: ReportRequest, signal: AbortSignal): Promise<ToolOutput> {
    if (signal.aborted) return ABORTED_REPORT;
    if (!isJobId(jobId)) return refusedReport(`there is no job ${jobId}`);
    let stop!: () => void;
    const aborted = new Promise<ToolOutput>((resolve) => (stop = () => resolve(ABORTED_REPORT)));
    signal.addEventListener('abort', stop, { once: true });
    const reporting = this.#report(jobId, request, signal);
    try {
      return await Promise.race([reporting, aborted]);
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }

  async #report(jobId: string, request: ReportRequest, signal: AbortSignal): Promise<ToolOutput> {
    const giveUpAt = Date.now() + REPORT_PATIENCE_MS;
    for (;;) {
      if (signal.aborted) return ABORTED_REPORT;
      try {
        const reply = await this.connection.request(this.subjects.jobReport(jobId), JSON.stringify(request), { timeout: REPORT_TIMEOUT_MS });
        const parsed = ReportReply.safeParse(safeJson(reply.string()));
        return parsed.success ? parsed.data : refusedReport(`the runner of job ${jobId} answered with something that is not a tool output`);
      } catch (error) {
        const unanswered = error instanceof TimeoutError || (error instanceof RequestError && (error.isNoResponders() || error.cause instanceof TimeoutError));
        if (!unanswered) throw error;
      }
      if (!(await this.#stored(jobId, 'created'))) return refusedReport(`there is no job ${jobId}`);
      if (await this.#stored(jobId, 'end')) return this.#reportAfterEnd(jobId, request);
      if (Date.now() >= giveUpAt) return refusedReport(`job ${jobId} has no runner now; it goes on when its session is taken up again`);
      await sleep(REPORT_RETRY_MS, undefined, { signal }).catch(() => undefined);
    }
  }

  /**
   * A report to a job that has ended, which no runner answers: a copy of the item's recorded
   * result (sent again after its answer was lost) is accepted, as the runner accepted it;
   * anything else is refused. Reads the item's outcome alone, not the whole job.
   */
  async #reportAfterEnd(jobId: string, request: ReportRequest): Promise<ToolOutput> {
    const item = (await this.#spec(jobId))?.items.find((i) => i.item_id === request.item_id);
    const stored = item ? await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.subjects.job(jobId, `item.${item.row_index}`) }) : null;
    const outcome = stored ? JobRecord.safeParse(safeJson(stored.string())) : null;
    const recorded = outcome?.success === true && outcome.data.type === 'item_result' ? { agentId: outcome.data.agent_id, result: outcome.data.result } : null;
    return isRecordedResult(recorded, request.agent_id, request.result) ? ACCEPTED_REPORT : refusedReport(`job ${jobId} has ended`);
  }

  /** The job's spec, from its first record; null when there is no such job. */
  async #spec(jobId: string): Promise<JobSpec | null> {
    const created = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.subjects.job(jobId, 'created') });
    const record = created ? JobRecord.safeParse(safeJson(created.string())) : null;
    return record?.success === true && record.data.type === 'job_created' ? record.data.job : null;
  }

  /**
   * Store one record; with `once`, only if its subject holds nothing yet ('taken' when it
   * does). Resolves to the record's stream sequence (or the one already there).
   */
  async publish(subject: string, record: JobRecord, once: boolean): Promise<number | 'taken'> {
    const msgID = randomUUID();
    const payload = JSON.stringify(record);
    checkFits(this.connection, Buffer.byteLength(payload));
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.js.publish(subject, payload, { msgID, ...(once ? { expect: { lastSubjectSequence: 0 } } : {}) });
        return ack.seq;
      } catch (error) {
        if (once && error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE) return 'taken';
        if (error instanceof JetStreamApiError || attempt >= PUBLISH_TRIES) throw error;
        // Timed out or disconnected: the same id again, so a copy that did land is not stored twice.
        await new Promise((resolve) => setTimeout(resolve, PUBLISH_RETRY_MS));
      }
    }
  }

  /** The sequence of the last record on one of a job's subjects, or null. */
  async lastSeq(subject: string): Promise<number | null> {
    const message = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject });
    return message?.seq ?? null;
  }

  /** Whether the job has a record on `part`; false for an id that is not a job id (it names no subject). */
  async #stored(jobId: string, part: string): Promise<boolean> {
    if (!isJobId(jobId)) return false;
    return (await this.lastSeq(this.subjects.job(jobId, part))) !== null;
  }

  /** Job ids, from the stream's `created` subjects (one request; see durable/store.ts leaseKeys). */
  async #jobIds(): Promise<string[]> {
    const filter = `${this.subjects.allJobs().slice(0, -1)}*.created`;
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: filter });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.split('.').at(-2)!);
  }
}

/**
 * A job is one NATS message (its op, its `job_created` record: the items with their rows), so
 * it must fit the server's max_payload, which is less than what an input may hold (16 MiB).
 */
export function checkFits(connection: NatsConnection, bytes: number): void {
  const most = connection.info?.max_payload;
  if (most !== undefined && bytes > most) {
    throw new JobInputError(
      `the job is ${bytes} bytes as a NATS message, more than the ${most} its server takes (max_payload): split the input, or raise the server's max_payload`,
    );
  }
}

/** Which subject of its job a record goes to, and whether it may be stored only once. */
function placeOf(store: NatsJobStore, jobId: string, state: JobState, record: JobRecord): { subject: string; once: boolean } {
  switch (record.type) {
    case 'item_result':
    case 'item_failed': {
      const item = state.items.get(record.item_id);
      if (!item) throw new Error(`job ${jobId} has no item ${record.item_id}`);
      return { subject: store.subjects.job(jobId, `item.${item.spec.row_index}`), once: true };
    }
    case 'job_finished':
      return { subject: store.subjects.job(jobId, 'end'), once: true };
    case 'job_created':
      return { subject: store.subjects.job(jobId, 'created'), once: true };
    default:
      return { subject: store.subjects.job(jobId, 'log'), once: false };
  }
}

/** A job followed from JetStream: its state is every record of the job applied in stream order. */
class NatsJobHandle implements JobHandle {
  readonly #store: NatsJobStore;
  readonly #jobId: string;
  #state: JobState | null = null;
  /** Stream sequence of the last record applied. */
  #applied = 0;
  readonly #waiters = new Set<{ seq: number; resolve: () => void }>();
  readonly #cancelListeners: ((reason: string) => void)[] = [];
  #messages: ConsumerMessages | null = null;
  #reports: Subscription | null = null;
  #closed = false;
  readonly #ready: Promise<void>;

  constructor(store: NatsJobStore, jobId: string) {
    this.#store = store;
    this.#jobId = jobId;
    let ready!: () => void;
    let failed!: (error: unknown) => void;
    this.#ready = new Promise<void>((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    void this.#follow(ready).catch(failed);
  }

  get state(): JobState {
    if (!this.#state) throw new Error(`job ${this.#jobId} has not been read yet`);
    return this.#state;
  }

  /** Resolves once every record stored when the handle opened is applied. */
  caughtUp(): Promise<void> {
    return this.#ready;
  }

  async #follow(ready: () => void): Promise<void> {
    const consumer = await this.#store.js.consumers.get(this.#store.stream, { filter_subjects: this.#store.subjects.allJobs(this.#jobId) });
    const messages = await consumer.consume();
    this.#messages = messages;
    if (this.#closed) await messages.close();
    for await (const message of messages) {
      const parsed = JobRecord.safeParse(safeJson(message.string()));
      if (!parsed.success) log.warn({ job: this.#jobId, subject: message.subject }, 'skipping a job record that is not valid');
      else this.#apply(parsed.data);
      this.#applied = message.seq;
      for (const waiter of this.#waiters) {
        if (waiter.seq > this.#applied) continue;
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
      if (message.info.pending === 0 && this.#state) ready();
    }
  }

  #apply(record: JobRecord): void {
    if (!this.#state) {
      if (record.type === 'job_created') this.#state = replay([record]);
      return;
    }
    apply(this.#state, record);
    if (record.type === 'cancel_requested') for (const listener of this.#cancelListeners) listener(record.reason);
  }

  /** Resolves once the feed has applied the record at `seq`. */
  #until(seq: number): Promise<void> {
    if (seq <= this.#applied) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add({ seq, resolve }));
  }

  async append(...records: NewJobRecord[]): Promise<void> {
    if (this.#closed) throw new Error(`job ${this.#jobId} is closed`);
    const at = new Date().toISOString();
    let last = 0;
    for (const partial of records) {
      const record = JobRecord.parse({ ...partial, at });
      const { subject, once } = placeOf(this.#store, this.#jobId, this.state, record);
      const seq = await this.#store.publish(subject, record, once);
      // Stored once already (another runner logged the item's outcome): the state shows that one.
      last = Math.max(last, seq === 'taken' ? ((await this.#store.lastSeq(subject)) ?? 0) : seq);
    }
    await this.#until(last);
  }

  onCancel(listener: (reason: string) => void): void {
    this.#cancelListeners.push(listener);
  }

  serveReports(handler: (request: ReportRequest) => Promise<ToolOutput>): void {
    this.#reports ??= this.#store.connection.subscribe(this.#store.subjects.jobReport(this.#jobId), {
      callback: (error, message) => {
        if (error) return;
        const request = ReportRequest.safeParse(safeJson(message.string()));
        const answer = request.success ? handler(request.data) : Promise.resolve(refusedReport('the report is not valid'));
        inBackground(
          answer
            .catch((e: unknown) => refusedReport((e as Error).message))
            .then((output) => message.respond(JSON.stringify({ text: output.text, success: output.success }))),
          'answering a job report',
        );
      },
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reports?.unsubscribe();
    await this.#messages?.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
