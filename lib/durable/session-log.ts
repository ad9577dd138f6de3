import { BusMessage, type Event } from '../../protocol/index.js';
import { encode as encodeMessage } from '../bus/codec.js';
import { log as processLog, type Logger } from '../log.js';
import { NatsLink } from '../nats/link.js';
import { DurableError } from './errors.js';
import { Outbox, OutboxFullError, type OutboxLimits } from './outbox.js';
import { LogRecord } from './records.js';
import type { DurableStore } from './store.js';

/**
 * One session's log in JetStream: its events (on its event subject, which the log stream
 * captures and gateways read) and its other records (on its log subject), interleaved in the
 * order the session produced them. Everything goes through one Outbox, so the order holds and
 * nothing is lost while NATS is away: it is stored when NATS is back (see outbox.ts).
 *
 * Events are bounded by the outbox's limits (past half of them the session leaves its streaming
 * deltas out; past them `publishEvent` refuses, and the session stops here and moves on, see
 * SessionRuntime.emit); records are always taken, since a refused record would
 * leave a log another worker cannot rebuild the session from, and they stop coming when the
 * session does.
 */
export class SessionLog {
  readonly #outbox: Outbox;
  readonly #logSubject: string;
  readonly #eventSubject: string;
  readonly #logger: Logger;
  #sealed = false;

  constructor(
    store: DurableStore,
    readonly rootId: string,
    readonly sessionId: string,
    logger: Logger = processLog,
    limits?: OutboxLimits,
  ) {
    this.#logSubject = store.subjects.sessionLog(rootId, sessionId);
    this.#eventSubject = store.subjects.event(rootId, sessionId);
    this.#logger = logger;
    this.#outbox = new Outbox(store.js, NatsLink.of(store.connection), { name: sessionId, limits, logger });
  }

  /** True while events are taken: the outbox is below its limits. */
  get accepting(): boolean {
    return !this.#outbox.full;
  }

  /** Past half the limits: the session leaves its streaming deltas out (SessionRuntime.emit). */
  get congested(): boolean {
    return this.#outbox.congested;
  }

  /** What is not stored yet. */
  get pending(): { readonly entries: number; readonly bytes: number } {
    return { entries: this.#outbox.entries, bytes: this.#outbox.bytes };
  }

  get limits(): OutboxLimits {
    return this.#outbox.limits;
  }

  /**
   * Publish one of the session's events (stored in order, see the class). Returns false when
   * the outbox is full and the event was not taken; `force` takes it anyway (the notices about
   * that refusal).
   */
  publishEvent(event: Event, options: { force?: boolean } = {}): boolean {
    if (this.#sealed) return true;
    let payload: string;
    try {
      payload = encodeMessage(this.#eventSubject, { kind: 'event', event });
    } catch (error) {
      // As on the bus: an event that is not valid is a bug, reported and not sent.
      this.#logger.error({ err: error, session: this.sessionId, type: event.msg.type }, 'could not publish an event');
      return true;
    }
    try {
      this.#outbox.push(this.#eventSubject, payload, options).catch(() => undefined);
      return true;
    } catch (error) {
      if (error instanceof OutboxFullError) return false;
      throw error;
    }
  }

  /** Append a record; it is stored after everything appended or published before it. */
  append(record: LogRecord): void {
    if (this.#sealed) return;
    this.#outbox.push(this.#logSubject, encode(record), { force: true }).catch((error: unknown) => {
      this.#logger.debug({ err: error, session: this.sessionId, type: record.type }, 'a log record was not stored');
    });
  }

  /**
   * Append and wait until JetStream has stored the record (and everything before it). Waits
   * through an outage; rejects only when the log was discarded (the session went elsewhere).
   */
  async appendDurable(record: LogRecord): Promise<void> {
    if (this.#sealed) throw new DurableError(`session ${this.sessionId} stopped on this worker: no ${record.type} record is stored`);
    try {
      await this.#outbox.push(this.#logSubject, encode(record), { force: true });
    } catch (error) {
      throw new DurableError(`could not store a ${record.type} record of session ${this.sessionId}`, { cause: error });
    }
  }

  /**
   * The session stopped on this worker: what is in the log now is what another worker takes it
   * up from, so nothing more goes in (a stopping actor may still record an aborted call). What
   * the log holds is still stored.
   */
  seal(): void {
    this.#sealed = true;
  }

  /** Resolves once everything appended or published so far is stored. */
  drained(): Promise<void> {
    return this.#outbox.drained();
  }

  /**
   * The session runs elsewhere now: drop what is not stored (it would conflict with what the
   * new holder writes). Says how much was dropped.
   */
  discard(): number {
    const dropped = this.#outbox.discard();
    if (dropped > 0) {
      this.#logger.error(
        { session: this.sessionId, dropped },
        'the session went to another worker: events and records this worker had not stored yet were dropped',
      );
    }
    return dropped;
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

async function readSubject(store: DurableStore, filter: string, sessionId: string, logger: Logger): Promise<{ seq: number; entry: LogEntry }[]> {
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
