import { close, fsync, mkdirSync, openSync, write } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  describeZodError,
  RolloutLine,
  type CompactedRecord,
  type EventMsg,
  type EventType,
  type ResponseItem,
  type SessionMeta,
  type TurnContextRecord,
} from '../../protocol/index.js';
import { inBackground } from '../log.js';
import { RolloutError } from './errors.js';

/** Anything a session appends after its `session_meta` line. */
export type RolloutItem =
  | { type: 'response_item'; payload: ResponseItem }
  | { type: 'turn_context'; payload: TurnContextRecord }
  | { type: 'event_msg'; payload: EventMsg; seq?: number }
  | { type: 'compacted'; payload: CompactedRecord };

/**
 * Streaming deltas are redundant with the complete message that follows them, and a session
 * list is an answer to one client, not part of the session: keeping either would only make
 * rollouts larger and resumes slower.
 */
const TRANSIENT_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'agent_message_delta',
  'agent_reasoning_delta',
  'exec_command_output_delta',
  'session_list',
]);

export function shouldPersistEvent(msg: EventMsg): boolean {
  return !TRANSIENT_EVENTS.has(msg.type);
}

interface FlushWaiter {
  readonly upTo: number;
  readonly firstUnreported: number;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Appends a session's rollout (PROTOCOL.md §8). `record` is synchronous and never throws, so
 * recording can sit on any hot path of a session actor; lines are validated and serialized at
 * once (later mutation of a payload cannot change what is written) and written in order by a
 * single writer. Failures are kept and surface from `flush`/`close`: a broken disk or a bug
 * producing a bad line must be reported, but must not stop the session.
 */
export class RolloutRecorder {
  private pending: string[] = [];
  /** Lines handed to the writer so far, and lines whose write has finished (well or not). */
  private queued = 0;
  private settled = 0;
  private writing = false;
  private closing: Promise<void> | null = null;
  private readonly errors: RolloutError[] = [];
  /** Errors before this index have already been reported by a flush. */
  private reported = 0;
  private waiters: FlushWaiter[] = [];

  /** Settles `ready` with the first batch's write: a new rollout's file is made by it. */
  #settleReady: ((error: RolloutError | null) => void) | null = null;
  /** Settles once the file exists and holds the `session_meta` line (see `create`). */
  readonly ready: Promise<void>;

  private constructor(
    readonly path: string,
    private readonly handle: AppendTarget,
    firstLine?: string,
  ) {
    if (firstLine === undefined) {
      this.ready = Promise.resolve();
      return;
    }
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (error) => (error ? reject(error) : resolve());
    });
    // The error also reaches `flush` and `close`; a caller that does not wait for `ready` is not an unhandled rejection.
    this.ready.catch(() => undefined);
    this.pending.push(firstLine);
    this.queued = 1;
    this.kick();
  }

  /**
   * Start a new rollout at `path`; refuses to overwrite an existing file. An invalid
   * `session_meta` throws at once.
   *
   * The file is made, and its `session_meta` line written, by the writer's first drain, after
   * the callback that started the session is over: a host places sub-agents fifty at a time in
   * one callback, and every child's first model request would otherwise wait for the files of
   * all the children before it. Lines recorded meanwhile are queued behind the `session_meta`
   * line, in order. `ready` settles once the file holds that line, or rejects with the error
   * that kept the file from being made; the host replies `placed` only after it.
   */
  static create(path: string, meta: SessionMeta): RolloutRecorder {
    const line = serialize({ type: 'session_meta', payload: meta }, path);
    if (line instanceof RolloutError) throw line;
    return new RolloutRecorder(path, newFileTarget(path), line);
  }

  /** Append to an existing rollout, as a resumed session does. */
  static async open(path: string): Promise<RolloutRecorder> {
    const info = await stat(path).catch((cause: unknown) => {
      throw new RolloutError(`cannot open rollout ${path}`, path, { cause });
    });
    if (!info.isFile()) throw new RolloutError(`rollout ${path} is not a file`, path);
    const handle = await open(path, 'a+').catch((cause: unknown) => {
      throw new RolloutError(`cannot open rollout ${path}`, path, { cause });
    });
    try {
      // A crash can leave a torn last line; the next line must not be glued onto it.
      if (info.size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, info.size - 1);
        if (last[0] !== 0x0a) await handle.appendFile('\n', 'utf8');
      }
    } catch (cause) {
      await handle.close().catch(() => undefined);
      throw new RolloutError(`cannot prepare rollout ${path} for appending`, path, { cause });
    }
    return new RolloutRecorder(path, handle);
  }

  /**
   * Queue lines for writing, in call order. Events that are not persisted (see
   * `shouldPersistEvent`) are dropped here too, so a caller that forgets to filter cannot
   * bloat the file. A line that fails validation is not written; its error goes to `flush`.
   */
  record(...items: RolloutItem[]): void {
    for (const item of items) {
      if (this.closing) {
        this.errors.push(new RolloutError(`rollout ${this.path} is closed; a ${String(item.type)} line was lost`, this.path));
        continue;
      }
      if (item.type === 'event_msg' && isEventObject(item.payload) && !shouldPersistEvent(item.payload)) continue;
      const line = serialize(item, this.path);
      if (line instanceof RolloutError) {
        this.errors.push(line);
        continue;
      }
      this.pending.push(line);
      this.queued += 1;
    }
    this.kick();
  }

  /**
   * Resolves once every line recorded before the call is written to the file; rejects with
   * the first error not yet reported by an earlier flush (a failed write or a line that did
   * not validate). The recorder stays usable after a rejection.
   */
  flush(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ upTo: this.queued, firstUnreported: this.reported, resolve, reject });
      this.settleWaiters();
    });
  }

  /** Flush, sync to stable storage and release the file. Idempotent; later records are errors. */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<void> {
    try {
      await this.flush();
    } finally {
      try {
        await this.handle.sync();
      } catch (cause) {
        this.errors.push(new RolloutError(`cannot sync rollout ${this.path}`, this.path, { cause }));
      }
      await this.handle.close().catch(() => undefined);
    }
    // Report a sync failure, or a record racing with close, that the flush above did not see.
    await this.flush();
  }

  private kick(): void {
    if (this.writing || this.pending.length === 0) {
      this.settleWaiters();
      return;
    }
    this.writing = true;
    // Start once the current callback is over, so the lines it records go out as one write.
    setImmediate(() => inBackground(this.drain(), `writing rollout ${this.path}`));
  }

  /** The single writer: takes whatever is queued, writes it as one append, repeats. */
  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const settleReady = this.#settleReady;
      this.#settleReady = null;
      try {
        await this.#write(Buffer.from(batch.join(''), 'utf8'));
        settleReady?.(null);
      } catch (cause) {
        const error =
          cause instanceof RolloutError ? cause : new RolloutError(`cannot append ${batch.length} line(s) to rollout ${this.path}`, this.path, { cause });
        this.errors.push(error);
        settleReady?.(error);
      }
      this.settled += batch.length;
      this.settleWaiters();
    }
    this.writing = false;
    this.settleWaiters();
  }

  /** This writer is the file's only one: writing at the current position appends. */
  async #write(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length;) {
      const { bytesWritten } = await this.handle.write(data, offset, data.length - offset, null);
      offset += bytesWritten;
    }
  }

  private settleWaiters(): void {
    const waiting: FlushWaiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.upTo > this.settled) {
        waiting.push(waiter);
        continue;
      }
      const error = this.errors[waiter.firstUnreported];
      this.reported = Math.max(this.reported, this.errors.length);
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
    this.waiters = waiting;
  }
}

