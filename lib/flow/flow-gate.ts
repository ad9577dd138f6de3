/**
 * Flow control between the place events leave the process (stdout of `troupe app-server`,
 * the MCP transport) and the places they are made (model streams, tool output).
 *
 * Events are emitted synchronously, from statechart actions among others, so an emitter
 * cannot wait. Instead the sink *holds* a gate while its client is behind, and producers look
 * at the gate where they can wait anyway: before pulling the next chunk of a model stream
 * (an unread HTTP body backs up to the provider's socket), before sending a model request.
 * Output deltas of running commands are skipped while the gate is closed; the command's end
 * event still carries its output, within the limits it always had.
 */

/** What producers see of a gate. */
export interface FlowSignal {
  /** False while some sink is behind: producers should not make more events now. */
  readonly open: boolean;
  /** Resolves once the gate is open, or as soon as `signal` aborts (the caller checks which). */
  whenOpen(signal?: AbortSignal): Promise<void>;
}

const resolved: Promise<void> = Promise.resolve();

/** A gate nobody holds: the producers' view when no sink asks for backpressure. */
export const ALWAYS_OPEN: FlowSignal = Object.freeze({ open: true, whenOpen: () => resolved });

/**
 * A gate any number of sinks can hold; it is open when none does. Checking it costs a field
 * read, and nothing is allocated unless it is closed.
 */
export class FlowGate implements FlowSignal {
  #holders = 0;
  /** Settled when the gate opens; exists only while it is closed. */
  #opened: Promise<void> | null = null;
  #open: () => void = () => undefined;

  get open(): boolean {
    return this.#holders === 0;
  }

  /** A sink went over its bound. Every hold must be paired with one release. */
  hold(): void {
    if (this.#holders++ > 0) return;
    this.#opened = new Promise<void>((resolve) => {
      this.#open = resolve;
    });
  }

  /** A sink that held the gate is within its bound again. */
  release(): void {
    if (this.#holders === 0) throw new Error('FlowGate.release without a matching hold');
    if (--this.#holders > 0) return;
    this.#opened = null;
    this.#open();
  }

  whenOpen(signal?: AbortSignal): Promise<void> {
    const opened = this.#opened;
    if (opened === null || signal?.aborted) return resolved;
    if (signal === undefined) return opened;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      // `opened` only ever resolves; either way the wait is over.
      opened.then(done, done);
    });
  }
}
