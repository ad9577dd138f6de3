import { randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { inBackground, log as processLog, type Logger } from '../log.js';
import type { NatsLink } from '../nats/link.js';
import { DurableError } from './errors.js';
import { ATTEMPT_TIMEOUT_MS, isPermanent, sleep } from './patience.js';

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
  /** JetStream acknowledged it: its sequence in the stream. */
  seq: number | null;
  /** It can never be stored (the client refused it): dropped, in its turn. */
  refused: Error | null;
}

/**
 * How far the publications in flight may run ahead of the oldest one not yet acknowledged:
 * entries and bytes. One at a time stored about 2,000 entries a second on a loaded machine,
 * less than a fast model streams; with a window, the outbox keeps up (bench/README.md, bus).
 */
const WINDOW_ENTRIES = 64;
const WINDOW_BYTES = 4 * 1024 * 1024;
/** Pauses before sending again after a failure while the link was up: 100 ms, doubling, up to 1 s. */
const FIRST_PAUSE_MS = 100;
const LAST_PAUSE_MS = 1_000;

export interface OutboxOptions {
  /** Named in the log lines: the session id. */
  readonly name: string;
  readonly limits?: OutboxLimits | undefined;
  readonly logger?: Logger | undefined;
}

const encoder = new TextEncoder();

