import { BusMessage, type Event } from '../../protocol/index.js';
import { log as processLog, type Logger } from '../log.js';
import { DurableError } from './errors.js';
import { LogRecord } from './records.js';
import type { DurableStore } from './store.js';

/** How long a durable append keeps retrying while NATS or JetStream is away. */
const DURABLE_APPEND_PATIENCE_MS = 60_000;
const RETRY_PAUSE_MS = 250;

/**
 * One session's log in JetStream. Events need no help here: the log stream captures the event
 * subjects, so publishing an event on the bus appends it. This class appends the other
 * records on the session's log subject, from the same connection, so the stream keeps them in
 * the order the session produced them, interleaved with its events.
 */
export class SessionLog {
  readonly #store: DurableStore;
  readonly #subject: string;
  readonly #logger: Logger;

  constructor(
    store: DurableStore,
    readonly rootId: string,
    readonly sessionId: string,
    logger: Logger = processLog,
  ) {
    this.#store = store;
    this.#subject = store.subjects.sessionLog(rootId, sessionId);
    this.#logger = logger;
  }

  /** Append without waiting: ordered behind everything this connection sent before. */
  append(record: LogRecord): void {
    try {
      this.#store.connection.publish(this.#subject, encode(record));
    } catch (error) {
      this.#logger.error({ err: error, session: this.sessionId, type: record.type }, 'could not append to the session log');
    }
  }

  /**
   * Append and wait until JetStream has stored the record (and, since it arrived after them,
   * everything appended before it). Retries through a disconnect; `id` makes a retried
   * publication count once.
   */
  async appendDurable(record: LogRecord, id: string): Promise<void> {
    const payload = encode(record);
    const deadline = Date.now() + DURABLE_APPEND_PATIENCE_MS;
    for (;;) {
      try {
        await this.#store.js.publish(this.#subject, payload, { msgID: `${this.sessionId}:${id}` });
        return;
      } catch (error) {
        if (Date.now() >= deadline) {
          throw new DurableError(`could not store a ${record.type} record of session ${this.sessionId}`, { cause: error });
        }
        this.#logger.warn({ err: error, session: this.sessionId, type: record.type }, 'storing a log record failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }
}

function encode(record: LogRecord): string {
  return JSON.stringify(LogRecord.parse(record));
}

/** One entry of a session's log, in stream order. */
export type LogEntry = { readonly kind: 'event'; readonly event: Event } | { readonly kind: 'record'; readonly record: LogRecord };

/**
 * Everything a session's log holds, oldest first: its events and its records. Entries that do
 * not validate are skipped with a warning (a rebuild works from what it can read).
 *
 * nats-server 2.9 only accepts a consumer filter inside one of the stream's subjects, so the
 * events and the records are read by two consumers and merged on their stream sequence.
 */
export async function readSessionLog(store: DurableStore, rootId: string, sessionId: string, logger: Logger = processLog): Promise<LogEntry[]> {
  const [events, records] = await Promise.all([
    readSubject(store, store.subjects.event(rootId, sessionId), sessionId, logger),
    readSubject(store, store.subjects.sessionLog(rootId, sessionId), sessionId, logger),
  ]);
  return [...events, ...records].sort((a, b) => a.seq - b.seq).map((e) => e.entry);
}

async function readSubject(
  store: DurableStore,
  filter: string,
  sessionId: string,
  logger: Logger,
): Promise<{ seq: number; entry: LogEntry }[]> {
  const consumer = await store.js.consumers.get(store.names.logStream, { filter_subjects: filter });
  const entries: { seq: number; entry: LogEntry }[] = [];
  try {
    let pending = (await consumer.info(true)).num_pending;
    while (pending > 0) {
      const msg = await consumer.next({ expires: 5_000 });
      if (msg === null) throw new DurableError(`reading the log of session ${sessionId} stalled with ${pending} entries left`);
      pending = msg.info.pending;
      const kind = msg.subject.split('.')[2];
      let value: unknown;
      try {
        value = JSON.parse(msg.string());
      } catch {
        logger.warn({ session: sessionId, subject: msg.subject }, 'skipped a log entry that is not JSON');
        continue;
      }
      if (kind === 'evt') {
        const parsed = BusMessage.safeParse(value);
        if (parsed.success && parsed.data.kind === 'event') entries.push({ seq: msg.seq, entry: { kind: 'event', event: parsed.data.event } });
        else logger.warn({ session: sessionId }, 'skipped an invalid event in the session log');
      } else {
        const parsed = LogRecord.safeParse(value);
        if (parsed.success) entries.push({ seq: msg.seq, entry: { kind: 'record', record: parsed.data } });
        else logger.warn({ session: sessionId }, 'skipped an invalid record in the session log');
      }
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return entries;
}
