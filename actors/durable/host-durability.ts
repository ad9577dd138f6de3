import type { NatsConnection } from '@nats-io/transport-node';
import type { TurnOverrides } from '../../protocol/index.js';
import { log as processLog, type Logger } from '../log.js';
import { Leases, leaseTiming, type SeenLease } from './leases.js';
import { OpQueue, type OpFeed, type QueuedSubmission } from './op-queue.js';
import { rebuildSession, type OpenTurn, type RebuiltSession } from './rebuild.js';
import type { SessionPurpose } from './records.js';
import { durableBindings, type SessionDurability } from './session-durability.js';
import { readSessionLog, SessionLog } from './session-log.js';
import { DurableStore } from './store.js';

/** What a host lets the adoption loop see and do. */
export interface AdoptionTarget {
  /** Whether the host can take one more session now. */
  hasRoom(): boolean;
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
  #scanTimer: NodeJS.Timeout | null = null;
  #scanning = false;

  private constructor(store: DurableStore, workerId: string, leaseMs: number | undefined, onLost: (sessionId: string) => void, logger: Logger) {
    this.store = store;
    this.#workerId = workerId;
    this.#logger = logger.child({ component: 'durability' });
    this.ops = new OpQueue(store, logger);
    this.leases = new Leases(store.leases, workerId, leaseTiming(leaseMs), onLost, logger);
  }

  static async open(
    connection: NatsConnection,
    options: { namespace: string; workerId: string; leaseMs?: number | undefined; onLost: (sessionId: string) => void; logger?: Logger },
  ): Promise<HostDurability> {
    const logger = options.logger ?? processLog;
    const store = await DurableStore.open(connection, options.namespace);
    return new HostDurability(store, options.workerId, options.leaseMs, options.onLost, logger);
  }

  sessionLog(rootId: string, sessionId: string): SessionLog {
    return new SessionLog(this.store, rootId, sessionId, this.#logger);
  }

  /**
   * The durability of a session this host creates (or resumes, continuing `initialSeq`). Logs
   * how the session was placed, so an adoption brings back its purpose and approvals.
   */
  forSession(log: SessionLog, placement: { readonly purpose: SessionPurpose; readonly approvals: readonly string[] }, initialSeq = 0): SessionDurability {
    log.append({ type: 'placed', purpose: placement.purpose, approvals: [...placement.approvals] });
    return {
      initialSeq,
      adopted: null,
      wrap: (bindings, hooks) => durableBindings(bindings, log, null, hooks),
      recordApproval: (key) => log.append({ type: 'approval', key }),
    };
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
    return {
      initialSeq: rebuilt.lastSeq,
      adopted: { from, turn },
      wrap: (bindings, hooks) => durableBindings(bindings, log, open, hooks),
      recordApproval: (key) => log.append({ type: 'approval', key }),
    };
  }

  async rebuild(rootId: string, sessionId: string): Promise<RebuiltSession> {
    return rebuildSession(await readSessionLog(this.store, rootId, sessionId, this.#logger));
  }

  /**
   * Feed a session the ops of its queue. An op whose id is in `applied` (the log says it took
   * effect before a failover) is acknowledged without being applied again.
   */
  feed(session: FedSession, log: SessionLog, applied: ReadonlySet<string> = new Set()): Promise<OpFeed> {
    return this.ops.consume(session.id, async (submission) => {
      if (!applied.has(submission.id)) await session.submit(submission);
      const override = submission.op.type === 'override_turn_context' ? overridesOf(submission.op) : undefined;
      // Ordered before the acknowledgement on this connection: a redelivery finds it.
      log.append({ type: 'op_done', id: submission.id, ...(override ? { override } : {}) });
    });
  }

  /** Look for expired leases now and then, and adopt while the host has room. */
  startAdopting(target: AdoptionTarget): void {
    this.leases.start();
    const every = this.leases.timing.renewMs;
    this.#scanTimer ??= setInterval(() => void this.#scan(target), every);
  }

  stop(): void {
    this.leases.stop();
    if (this.#scanTimer) clearInterval(this.#scanTimer);
    this.#scanTimer = null;
  }

  async #scan(target: AdoptionTarget): Promise<void> {
    if (this.#scanning || !target.hasRoom()) return;
    this.#scanning = true;
    try {
      const expired = await this.leases.expired();
      // Shuffled, so workers scanning at the same moment mostly go for different sessions.
      expired.sort(() => Math.random() - 0.5);
      for (const lease of expired) {
        if (!target.hasRoom()) break;
        if (!(await this.leases.takeOver(lease))) continue;
        this.#logger.info({ session: lease.sessionId, from: lease.value.worker_id }, 'adopting a session');
        try {
          await target.adopt(lease);
        } catch (error) {
          this.#logger.error({ err: error, session: lease.sessionId }, 'adopting a session failed; handing it back');
          await this.leases.handOver(lease.sessionId);
        }
      }
    } catch (error) {
      this.#logger.debug({ err: error, worker: this.#workerId }, 'looking for sessions to adopt failed');
    } finally {
      this.#scanning = false;
    }
  }
}

function overridesOf(op: { type: 'override_turn_context' } & TurnOverrides): TurnOverrides {
  const { type: _type, ...overrides } = op;
  return overrides;
}
