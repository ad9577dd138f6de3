import type { NatsConnection } from '@nats-io/transport-node';
import { inBackground } from '../log.js';

/**
 * Whether a NATS connection can carry anything right now, as the client reports it.
 *
 * The v3 client keeps reconnecting forever (connect.ts), but what is handed to it while it is
 * disconnected does not wait for the server: every reconnect attempt starts with an empty
 * outbound buffer, so a core publish made while disconnected is dropped without an error, and
 * a request made then waits for its whole timeout. Whatever must reach the server therefore
 * waits for the link to be up, and retries when the link went down while it was in flight.
 *
 * `epoch` counts the disconnects seen: an attempt that started in one epoch and ends in another
 * may or may not have reached the server, and is to be repeated (idempotently).
 */
export class NatsLink {
  readonly connection: NatsConnection;
  #up = true;
  #epoch = 0;
  #waiters = new Set<() => void>();
  readonly #onUp = new Set<() => void>();
  readonly #onDown = new Set<() => void>();

  private constructor(connection: NatsConnection) {
    this.connection = connection;
    inBackground(this.#watch(), 'watching the NATS link');
    inBackground(
      connection.closed().then(() => this.#changed(false)),
      'marking the closed NATS link down',
    );
  }

  static #links = new WeakMap<NatsConnection, NatsLink>();

  /** The one link of a connection (its status is watched once, however many ask). */
  static of(connection: NatsConnection): NatsLink {
    let link = NatsLink.#links.get(connection);
    if (!link) {
      link = new NatsLink(connection);
      NatsLink.#links.set(connection, link);
    }
    return link;
  }

  get up(): boolean {
    return this.#up && !this.connection.isClosed();
  }

  get closed(): boolean {
    return this.connection.isClosed();
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** Resolves when the link is up (at once if it is), or when `signal` aborts or the connection closes. */
  whenUp(signal?: AbortSignal): Promise<void> {
    if (this.up || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Resolves when the link goes down after `epoch` (at once if it already has). */
  downSince(epoch: number, signal?: AbortSignal): Promise<void> {
    if (this.#epoch !== epoch || !this.up || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#onDown.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#onDown.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Call `listener` each time the link goes down (and when the connection closes); returns how
   * to stop. Cheaper than `downSince` with a signal for what is watched once per publication:
   * no AbortController, no AbortSignal.any, no AbortError with its stack when it stops.
   */
  onDisconnect(listener: () => void): () => void {
    this.#onDown.add(listener);
    return () => this.#onDown.delete(listener);
  }

  /** Call `listener` each time the link comes back up; returns how to stop. */
  onReconnect(listener: () => void): () => void {
    this.#onUp.add(listener);
    return () => this.#onUp.delete(listener);
  }

  async #watch(): Promise<void> {
    for await (const status of this.connection.status()) {
      if (status.type === 'disconnect') this.#changed(false);
      else if (status.type === 'reconnect') this.#changed(true);
    }
  }

  #changed(up: boolean): void {
    if (up !== this.#up) {
      this.#up = up;
      if (up) {
        for (const wake of [...this.#waiters]) wake();
        for (const listener of [...this.#onUp]) listener();
      } else {
        this.#epoch++;
        for (const listener of [...this.#onDown]) listener();
      }
    }
    // A closed connection never comes back: nobody may wait for it.
    if (this.closed) {
      for (const wake of [...this.#waiters]) wake();
      for (const listener of [...this.#onDown]) listener();
    }
  }
}
