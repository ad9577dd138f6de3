import { randomUUID } from 'node:crypto';
import {
  errorEvent,
  Event,
  Submission,
  TroupeError,
  UnknownSessionError,
  type ErrorCode,
  type EventMsg,
  type SessionlessOp,
  type SessionOrigin,
} from '../../protocol/index.js';
import { isSessionlessOp } from '../../protocol/index.js';
import { NoRespondersError, RequestTimeoutError, type Bus, type Subscription } from '../../lib/bus/bus.js';
import { subjects, type Subjects } from '../../lib/bus/subjects.js';
import type { GatewayDurability } from '../../lib/durable/gateway-durability.js';
import { SeqFilter } from '../../lib/durable/seq-filter.js';
import { log } from '../../lib/log.js';
import { ALWAYS_OPEN, type FlowSignal } from '../../lib/flow/flow-gate.js';

/** Submissions a gateway holds at most while they wait to be delivered (NATS away). */
export const MAX_WAITING_SUBMISSIONS = 1_000;

export interface GatewayOptions {
  readonly bus: Bus;
  readonly namespace: string;
  /** Every event for the client: the sessions' streams and the gateway's own errors. */
  readonly onEvent: (event: Event) => void;
  /** How long to wait for a host to take a placement or an op. */
  readonly requestTimeoutMs?: number;
  /**
   * Closed while the client is behind on its events. On NATS with JetStream the gateway then
   * stops taking events from the log stream (they wait there, not in this process); sessions
   * of an in-process host watch the same gate themselves.
   */
  readonly flow?: FlowSignal;
  /**
   * On NATS: opens the JetStream side (ops through each session's queue, events from the log
   * stream). Absent, or failing (no JetStream), ops and events go over the bus itself.
   */
  readonly durability?: (() => Promise<GatewayDurability>) | undefined;
}

/**
 * The client side of the bus: takes submissions (already parsed, or raw lines), places new
 * sessions on a host, forwards ops to the session that owns them, and hands every event to the
 * client. It owns no actors, so the same class is the in-process front end and the NATS gateway.
 *
 * Submissions are handled strictly in order, so ops reach a session in the order they were sent.
 */
