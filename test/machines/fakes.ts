/**
 * In-memory fakes shared by the statechart unit tests: a queue the test reads what the fakes
 * were asked in order from, and a promise the test settles by hand.
 */

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** What fakes were asked, in order: `next()` waits for the next one, `all` is everything so far. */
export class Inbox<T> {
  readonly all: T[] = [];
  #read = 0;
  #waiting: ((item: T) => void)[] = [];

  push(item: T): void {
    this.all.push(item);
    const waiter = this.#waiting.shift();
    if (waiter) {
      this.#read++;
      waiter(item);
    }
  }

  /** The next item not yet read (already there, or the next to arrive). */
  next(): Promise<T> {
    if (this.#read < this.all.length) return Promise.resolve(this.all[this.#read++] as T);
    return new Promise<T>((resolve) => this.#waiting.push(resolve));
  }

  /** Items not yet read by `next()`. */
  get unread(): number {
    return this.all.length - this.#read;
  }
}
