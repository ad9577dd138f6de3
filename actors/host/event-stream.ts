import { errorEvent, TroupeError, type EventMsg } from '../../protocol/index.js';
import type { Bus } from '../../lib/bus/bus.js';
import type { RolloutSink, SessionDurability } from '../../lib/durable/session-durability.js';
import { log } from '../../lib/log.js';
import { shouldPersistEvent } from '../../lib/rollout/index.js';

export interface EventStreamOptions {
  readonly sessionId: string;
  /** Where the session's events are published in-process (`troupe.<ns>.evt.<root>.<session>`). */
  readonly subject: string;
  readonly bus: Bus;
  readonly rollout: RolloutSink;
  /** On NATS: the session's log, which events go through instead of the bus. */
  readonly durability: SessionDurability | undefined;
  /** The seq of the last event the session had numbered (its stream goes on after it). */
  readonly initialSeq: number;
  /** Named in the notices of a session that stops here. */
  readonly workerId: string;
  /** Told of every event the session makes (its observer, for the log and telemetry). */
  readonly observe?: ((id: string | null, msg: EventMsg) => void) | undefined;
}

/** Events that only stream what a later event carries whole; left out while a session's log is backed up. */
const STREAMING_DELTAS: ReadonlySet<EventMsg['type']> = new Set(['agent_message_delta', 'agent_reasoning_delta', 'exec_command_output_delta']);

/**
 * A session's event stream, the only place its events are made: each is numbered (`seq`),
 * recorded in the rollout unless it is transient, and published: on the bus in-process, through
 * the session's log on NATS (stored in order, held while NATS is away). A log backed up past
 * half its limit gets no streaming deltas (the complete items follow); a full log takes no more
 * events, and the session stops on this worker.
 */
export class EventStream {
  readonly #options: EventStreamOptions;
  #seq: number;
  #stopped = false;
  /** The session's log is backed up and its streaming deltas are being left out. */
  #skippingDeltas = false;
  /** How many were left out since that started. */
  #leftOut = 0;

  constructor(options: EventStreamOptions) {
    this.#options = options;
    this.#seq = options.initialSeq;
  }

  /** Publish nothing more: the session runs elsewhere now. */
  stop(): void {
    this.#stopped = true;
  }

  /** Put an event on the session's stream: numbered, persisted when it matters, published. */
  emit(id: string | null, msg: EventMsg): void {
    if (this.#stopped) return;
    const { sessionId, durability, observe } = this.#options;
    observe?.(id, msg);
    const event = { id, session_id: sessionId, seq: this.#seq + 1, msg };
    if (durability && STREAMING_DELTAS.has(msg.type) && this.#leaveOutDelta(durability)) return;
    if (durability && !durability.publishEvent(event)) return this.#overflowed(durability);
    this.#seq = event.seq;
    if (shouldPersistEvent(msg)) this.#options.rollout.record({ type: 'event_msg', payload: msg, seq: event.seq });
    if (durability) return;
    this.#options.bus.publish(this.#options.subject, { kind: 'event', event }).catch((error: unknown) => {
      log.error({ err: error, session: sessionId, type: msg.type }, 'could not publish an event');
    });
  }

  /**
   * Whether a streaming delta is left out now; says so in the log when that starts, and how many
   * were left out when it stops. The log backs up only when JetStream stores slower than the
   * session streams for a long while (NATS away, or a broker that cannot keep up).
   */
  #leaveOutDelta(durable: SessionDurability): boolean {
    const congested = durable.congested();
    const session = this.#options.sessionId;
    if (congested !== this.#skippingDeltas) {
      this.#skippingDeltas = congested;
      if (congested) log.warn({ session }, 'the session log is backed up: streaming deltas are left out');
      else log.info({ session, leftOut: this.#leftOut }, 'the session log caught up: streaming deltas again');
      this.#leftOut = 0;
    }
    if (congested) this.#leftOut++;
    return congested;
  }

  /**
   * The session's log holds the most it may (NATS away or too slow), and took no more events. The
   * session says so on its stream (these two notices go past the limit, and are its last here),
   * and stops on this worker; the host moves it on once the log has stored what it holds.
   */
  #overflowed(durable: SessionDurability): void {
    this.#stopped = true;
    const { sessionId, workerId } = this.#options;
    const { maxEntries, maxBytes } = durable.limits;
    const why = `its events are not being stored (NATS is away or too slow), and it holds the most it may (${maxEntries} events or ${maxBytes} bytes)`;
    const notices: EventMsg[] = [
      errorEvent(new TroupeError(why), `session stopped on worker ${workerId}`),
      { type: 'background_event', message: `session stopped on worker ${workerId}: ${why}; it continues from its log once NATS is back` },
    ];
    for (const msg of notices) durable.publishEvent({ id: null, session_id: sessionId, seq: ++this.#seq, msg }, true);
    log.error({ session: sessionId, maxEntries, maxBytes }, 'the session log is full: the session stops on this worker');
    // Not from inside the statechart step that emitted: the host stops the actor.
    queueMicrotask(() => durable.overflowed());
  }
}
