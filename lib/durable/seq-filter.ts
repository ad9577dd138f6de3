import type { Event } from '../../protocol/index.js';

/**
 * Passes each session's events once, in seq order as they come: an event whose seq is not
 * above the last one passed for its session is a repeat (published again around a failover).
 * A `session_configured` starts a session's numbering afresh (a resumed session outside NATS).
 */
export class SeqFilter {
  readonly #last = new Map<string, number>();

  accept(event: Event): boolean {
    if (event.seq === null || event.session_id === null) return true;
    if (event.msg.type === 'session_configured') {
      this.#last.set(event.session_id, event.seq);
      return true;
    }
    const last = this.#last.get(event.session_id);
    if (last !== undefined && event.seq <= last) return false;
    this.#last.set(event.session_id, event.seq);
    return true;
  }
}
