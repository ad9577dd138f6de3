import type { Writable } from 'node:stream';
import { log } from '../log.js';
import type { FlowGate } from './flow-gate.js';

/**
 * What `troupe app-server` lets pile up on stdout before it stops reading stdin and holds the
 * flow gate. A client reading at any sensible pace keeps far below it (events are small; the
 * largest, a command's end, is about 3 MiB), and it costs more than its size: the buffered
 * lines are heap strings, and the collector sizes the heap to a multiple of what is live.
 * Measured with a stuck client: 4 MiB keeps the server within about 45 MB of its idle size,
 * 16 MiB took it to about 100 MB.
 */
export const STDOUT_HIGH_WATER_BYTES = 4 * 1024 * 1024;

export interface OutputPressureOptions {
  /** Above this many bytes not yet flushed, the output counts as full. */
  readonly highWaterBytes: number;
  /** Told when the output becomes full (true) and when it has drained again (false). */
  readonly onChange?: (full: boolean) => void;
  /** Named in the log lines. */
  readonly name?: string;
}

/**
 * Watches a stream the process writes its output to. Once more than `highWaterBytes` wait to
 * be flushed (the reader is behind), it holds `gate`, and releases it when the stream has
 * drained. Call `check()` after writing: it reads one number unless the stream is full.
 */
export class OutputPressure {
  readonly #stream: Writable;
  readonly #gate: FlowGate;
  readonly #options: OutputPressureOptions;
  #full = false;
  #closed = false;
  #drained: Promise<void> | null = null;
  #resolveDrained: () => void = () => undefined;
  readonly #onDrain = (): void => this.#release();
  readonly #onClose = (): void => {
    // Nothing more will be flushed, or waited for: let everything that waits go on.
    this.#closed = true;
    this.#release();
  };

  constructor(stream: Writable, gate: FlowGate, options: OutputPressureOptions) {
    this.#stream = stream;
    this.#gate = gate;
    this.#options = options;
    stream.once('close', this.#onClose);
  }

  /** True while the reader is behind by more than the high-water mark. */
  get full(): boolean {
    return this.#full;
  }

  /** Hold the gate if the stream has gone over its mark. */
  check(): void {
    if (this.#full || this.#closed || this.#stream.writableLength <= this.#options.highWaterBytes) return;
    // Below the stream's own high-water mark no write has returned false, and no 'drain' would
    // come to release the gate: such a stream is not full yet.
    if (!this.#stream.writableNeedDrain) return;
    this.#full = true;
    this.#gate.hold();
    this.#drained = new Promise<void>((resolve) => {
      this.#resolveDrained = resolve;
    });
    this.#stream.once('drain', this.#onDrain);
    log.debug({ output: this.#options.name, bytes: this.#stream.writableLength }, 'the reader is behind: holding input and new events');
    this.#options.onChange?.(true);
  }

  /** Resolves once the stream is no longer full. */
  drained(): Promise<void> {
    return this.#drained ?? Promise.resolve();
  }

  /** Stop watching (the stream is being closed by its owner). */
  dispose(): void {
    this.#stream.off('close', this.#onClose);
    this.#onClose();
  }

  #release(): void {
    if (!this.#full) return;
    this.#full = false;
    this.#stream.off('drain', this.#onDrain);
    this.#gate.release();
    this.#drained = null;
    this.#resolveDrained();
    log.debug({ output: this.#options.name }, 'the reader caught up: reading input and making events again');
    this.#options.onChange?.(false);
  }
}
