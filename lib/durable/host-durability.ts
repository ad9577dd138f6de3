import type { NatsConnection } from '@nats-io/transport-node';
import { BusMessage, type TurnOverrides } from '../../protocol/index.js';
import { inBackground, log as processLog, type Logger } from '../log.js';
import { NatsLink } from '../nats/link.js';
import { Leases, leaseTiming, type SeenLease } from './leases.js';
import type { OutboxLimits } from './outbox.js';
import { OpQueue, type OpFeed, type QueuedSubmission } from './op-queue.js';
import { RebuildError, rebuildSession, type OpenTurn, type RebuiltSession } from './rebuild.js';
import type { SessionPurpose } from './records.js';
import { durableBindings, type SessionDurability } from './session-durability.js';
import { readSessionLog, SessionLog } from './session-log.js';
import { DurableStore } from './store.js';

/** Whether a session is in a turn (see HostDurability.activity). */
export type SessionActivity = 'working' | 'ended';

/** What a host lets the adoption loop see and do. */
export interface AdoptionTarget {
  /** How many more sessions the host can take now (0 while it drains). */
  room(): number;
  /** Run a session whose lease this worker just took over. */
  adopt(lease: SeenLease): Promise<void>;
}

/** The session a host runs, as far as its op feed is concerned. */
export interface FedSession {
  readonly id: string;
  submit(submission: QueuedSubmission): Promise<void>;
}

/**
 * Everything a NATS host needs to make its sessions outlive it: the store, the op queue, the
 * leases, and the loop that adopts sessions whose worker stopped renewing.
 */
export class HostDurability {
  readonly store: DurableStore;
  readonly ops: OpQueue;
  readonly leases: Leases;
  readonly #logger: Logger;
  readonly #workerId: string;
  readonly #link: NatsLink;
  readonly #outboxLimits: OutboxLimits | undefined;
  #scanTimer: NodeJS.Timeout | null = null;
  #scanning = false;
  /** No adoption before this time (ms since the epoch): see `#scan`. */
  #quietUntil = 0;
  #stopReconnectWatch: (() => void) | null = null;
  #onOverflow: (sessionId: string) => void = () => undefined;
  /** Logs of sessions this host runs or ran, until they are stored (or dropped). */
  readonly #logs = new Set<SessionLog>();

