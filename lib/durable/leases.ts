import { JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import { inBackground, log as processLog, type Logger } from '../log.js';
import type { NatsLink } from '../nats/link.js';
import { LeaseLostError } from './errors.js';
import { leaseKeys, type DurableStore } from './store.js';

/**
 * Who runs a session, and until when. nats-server 2.9 ignores per-key TTLs, so the expiry is
 * part of the value, and every change is a compare-and-set on the key's revision: of two
 * workers that saw the same expired lease, exactly one can take it.
 *
 * The expiry is a wall-clock time written by the holder and read by others, so the workers'
 * clocks must agree to well within a lease (NTP does this).
 */
export const LeaseValue = z.object({
  worker_id: z.string(),
  /** Milliseconds since the epoch; 0 means handed over (adopt at once). */
  expires_at: z.number(),
  root_id: z.string(),
});
export type LeaseValue = z.infer<typeof LeaseValue>;

export interface LeaseTiming {
  /** How long a lease lasts after its last renewal. */
  readonly leaseMs: number;
  /** How often the holder renews (a third of the lease, so two renewals can fail in a row). */
  readonly renewMs: number;
}

export const DEFAULT_LEASE_MS = 3_000;

/** How many leases `expired()` reads at once. */
const EXPIRY_READ_BATCH = 64;

export function leaseTiming(leaseMs: number = DEFAULT_LEASE_MS): LeaseTiming {
  return { leaseMs, renewMs: Math.max(50, Math.floor(leaseMs / 3)) };
}

/** A lease as read from the bucket, with the revision a takeover must match. */
export interface SeenLease {
  readonly sessionId: string;
  readonly value: LeaseValue;
  readonly revision: number;
}

const WRONG_LAST_SEQUENCE = 10071;

function isConflict(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return error.code === WRONG_LAST_SEQUENCE;
  return error instanceof Error && /wrong last sequence|key exists/i.test(error.message);
}

/** The leases one worker holds: claimed, renewed on a timer, released or handed over. */
export class Leases {
  readonly #kv: KV;
  readonly #workerId: string;
  readonly #timing: LeaseTiming;
  readonly #logger: Logger;
  readonly #held = new Map<string, { value: LeaseValue; revision: number }>();
  readonly #onLost: (sessionId: string) => void;
  #timer: NodeJS.Timeout | null = null;
  #renewing = false;

  /** When given, a renewal in flight as the connection drops is given up on, not waited for. */
  readonly #link: NatsLink | undefined;

  readonly #listKeys: () => Promise<string[]>;
  /** Removes every trace of a released key, so the expiry scan no longer reads it. */
  readonly #forgetKey: (sessionId: string) => Promise<unknown>;

  constructor(
    store: Pick<DurableStore, 'leases' | 'jsm' | 'names'>,
    workerId: string,
    timing: LeaseTiming,
    onLost: (sessionId: string) => void,
    logger: Logger = processLog,
    link?: NatsLink,
  ) {
    this.#kv = store.leases;
    this.#listKeys = () => leaseKeys(store);
    this.#forgetKey = (sessionId) => store.jsm.streams.purge(`KV_${store.names.leaseBucket}`, { filter: `$KV.${store.names.leaseBucket}.${sessionId}` });
    this.#link = link;
    this.#workerId = workerId;
    this.#timing = timing;
    this.#onLost = onLost;
    this.#logger = logger.child({ component: 'leases' });
  }

  get timing(): LeaseTiming {
    return this.#timing;
  }

  holds(sessionId: string): boolean {
    return this.#held.has(sessionId);
  }

  /** Claim the lease of a session this worker creates; fails if anyone holds one. */
  async claim(sessionId: string, rootId: string): Promise<void> {
    const value = this.#fresh(rootId);
    try {
      const revision = await this.#kv.create(sessionId, JSON.stringify(value));
      this.#held.set(sessionId, { value, revision });
    } catch (error) {
      if (isConflict(error)) throw new LeaseLostError(sessionId, { cause: error });
      throw error;
    }
  }

  /** Take an expired lease over; false when another worker was faster. */
  async takeOver(seen: SeenLease): Promise<boolean> {
    const value = this.#fresh(seen.value.root_id);
    try {
      const revision = await this.#kv.update(seen.sessionId, JSON.stringify(value), seen.revision);
      this.#held.set(seen.sessionId, { value, revision });
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  /**
   * The session ended: its key goes, so nothing adopts it and gateways call it unknown. The
   * delete is a compare-and-set (only the holder's lease goes); the key's subject is then
   * purged, delete marker and all, since `expired()` reads every key the bucket lists: with
   * the markers left, each scan read every session the namespace ever had (a job of 1,000
   * items made the scans of its last items read 1,000 keys each, per worker, every second).
   */
  async release(sessionId: string): Promise<void> {
    const held = this.#held.get(sessionId);
    this.#held.delete(sessionId);
    if (!held) return;
    try {
      await this.#lastChange(sessionId, held.revision, (revision) => this.#kv.delete(sessionId, { previousSeq: revision }));
    } catch (error) {
      this.#logger.warn({ err: error, session: sessionId }, 'could not release a lease');
      return;
    }
    await this.#forgetKey(sessionId).catch((error: unknown) =>
      this.#logger.debug({ err: error, session: sessionId }, 'could not purge a released lease (the scans read its delete marker)'),
    );
  }

  /** Give a live session away: expired at once, so the next worker that looks adopts it. */
  async handOver(sessionId: string): Promise<void> {
    const held = this.#held.get(sessionId);
    this.#held.delete(sessionId);
    if (!held) return;
    const value = JSON.stringify({ ...held.value, expires_at: 0 });
    await this.#lastChange(sessionId, held.revision, (revision) => this.#kv.update(sessionId, value, revision)).catch((error: unknown) =>
      this.#logger.warn({ err: error, session: sessionId }, 'could not hand a lease over'),
    );
  }

  /** Forget a lease without touching the bucket (the session was lost to another worker). */
  forget(sessionId: string): void {
    this.#held.delete(sessionId);
  }

  start(): void {
    this.#timer ??= setInterval(() => inBackground(this.#renewAll(), 'renewing the leases', this.#logger), this.#timing.renewMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Renew every held lease now, not at the next tick (NATS is back: they may have run out). */
  renewNow(): void {
    if (this.#timer) inBackground(this.#renewAll(), 'renewing the leases', this.#logger);
  }

  /** Leases of other workers (or handed over) whose time is up, as of now. */
  async expired(): Promise<SeenLease[]> {
    const now = Date.now();
    const found: SeenLease[] = [];
    const keys: string[] = [];
    for (const key of await this.#listKeys()) if (!this.#held.has(key)) keys.push(key);
    // Read in batches: one round trip per batch rather than per lease.
    for (let i = 0; i < keys.length; i += EXPIRY_READ_BATCH) {
      const batch = keys.slice(i, i + EXPIRY_READ_BATCH);
      const entries = await Promise.all(batch.map((key) => this.#kv.get(key).catch(() => null)));
      entries.forEach((entry, j) => {
        if (!entry || entry.operation !== 'PUT') return;
        const parsed = LeaseValue.safeParse(safeJson(entry.string()));
        if (parsed.success && parsed.data.expires_at <= now) found.push({ sessionId: batch[j]!, value: parsed.data, revision: entry.revision });
      });
    }
    return found;
  }

  /** Whether a session has a lease at all (the gateway's "unknown session" check). */
  async exists(sessionId: string): Promise<boolean> {
    const entry = await this.#kv.get(sessionId);
    return entry !== null && entry.operation === 'PUT';
  }

  /**
   * The last write to a lease this worker lets go of. A renewal already on the wire when the
   * lease was let go of can land first and move the revision on; the change would then fail
   * and the lease live on for a whole lease time. So on a conflict, if the key still names
   * this worker, the newer revision is ours and the change is made again on it.
   */
  async #lastChange(sessionId: string, revision: number, change: (revision: number) => Promise<unknown>): Promise<void> {
    try {
      await change(revision);
    } catch (error) {
      if (!isConflict(error)) throw error;
      const entry = await this.#kv.get(sessionId);
      const current = entry?.operation === 'PUT' ? LeaseValue.safeParse(safeJson(entry.string())) : null;
      if (!entry || !current?.success || current.data.worker_id !== this.#workerId) throw error;
      await change(entry.revision);
    }
  }

  #fresh(rootId: string): LeaseValue {
    return { worker_id: this.#workerId, expires_at: Date.now() + this.#timing.leaseMs, root_id: rootId };
  }

  async #renewAll(): Promise<void> {
    if (this.#renewing) return;
    this.#renewing = true;
    try {
      const link = this.#link;
      const renewals = Promise.all([...this.#held.keys()].map((id) => this.#renew(id)));
      if (!link) {
        await renewals;
        return;
      }
      // A renewal sent just before the connection dropped would be waited for until its
      // timeout, holding up the renewals after the reconnect: stop waiting when the link drops.
      const settled = new AbortController();
      await Promise.race([renewals, link.downSince(link.epoch, settled.signal)]).finally(() => settled.abort());
    } finally {
      this.#renewing = false;
    }
  }

  async #renew(sessionId: string): Promise<void> {
    const held = this.#held.get(sessionId);
    if (!held) return;
    const value = this.#fresh(held.value.root_id);
    try {
      const revision = await this.#kv.update(sessionId, JSON.stringify(value), held.revision);
      if (this.#held.get(sessionId) === held) this.#held.set(sessionId, { value, revision });
    } catch (error) {
      if (this.#held.get(sessionId) !== held) return;
      if (isConflict(error)) {
        // A renewal given up on as the connection dropped may have landed after all: then the
        // key still names this worker, and its newer revision is ours to renew from.
        const owner = await this.#owner(sessionId);
        if (owner === 'unknown') return;
        if (typeof owner === 'number') {
          if (this.#held.get(sessionId) === held) this.#held.set(sessionId, { value: held.value, revision: owner });
          return;
        }
        // Someone took the session over (this worker was away too long): stop running it.
        this.#held.delete(sessionId);
        this.#logger.warn({ session: sessionId }, 'lost the lease of a session to another worker');
        this.#onLost(sessionId);
        return;
      }
      // Disconnected: keep trying. The lease may expire meanwhile; if nobody took it, the
      // revision still matches and the next renewal simply succeeds.
      this.#logger.debug({ err: error, session: sessionId }, 'renewing a lease failed; will retry');
    }
  }

  /** The key's revision when it still names this worker, `theirs` when it does not, `unknown` when it cannot be read. */
  async #owner(sessionId: string): Promise<number | 'theirs' | 'unknown'> {
    let entry;
    try {
      entry = await this.#kv.get(sessionId);
    } catch {
      return 'unknown';
    }
    if (!entry || entry.operation !== 'PUT') return 'theirs';
    const current = LeaseValue.safeParse(safeJson(entry.string()));
    return current.success && current.data.worker_id === this.#workerId ? entry.revision : 'theirs';
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