export class Gateway {
  readonly #options: GatewayOptions;
  readonly #subjects: Subjects;
  readonly #open = new Set<string>();
  readonly #closeWaiters = new Map<string, () => void>();
  #queue: Promise<void> = Promise.resolve();
  #events: Subscription | null = null;
  /**
   * On NATS: ops go through JetStream and events come from the log stream (null when the bus
   * is in-process, or JetStream is not available). Submissions wait until this is settled.
   */
  #durable: Promise<GatewayDurability | null> = Promise.resolve(null);
  #durableEvents: { stop(): Promise<void> } | null = null;
  readonly #seqFilter = new SeqFilter();
  /** Submissions taken and not yet handed on (on NATS they wait here while it is away). */
  readonly #waiting = new Set<Submission>();

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#subjects = subjects(options.namespace);
  }

  /** Sessions this gateway started that have not shut down yet. */
  get openSessions(): readonly string[] {
    return [...this.#open];
  }

  start(): void {
    const { bus } = this.#options;
    const followCore = () => {
      this.#events = bus.subscribe(this.#subjects.allEvents(), (message) => {
        if (message.kind === 'event') this.#onSessionEvent(message.event);
      });
    };
    const open = this.#options.durability;
    if (open === undefined) {
      followCore();
      return;
    }
    this.#durable = (async () => {
      try {
        const durable = await open();
        const flow = this.#options.flow ?? ALWAYS_OPEN;
        this.#durableEvents = await durable.followEvents((event) => {
          if (this.#seqFilter.accept(event)) this.#onSessionEvent(event);
          // The follower pulls the next event once this settles.
          return flow.open ? undefined : flow.whenOpen();
        });
        return durable;
      } catch (error) {
        log.warn({ err: error }, 'JetStream is not available: ops and events go over plain NATS, without durability');
        followCore();
        return null;
      }
    })();
  }

  #onSessionEvent(event: Event): void {
    if (event.msg.type === 'shutdown_complete' && event.session_id) this.#closed(event.session_id);
    this.#options.onEvent(event);
  }

  /** A session of this gateway has ended: nothing to shut down or wait for any more. */
  #closed(sessionId: string): void {
    this.#open.delete(sessionId);
    this.#closeWaiters.get(sessionId)?.();
    this.#closeWaiters.delete(sessionId);
  }

  /**
   * No host has the session: the submission is answered with `unknown_session`, and a session
   * this gateway opened is gone without its `shutdown_complete` having come here (it ended
   * while the events were on their way, or its host dropped it), so `shutdownAll` does not wait for it.
   */
  #unknownSession(submissionId: string, sessionId: string): void {
    this.#emit(submissionId, null, errorEvent(new UnknownSessionError(sessionId)));
    this.#closed(sessionId);
  }

  /** A line of the stdio protocol that was not read (over the size bound): refused under the id its first bytes show. */
  refuseLine(id: string | null, message: string): void {
    this.#error(id, null, message);
  }

  /** One line of the stdio protocol: parsed and validated here, so every failure names its cause. */
  submitLine(line: string): Promise<void> {
    if (line.trim() === '') return Promise.resolve();
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (error) {
      this.#error(null, null, `the line is not valid JSON: ${(error as Error).message}`);
      return Promise.resolve();
    }
    return this.submitRaw(raw);
  }

  /** A submission of unknown shape: validated, then submitted. */
  submitRaw(raw: unknown): Promise<void> {
    const parsed = Submission.safeParse(raw);
    if (!parsed.success) {
      const record = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
      const id = typeof record.id === 'string' ? record.id : null;
      const sessionId = typeof record.session_id === 'string' ? record.session_id : null;
      this.#emit(id, sessionId, errorEvent(parsed.error, 'invalid submission'));
      return Promise.resolve();
    }
    return this.submit(parsed.data);
  }

  submit(submission: Submission): Promise<void> {
    if (this.#waiting.size >= MAX_WAITING_SUBMISSIONS) {
      // Bounded: while NATS is away ops wait here, but not without end.
      this.#error(
        submission.id,
        submission.session_id ?? null,
        `${submission.op.type} not accepted: ${this.#waiting.size} submissions are already waiting to be delivered (the most the gateway holds)`,
        'internal',
      );
      return Promise.resolve();
    }
    this.#waiting.add(submission);
    const next = this.#queue
      .then(() => this.#route(submission))
      .catch((error: unknown) => this.#failed(submission, error))
      .finally(() => this.#waiting.delete(submission));
    this.#queue = next;
    return next;
  }

  /**
   * A submission whose routing threw (a bug, or a client's event handler that threw): its
   * sender is told with an error event carrying its id, and the queue goes on with the next.
   * Logged only when even that event cannot be delivered.
   */
  #failed(submission: Submission, error: unknown): void {
    try {
      this.#emit(submission.id, submission.session_id ?? null, errorEvent(error, `${submission.op.type} failed`));
    } catch (handlerError) {
      log.error({ err: error, handler_error: handlerError, submission: submission.id }, 'a submission failed, and so did telling its sender');
    }
  }

  /**
   * What this gateway has not delivered yet: submissions still waiting to be handed on, and
   * sessions it opened whose `shutdown_complete` it has not seen. What a bounded shutdown
   * reports when it runs out of time.
   */
  undelivered(): { readonly submissions: readonly Submission[]; readonly openSessions: readonly string[] } {
    return { submissions: [...this.#waiting], openSessions: [...this.#open] };
  }

  /** Shut down every session this gateway opened and wait for their `shutdown_complete`. */
  async shutdownAll(): Promise<void> {
    await this.#queue;
    // Handed on one at a time (they are delivered in order anyway): all at once, the shutdowns
    // of more than MAX_WAITING_SUBMISSIONS sessions would be refused past the bound, and their
    // closes waited for without end.
    const closing: Promise<void>[] = [];
    for (const sessionId of [...this.#open]) {
      const closed = new Promise<void>((resolve) => this.#closeWaiters.set(sessionId, resolve));
      // An id of its own each time: the session may have been closed before, and resumed.
      await this.submit({ id: `shutdown-${randomUUID()}`, session_id: sessionId, op: { type: 'shutdown' } });
      if (this.#open.has(sessionId)) closing.push(closed);
    }
    await Promise.all(closing);
  }

  async close(): Promise<void> {
    await this.#durable;
    await this.#durableEvents?.stop();
    this.#durableEvents = null;
    await this.#events?.unsubscribe();
    this.#events = null;
  }

  async #route(submission: Submission): Promise<void> {
    const { op } = submission;
    if (isSessionlessOp(op)) return this.#sessionless(submission.id, op);
    if (!submission.session_id) {
      this.#error(submission.id, null, `session_id: required for op ${op.type}`);
      return;
    }
    const sessionId = submission.session_id;
    const durable = await this.#durable;
    if (durable) {
      try {
        const outcome = await durable.submit({ ...submission, session_id: sessionId });
        if (outcome === 'unknown') this.#unknownSession(submission.id, sessionId);
      } catch (error) {
        this.#error(submission.id, sessionId, `could not deliver ${op.type}: ${(error as Error).message}`, 'internal');
      }
      return;
    }
    try {
      const reply = await this.#options.bus.request(
        this.#subjects.op(sessionId),
        { kind: 'op', submission: { ...submission, session_id: sessionId } },
        { timeoutMs: this.#timeout },
      );
      if (reply.kind === 'failure') this.#error(submission.id, sessionId, reply.message);
    } catch (error) {
      if (error instanceof NoRespondersError) this.#unknownSession(submission.id, sessionId);
      else this.#error(submission.id, sessionId, `could not deliver ${op.type}: ${(error as Error).message}`, 'internal');
    }
  }

  async #sessionless(id: string, op: SessionlessOp): Promise<void> {
    // Events of a new session must find the event feed already running.
    await this.#durable;
    if (op.type === 'list_sessions') {
      try {
        const reply = await this.#options.bus.request(this.#subjects.control('list'), { kind: 'list_sessions' }, { timeoutMs: this.#timeout });
        if (reply.kind === 'session_list') this.#emit(id, null, { type: 'session_list', sessions: reply.sessions });
        else this.#error(id, null, reply.kind === 'failure' ? reply.message : `unexpected reply ${reply.kind}`, 'internal');
      } catch (error) {
        this.#error(id, null, this.#unavailable(error), 'internal');
      }
      return;
    }
    const origin: SessionOrigin =
      op.type === 'new_session'
        ? { type: 'new' }
        : op.type === 'resume_session'
          ? { type: 'resume', rollout_path: op.rollout_path, session_id: op.session_id }
          : { type: 'fork', rollout_path: op.rollout_path, session_id: op.session_id, nth_user_message: op.nth_user_message };
    const sessionId = randomUUID();
    try {
      const reply = await this.#options.bus.request(
        this.#subjects.place(),
        { kind: 'place', submission_id: id, session_id: sessionId, config: op.config, lineage: null, origin },
        { timeoutMs: this.#timeout },
      );
      if (reply.kind === 'placed') this.#open.add(reply.session_id);
      else if (reply.kind === 'failure') this.#error(id, null, reply.message, reply.code === 'bad_request' ? 'bad_request' : 'internal');
      else this.#error(id, null, `unexpected reply ${reply.kind} to a placement`, 'internal');
    } catch (error) {
      this.#error(id, null, this.#unavailable(error), 'internal');
    }
  }

  #unavailable(error: unknown): string {
    if (error instanceof NoRespondersError) return 'no host is available to run sessions';
    if (error instanceof RequestTimeoutError) return `no host answered within ${error.timeoutMs} ms`;
    return (error as Error).message;
  }

  get #timeout(): number {
    return this.#options.requestTimeoutMs ?? 10_000;
  }

  #emit(id: string | null, sessionId: string | null, msg: EventMsg): void {
    this.#options.onEvent({ id, session_id: sessionId, seq: null, msg });
  }

  #error(id: string | null, sessionId: string | null, message: string, code: ErrorCode = 'bad_request'): void {
    this.#emit(id, sessionId, errorEvent(new TroupeError(message, { code })));
  }
}