/**
 * What one session writes to JetStream, stored in the order it was written.
 *
 * Entries go out in order, several in flight at once (a window of WINDOW_ENTRIES entries or
 * WINDOW_BYTES bytes past the oldest one not acknowledged), each with a message id of its own
 * (`Nats-Msg-Id`). The server stores what one connection sends in the order it arrives, so the
 * stream holds them in the outbox's order. When anything goes wrong (the link goes down, an
 * attempt fails or times out), everything from the oldest entry not acknowledged on is sent
 * again, in order, once the link is up: what the server had already stored is dropped by the
 * stream's duplicate window (its acknowledgement was lost), so every entry is stored exactly
 * once, and the server, having stored a prefix of what it was sent, stores the rest after it.
 * Entries are completed (their promise resolved) strictly in order; an acknowledgement whose
 * stream sequence is below its predecessor's is logged as an error (the server stored them out
 * of order, which a single server does not do). The first entry, and the first after any
 * failure, goes alone: the window opens once JetStream has acknowledged it. While NATS is away
 * entries wait here, in order; they go out when it is back.
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
  /** The oldest entry not completed. */
  #head = 0;
  /** The next entry to send: those from #head up to it are in flight (or acknowledged). */
  #sent = 0;
  /** Bytes of the entries from #head up to #sent. */
  #windowBytes = 0;
  /** Bumped when everything in flight is sent again: of older rounds, only acknowledgements count. */
  #round = 0;
  /** Waiting (for the link, or a pause) before sending again. */
  #waiting = false;
  /**
   * One entry at a time until JetStream acknowledges one: right after a reconnect it may not
   * answer yet (no responders), and of a window sent then the first could fail and a later one
   * be stored, out of order.
   */
  #probing = true;
  #pause = FIRST_PAUSE_MS;
  /** The stream sequence of the last entry completed. */
  #lastSeq = 0;
  #bytes = 0;
  #discarded = false;
  #gaveUp = false;
  readonly #abort = new AbortController();
  /** Stops watching the link for the round in flight. */
  #unwatch: (() => void) | null = null;
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
      this.#queue.push({ subject, payload: bytes, msgId, done: resolve, failed: reject, seq: null, refused: null });
    });
    this.#bytes += bytes.length;
    this.#pump();
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
    this.#stopWatching();
    this.#abort.abort();
    const dropped = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#sent = 0;
    this.#windowBytes = 0;
    this.#bytes = 0;
    const error = new OutboxDiscardedError(`the outbox of ${this.#name} was discarded`);
    for (const entry of dropped) entry.failed(error);
    this.#wakeDrainWaiters();
    return dropped.length;
  }

  /** Send what the window has room for, in order. */
  #pump(): void {
    if (this.#discarded || this.#gaveUp || this.#waiting) return;
    if (this.#sent >= this.#queue.length) return;
    if (!this.#link.up) return this.#resend(null);
    this.#watchLink();
    const window = this.#probing ? 1 : WINDOW_ENTRIES;
    while (this.#sent < this.#queue.length && this.#sent - this.#head < window && this.#windowBytes < WINDOW_BYTES) {
      const entry = this.#queue[this.#sent] as Entry;
      this.#sent++;
      this.#windowBytes += entry.payload.length;
      if (entry.seq === null && entry.refused === null) this.#send(entry, this.#round);
    }
  }

  #send(entry: Entry, round: number): void {
    this.#js.publish(entry.subject, entry.payload, { msgID: entry.msgId, timeout: ATTEMPT_TIMEOUT_MS }).then(
      (ack) => {
        // An acknowledgement is one whichever round sent it: the entry is stored.
        if (this.#discarded || entry.seq !== null) return;
        entry.seq = ack.seq;
        this.#pause = FIRST_PAUSE_MS;
        this.#probing = false;
        this.#complete();
        this.#pump();
      },
      (error: unknown) => {
        if (this.#discarded || round !== this.#round || entry.seq !== null) return;
        if (isPermanent(error)) {
          this.#logger.error({ err: error, session: this.#name, subject: entry.subject }, 'an entry can never be stored in JetStream; dropped');
          entry.refused = error as Error;
          this.#complete();
          this.#pump();
          return;
        }
        this.#resend(error);
      },
    );
  }

  /** Complete the entries at the head that are stored (or refused), in order. */
  #complete(): void {
    for (;;) {
      const entry = this.#queue[this.#head];
      if (!entry || (entry.seq === null && entry.refused === null)) break;
      this.#shift();
      if (entry.refused) {
        entry.failed(entry.refused);
        continue;
      }
      const seq = entry.seq as number;
      if (seq <= this.#lastSeq) {
        this.#logger.error(
          { session: this.#name, subject: entry.subject, seq, after: this.#lastSeq },
          'JetStream stored an entry before the one pushed ahead of it',
        );
      }
      this.#lastSeq = Math.max(this.#lastSeq, seq);
      entry.done();
    }
    if (this.#heldSince !== null) {
      this.#logger.info({ session: this.#name, heldMs: Date.now() - this.#heldSince }, 'NATS is back: storing held events');
      this.#heldSince = null;
    }
    if (this.entries === 0) {
      this.#stopWatching();
      this.#wakeDrainWaiters();
    }
  }

  /**
   * Something in flight may not have been stored: once the link is up (after a pause, when it
   * was up all along), send again everything from the oldest entry not acknowledged.
   */
  #resend(error: unknown): void {
    if (this.#waiting) return;
    this.#round++;
    this.#waiting = true;
    this.#probing = true;
    this.#sent = this.#head;
    this.#windowBytes = 0;
    this.#stopWatching();
    inBackground(this.#waitToResend(error), `resending the outbox of ${this.#name}`, this.#logger);
  }

  async #waitToResend(error: unknown): Promise<void> {
    const signal = this.#abort.signal;
    if (error !== null && this.#link.up) {
      this.#logger.warn({ err: error, session: this.#name }, 'storing in JetStream failed; retrying');
      await sleep(this.#pause, signal);
      this.#pause = Math.min(LAST_PAUSE_MS, this.#pause * 2);
    }
    while (!this.#link.up && !this.#link.closed && !signal.aborted) {
      this.#hold();
      await this.#link.whenUp(signal);
    }
    this.#waiting = false;
    if (signal.aborted) return;
    if (this.#link.closed) {
      // The connection is closed for good: nothing here can be stored any more.
      this.#gaveUp = true;
      this.#logger.error({ session: this.#name, entries: this.entries }, 'the NATS connection closed with entries not stored');
      return;
    }
    this.#pump();
  }

  /**
   * While entries are in flight: when the link goes down, they are sent again once it is back.
   * Called from #pump with the link up, so a disconnect after this call is one the entries in
   * flight may not have survived. A listener rather than a promise: this is set up each time
   * the outbox goes from empty to not, about once per event.
   */
  #watchLink(): void {
    if (this.#unwatch) return;
    const round = this.#round;
    this.#unwatch = this.#link.onDisconnect(() => {
      if (this.#discarded || round !== this.#round) return;
      this.#stopWatching();
      this.#resend(null);
    });
  }

  #stopWatching(): void {
    this.#unwatch?.();
    this.#unwatch = null;
  }

  #shift(): void {
    const entry = this.#queue[this.#head];
    if (!entry) return;
    this.#bytes -= entry.payload.length;
    if (this.#head < this.#sent) this.#windowBytes -= entry.payload.length;
    this.#head++;
    if (this.#sent < this.#head) this.#sent = this.#head;
    // Compact now and then, so the array does not keep every entry ever pushed.
    if (this.#head >= 1024 || this.#head === this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#sent -= this.#head;
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