  private constructor(
    store: DurableStore,
    workerId: string,
    leaseMs: number | undefined,
    onLost: (sessionId: string) => void,
    logger: Logger,
    outboxLimits: OutboxLimits | undefined,
  ) {
    this.store = store;
    this.#workerId = workerId;
    this.#logger = logger.child({ component: 'durability' });
    this.#link = NatsLink.of(store.connection);
    this.#outboxLimits = outboxLimits;
    this.ops = new OpQueue(store, logger);
    this.leases = new Leases(store, workerId, leaseTiming(leaseMs), onLost, logger, this.#link);
  }

  static async open(
    connection: NatsConnection,
    options: {
      namespace: string;
      workerId: string;
      leaseMs?: number | undefined;
      onLost: (sessionId: string) => void;
      logger?: Logger;
      /** What each session may hold while NATS is away (default DEFAULT_OUTBOX_LIMITS). */
      outboxLimits?: OutboxLimits | undefined;
    },
  ): Promise<HostDurability> {
    const logger = options.logger ?? processLog;
    const store = await DurableStore.open(connection, options.namespace);
    return new HostDurability(store, options.workerId, options.leaseMs, options.onLost, logger, options.outboxLimits);
  }

  /** Who hears that a session's log refused an event (the host, which moves the session on). */
  onOverflow(handler: (sessionId: string) => void): void {
    this.#onOverflow = handler;
  }

  sessionLog(rootId: string, sessionId: string): SessionLog {
    const log = new SessionLog(this.store, rootId, sessionId, this.#logger, this.#outboxLimits);
    this.#logs.add(log);
    return log;
  }

  /** The session's log is stored, or dropped: nothing more to report or wait for. */
  forget(log: SessionLog): void {
    this.#logs.delete(log);
  }

  /** Sessions whose log still holds events or records not stored in JetStream. */
  undelivered(): { readonly sessionId: string; readonly entries: number; readonly bytes: number }[] {
    return [...this.#logs].filter((log) => log.pending.entries > 0).map((log) => ({ sessionId: log.sessionId, ...log.pending }));
  }

  /** Resolves once every session log of this host has stored what it holds. */
  async drained(): Promise<void> {
    await Promise.all([...this.#logs].map((log) => log.drained()));
  }

  /**
   * The durability of a session this host creates (or resumes, continuing `initialSeq`). Logs
   * how the session was placed, so an adoption brings back its purpose and approvals.
   */
  forSession(log: SessionLog, placement: { readonly purpose: SessionPurpose; readonly approvals: readonly string[] }, initialSeq = 0): SessionDurability {
    log.append({ type: 'placed', purpose: placement.purpose, approvals: [...placement.approvals] });
    return this.#durability(log, initialSeq, null, null);
  }

  /** The durability of an adopted session: numbering and open turn from the log. */
  forAdopted(log: SessionLog, rebuilt: RebuiltSession, from: string): SessionDurability {
    const open: OpenTurn | null = rebuilt.openTurn;
    const turn = open
      ? {
          turnId: open.turnId,
          overrides: {
            cwd: open.context.cwd,
            model: open.context.model,
            approval_policy: open.context.approval_policy,
            sandbox_policy: open.context.sandbox_policy,
            ...(open.context.effort ? { effort: open.context.effort } : {}),
          } satisfies TurnOverrides,
        }
      : null;
    return this.#durability(log, rebuilt.lastSeq, { from, turn }, open);
  }

  #durability(log: SessionLog, initialSeq: number, adopted: SessionDurability['adopted'], open: OpenTurn | null): SessionDurability {
    return {
      initialSeq,
      adopted,
      wrap: (bindings, hooks) => durableBindings(bindings, log, open, hooks),
      recordApproval: (key) => log.append({ type: 'approval', key }),
      publishEvent: (event, force) => log.publishEvent(event, { force: force === true }),
      congested: () => log.congested,
      limits: log.limits,
      overflowed: () => this.#onOverflow(log.sessionId),
    };
  }

  async rebuild(rootId: string, sessionId: string): Promise<RebuiltSession> {
    return rebuildSession(await readSessionLog(this.store, rootId, sessionId, this.#logger));
  }

  /**
   * Whether a session, wherever it runs, is in the middle of a turn, as its log and its op
   * queue say: `working` while a turn is open (on its worker, or waiting to be adopted), and
   * while a turn waits in its queue not yet applied (a sub-agent placed a moment ago: its
   * first turn is queued before anyone hears it was placed, and its log may not be stored
   * yet); `ended` once it is idle, closed, or has neither a log nor a turn waiting. The log
   * trails the session a little: a turn that just ended may still read as open, never the
   * other way round.
   */
  async activity(rootId: string, sessionId: string): Promise<SessionActivity> {
    // The queue is read first: a turn it held that is gone by the time the log is read was
    // applied, and an applied turn is in the log (its turn_context is stored before its op_done,
    // and the op is acknowledged only after that).
    const queued = await this.#queuedTurn(sessionId);
    let session: RebuiltSession | null = null;
    try {
      session = await this.rebuild(rootId, sessionId);
    } catch (error) {
      // No log (never placed, placed a moment ago, or purged).
      if (!(error instanceof RebuildError)) throw error;
    }
    if (session?.closed) return 'ended';
    if (session?.openTurn) return 'working';
    const waiting = queued !== null && !(session?.appliedOps.has(queued) ?? false);
    return waiting ? 'working' : 'ended';
  }

  /**
   * The id of the op last queued for a session when it starts a turn (`user_turn`, or
   * `user_input`, which starts one in an idle session), else null: one read, of the last
   * message on the session's subject of the queue. The queue holds an op until the session has
   * applied it and logged so (`op_done`); acknowledged ops are gone.
   */
  async #queuedTurn(sessionId: string): Promise<string | null> {
    const last = await this.store.jsm.streams.getMessage(this.store.names.opStream, { last_by_subj: this.store.subjects.opQueue(sessionId) });
    if (!last) return null;
    let value: unknown;
    try {
      value = JSON.parse(last.string());
    } catch {
      return null;
    }
    const parsed = BusMessage.safeParse(value);
    if (!parsed.success || parsed.data.kind !== 'op') return null;
    const { id, op } = parsed.data.submission;
    return op.type === 'user_turn' || op.type === 'user_input' ? id : null;
  }

  /**
   * Feed a session the ops of its queue. An op whose id is in `applied` (the log says it took
   * effect before a failover) is acknowledged without being applied again, and so is an op
   * offered again after this feed applied it (its acknowledgement was lost with the broker).
   */
  feed(session: FedSession, log: SessionLog, applied: ReadonlySet<string> = new Set()): Promise<OpFeed> {
    const done = new Set(applied);
    return this.ops.consume(session.id, async (submission) => {
      if (done.has(submission.id)) return;
      await session.submit(submission);
      done.add(submission.id);
      const override = submission.op.type === 'override_turn_context' ? overridesOf(submission.op) : undefined;
      // Stored before the op is acknowledged: a worker adopting the session finds it.
      await log.appendDurable({ type: 'op_done', id: submission.id, ...(override ? { override } : {}) });
    });
  }

  /**
   * Look for expired leases now and then, and adopt while the host has room.
   *
   * While NATS is away nobody can renew a lease, so every lease looks expired when it comes
   * back. Adoption therefore waits, after each reconnect, for a whole lease time: a worker that
   * is alive has renewed its leases by then (its renewals start again on reconnect), and only
   * the sessions of workers that did not come back are adopted.
   */
  startAdopting(target: AdoptionTarget): void {
    this.leases.start();
    const every = this.leases.timing.renewMs;
    this.#stopReconnectWatch ??= this.#link.onReconnect(() => {
      this.#quietUntil = Date.now() + this.leases.timing.leaseMs;
      this.leases.renewNow();
    });
    this.#scanTimer ??= setInterval(() => inBackground(this.#scan(target), 'looking for sessions to adopt', this.#logger), every);
  }

  stop(): void {
    this.leases.stop();
    this.#stopReconnectWatch?.();
    this.#stopReconnectWatch = null;
    if (this.#scanTimer) clearInterval(this.#scanTimer);
    this.#scanTimer = null;
  }

  async #scan(target: AdoptionTarget): Promise<void> {
    if (this.#scanning || target.room() <= 0 || !this.#link.up || Date.now() < this.#quietUntil) return;
    this.#scanning = true;
    try {
      const expired = await this.leases.expired();
      // Shuffled, so workers scanning at the same moment mostly go for different sessions.
      expired.sort(() => Math.random() - 0.5);
      // Leases are taken one by one (each a compare-and-set), up to the room there is; the
      // sessions are then rebuilt side by side, so the last of many is not kept waiting.
      let room = target.room();
      const adoptions: Promise<void>[] = [];
      for (const lease of expired) {
        if (room <= 0 || Date.now() < this.#quietUntil) break;
        if (!(await this.leases.takeOver(lease))) continue;
        room -= 1;
        adoptions.push(this.#adopt(target, lease));
      }
      await Promise.all(adoptions);
    } catch (error) {
      this.#logger.debug({ err: error, worker: this.#workerId }, 'looking for sessions to adopt failed');
    } finally {
      this.#scanning = false;
    }
  }

  async #adopt(target: AdoptionTarget, lease: SeenLease): Promise<void> {
    this.#logger.info({ session: lease.sessionId, worker: this.#workerId, from: lease.value.worker_id }, 'adopting a session');
    try {
      await target.adopt(lease);
    } catch (error) {
      this.#logger.error({ err: error, session: lease.sessionId }, 'adopting a session failed; handing it back');
      await this.leases.handOver(lease.sessionId).catch(() => undefined);
    }
  }
}

function overridesOf(op: { type: 'override_turn_context' } & TurnOverrides): TurnOverrides {
  const { type: _type, ...overrides } = op;
  return overrides;
}