/**
 * Rollout directories this process made or found: a host starts sessions by the hundred, and
 * each directory (one a day) needs making once. If one disappears meanwhile, the open fails
 * and the directory is made again.
 */
const knownDirectories = new Set<string>();

function createFile(path: string): number {
  const directory = dirname(path);
  for (;;) {
    const known = knownDirectories.has(directory);
    if (!known) {
      try {
        mkdirSync(directory, { recursive: true });
      } catch (cause) {
        throw new RolloutError(`cannot create the directory for rollout ${path}`, path, { cause });
      }
      knownDirectories.add(directory);
    }
    try {
      return openSync(path, 'wx');
    } catch (cause) {
      if (known && (cause as NodeJS.ErrnoException).code === 'ENOENT') {
        knownDirectories.delete(directory);
        continue;
      }
      throw new RolloutError(`cannot create rollout ${path}`, path, { cause });
    }
  }
}

/** What the single writer appends through: a FileHandle, or a file descriptor (a new rollout). */
interface AppendTarget {
  write(data: Buffer, offset: number, length: number, position: null): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The AppendTarget of a new rollout: the file is made (refusing an existing one) at the first
 * write; writes go through the pool threads as a FileHandle's do. If it could not be made,
 * every write fails with that error, and close has nothing to release.
 */
function newFileTarget(path: string): AppendTarget {
  let fd: number | null = null;
  let failed: RolloutError | null = null;
  const descriptor = (): number => {
    if (fd !== null) return fd;
    if (failed) throw failed;
    try {
      fd = createFile(path);
    } catch (error) {
      failed = error as RolloutError;
      throw failed;
    }
    return fd;
  };
  return {
    write: (data, offset, length, position) =>
      new Promise((resolve, reject) =>
        write(descriptor(), data, offset, length, position, (error, bytesWritten) => (error ? reject(error) : resolve({ bytesWritten }))),
      ),
    sync: () => new Promise((resolve, reject) => fsync(descriptor(), (error) => (error ? reject(error) : resolve()))),
    close: () => new Promise((resolve, reject) => (fd === null ? resolve() : close(fd, (error) => (error ? reject(error) : resolve())))),
  };
}

function isEventObject(payload: unknown): payload is EventMsg {
  return typeof payload === 'object' && payload !== null && typeof (payload as { type?: unknown }).type === 'string';
}

/** One validated JSON line, or the error naming what was wrong with it. */
function serialize(item: { type: string; payload: unknown; seq?: number }, path: string): string | RolloutError {
  const candidate = { timestamp: new Date().toISOString(), type: item.type, payload: item.payload, ...(item.seq !== undefined ? { seq: item.seq } : {}) };
  const result = RolloutLine.safeParse(candidate);
  if (!result.success) {
    return new RolloutError(`refusing to write an invalid ${String(item.type)} line to rollout ${path}: ${describeZodError(result.error)}`, path, {
      cause: result.error,
    });
  }
  try {
    return `${JSON.stringify(result.data)}\n`;
  } catch (cause) {
    return new RolloutError(`cannot serialize a ${item.type} line for rollout ${path}`, path, { cause });
  }
}
