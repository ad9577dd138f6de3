import { randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { inBackground, log as processLog, type Logger } from '../log.js';
import type { NatsLink } from '../nats/link.js';
import { DurableError } from './errors.js';
import { GaveUpError, untilDone } from './patience.js';

/** How much one outbox may hold before it refuses more (see Outbox). */
export interface OutboxLimits {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

/** Per session: a long model answer streamed during an outage is a few thousand entries. */
export const DEFAULT_OUTBOX_LIMITS: OutboxLimits = Object.freeze({ maxEntries: 10_000, maxBytes: 16 * 1024 * 1024 });

/** The outbox is at its limit: the entry was not taken. */
export class OutboxFullError extends DurableError {
  override name = 'OutboxFullError';
}

/** The outbox was discarded (its session went to another worker) before the entry was stored. */
export class OutboxDiscardedError extends DurableError {
  override name = 'OutboxDiscardedError';
}

interface Entry {
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly msgId: string;
  readonly done: () => void;
  readonly failed: (error: Error) => void;
}

export interface OutboxOptions {
  /** Named in the log lines: the session id. */
  readonly name: string;
  readonly limits?: OutboxLimits | undefined;
  readonly logger?: Logger | undefined;
}

const encoder = new TextEncoder();

/**
 * What one session writes to JetStream, stored in the order it was written, each entry
 * acknowledged by the server before the next goes out.
 *
 * An entry is published with a message id of its own (`Nats-Msg-Id`), so a retry of an entry
 * the server had stored already (its acknowledgement was lost with the connection) is dropped
 * by the stream's duplicate window, and every entry is stored exactly once. One at a time is
 * what keeps the order: a later entry never reaches the server before an earlier one is stored,
 * however the connection fails. While NATS is away entries wait here, in order; they go out
 * when it is back.
 *
 * The outbox is bounded (entries and bytes): past the limit `push` refuses with
 * OutboxFullError, unless told to force (a few notices about the refusal itself). Nothing it
 * has taken is dropped, except by `discard`, which says how much it dropped.
 */
export class Outbox {
  readonly #js: JetStreamClient;
  readonly #link: NatsLink;
  readonly #name: string;
  readonly #limits: OutboxLimits;
  readonly #logger: Logger;
  /** Message ids are `<name>.<incarnation>.<n>`: unique to this outbox, stable across retries. */
  readonly #incarnation = randomUUID().slice(0, 8);
  #next = 0;
  #queue: Entry[] = [];
  #head = 0;
  #bytes = 0;
  #running = false;
  #discarded = false;
  readonly #abort = new AbortController();
  #heldSince: number | null = null;
  #drainWaiters: (() => void)[] = [];

  constructor(js: JetStreamClient, link: NatsLink, options: OutboxOptions) {
    this.#js = js;
    this.#link = link;
    this.#name = options.name;
    this.#limits = options.limits ?? DEFAULT_OUTBOX_LIMITS;
    this.#logger = options.logger ?? processLog;
  }

  /** Entries not yet stored. */
  get entries(): number {
    return this.#queue.length - this.#head;
  }

  /** Bytes of payload not yet stored. */
  get bytes(): number {
    return this.#bytes;
  }

  get limits(): OutboxLimits {
    return this.#limits;
  }

  /** Past half its limits: a session then leaves out what it can (its streaming deltas). */
  get congested(): boolean {
    return this.entries >= this.#limits.maxEntries / 2 || this.#bytes >= this.#limits.maxBytes / 2;
  }

  /** True when the next `push` would be refused. */
  get full(): boolean {
    return this.entries >= this.#limits.maxEntries || this.#bytes >= this.#limits.maxBytes;
  }

  /**
   * Queue `payload` for `subject`; resolves once JetStream has stored it (and everything pushed
   * before it). Throws OutboxFullError when full, unless `force`. The promise rejects only when
   * the outbox is discarded, or the payload can never be stored (bigger than the server takes).
   */
  push(subject: string, payload: string, options: { force?: boolean } = {}): Promise<void> {
    if (this.#discarded) return Promise.reject(new OutboxDiscardedError(`the outbox of ${this.#name} was discarded`));
    if (this.full && options.force !== true) {
      throw new OutboxFullError(
        `${this.#name} holds ${this.entries} entries (${this.#bytes} bytes) not yet stored in JetStream: the limit is ` +
          `${this.#limits.maxEntries} entries or ${this.#limits.maxBytes} bytes`,
      );
    }
    const bytes = encoder.encode(payload);
    const msgId = `${this.#name}.${this.#incarnation}.${++this.#next}`;
    const stored = new Promise<void>((resolve, reject) => {
      this.#queue.push({ subject, payload: bytes, msgId, done: resolve, failed: reject });
    });
    this.#bytes += bytes.length;
    if (!this.#running) inBackground(this.#run(), `storing the outbox of ${this.#name}`, this.#logger);
    return stored;
  }

  /** Resolves when everything pushed so far is stored (or the outbox was discarded). */
  drained(): Promise<void> {
    if (this.entries === 0 || this.#discarded) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /**
   * Drop what is not stored yet and take nothing more: the session continues elsewhere, from
   * what its log holds. Returns how many entries were dropped (the caller says so, loudly).
   */
  discard(): number {
    if (this.#discarded) return 0;
    this.#discarded = true;
    this.#abort.abort();
    const dropped = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
    const error = new OutboxDiscardedError(`the outbox of ${this.#name} was discarded`);
    for (const entry of dropped) entry.failed(error);
    this.#wakeDrainWaiters();
    return dropped.length;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#head < this.#queue.length && !this.#discarded) {
        const entry = this.#queue[this.#head] as Entry;
        try {
          await untilDone((timeout) => this.#js.publish(entry.subject, entry.payload, { msgID: entry.msgId, timeout }), {
            link: this.#link,
            signal: this.#abort.signal,
            onHold: () => this.#hold(),
            onError: (error) => this.#logger.warn({ err: error, session: this.#name }, 'storing in JetStream failed; retrying'),
          });
        } catch (error) {
          if (this.#discarded) return;
          if (error instanceof GaveUpError) {
            // The connection is closed for good: nothing here can be stored any more.
            this.#logger.error({ session: this.#name, entries: this.entries }, 'the NATS connection closed with entries not stored');
            return;
          }
          this.#logger.error({ err: error, session: this.#name, subject: entry.subject }, 'an entry can never be stored in JetStream; dropped');
          this.#shift();
          entry.failed(error as Error);
          continue;
        }
        this.#shift();
        entry.done();
        if (this.#heldSince !== null) {
          this.#logger.info({ session: this.#name, heldMs: Date.now() - this.#heldSince }, 'NATS is back: storing held events');
          this.#heldSince = null;
        }
      }
    } finally {
      this.#running = false;
      if (this.entries === 0) this.#wakeDrainWaiters();
    }
  }

  #shift(): void {
    const entry = this.#queue[this.#head];
    if (!entry) return;
    this.#bytes -= entry.payload.length;
    this.#head++;
    // Compact now and then, so the array does not keep every entry ever pushed.
    if (this.#head >= 1024 || this.#head === this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #hold(): void {
    if (this.#heldSince !== null) return;
    this.#heldSince = Date.now();
    this.#logger.warn({ session: this.#name, entries: this.entries, bytes: this.#bytes }, 'holding events until NATS is back');
  }

  #wakeDrainWaiters(): void {
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }
}
