import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ResponseItem } from '../../protocol/index.js';
import type { TaskInput, TaskRequest } from '../../machines/session.js';
import type { TaskOutput } from '../../machines/task.js';
import type { TurnContext } from '../../machines/turn-context.js';
import { deleteSnapshot, listSnapshots, NotAGitRepoError, restoreSnapshot, takeSnapshot, type GhostSnapshot } from '../../lib/git/index.js';
import { log } from '../../lib/log.js';
import { completed, type Task, type TaskHost } from './task.js';

type UndoRequest = Extract<TaskRequest, { type: 'UNDO' }>;

/** Snapshots kept per session for `undo`; older ones are deleted as new turns start. */
const KEPT_SNAPSHOTS = 20;

/**
 * The note the history records after a successful undo, so the model does not assume its last
 * changes are still on disk. Injected context (`<user_action>`), not a user turn.
 */
export function undoNoticeMessage(): ResponseItem {
  const text = [
    '<user_action>',
    'The user undid the previous turn: the files in the repository were put back as they were before it started, so the changes made in that turn are gone from disk. Do not assume they are there; read the files again before building on them.',
    '</user_action>',
  ].join('\n');
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}

/**
 * `undo`, and the ghost snapshots it goes back to: before a turn that can change files, a
 * snapshot of the work tree (lib/git); `undo` restores the latest one. An undo does not stop
 * half-way: an interrupt lets it finish (a half-restored tree would be worse than either).
 */
export class UndoTask implements Task<UndoRequest> {
  readonly #host: TaskHost;
  /** The snapshot being taken, if any. */
  #pending: Promise<void> = Promise.resolve();
  #taking = 0;
  /** The latest turn's snapshot, until something that may change the tree has waited for it. */
  #unneeded: { readonly cwd: string; readonly stop: AbortController; taken?: GhostSnapshot } | null = null;

  constructor(host: TaskHost) {
    this.#host = host;
  }

  async run({ request, settings }: TaskInput<UndoRequest>): Promise<TaskOutput> {
    const id = request.submissionId;
    const host = this.#host;
    host.emit(id, { type: 'undo_started' });
    try {
      const snapshots = await listSnapshots(settings.cwd, host.sessionId);
      const last = snapshots.at(-1);
      if (!last) {
        host.emit(id, { type: 'undo_completed', success: false, message: 'there is no earlier turn to undo in this session' });
        return completed();
      }
      const restored = await restoreSnapshot(settings.cwd, last);
      await deleteSnapshot(settings.cwd, last);
      host.record(undoNoticeMessage());
      host.emit(id, {
        type: 'undo_completed',
        success: true,
        message: `restored ${restored.restored.length} file(s) and removed ${restored.removed.length} to the state before the last turn`,
      });
    } catch (error) {
      host.emit(id, { type: 'undo_completed', success: false, message: (error as Error).message });
    }
    return completed();
  }

  /**
   * Whether a turn takes an undo snapshot: not when it cannot change files, not in sub-agents
   * (they share their root's working tree, and undo belongs to the root), and not outside a
   * repository (which would otherwise cost starting git to learn).
   */
  wantsSnapshot(turn: TurnContext): boolean {
    return turn.sandbox_policy.mode !== 'read-only' && this.#host.depth === 0 && insideGitRepo(turn.cwd);
  }

  /**
   * Start taking the snapshot `undo` goes back to, after any snapshot still being taken (two at
   * once would race on the session's refs). Nothing waits for it here: the turn's first model
   * request goes out beside it, and whatever could change the tree waits for `settled()`.
   */
  startSnapshot(turn: TurnContext): void {
    const latest = { cwd: turn.cwd, stop: new AbortController() };
    this.#unneeded = latest;
    this.#taking++;
    this.#pending = this.#pending.then(() => this.#snapshot(turn, latest)).finally(() => this.#taking--);
  }

  /** Whether a snapshot is being taken (or waits for the one before it). */
  get taking(): boolean {
    return this.#taking > 0;
  }

  /**
   * Resolves once no snapshot is being taken (never rejects: a failed snapshot is a warning).
   * What waits here may change the tree (a tool, a task), so the latest snapshot is kept.
   */
  settled(): Promise<void> {
    this.#unneeded = null;
    return this.#pending;
  }

  /**
   * For the session's close: settled, less the latest turn's snapshot when nothing that could
   * change the tree ran after it began (the turn only answered). That one is stopped, or removed
   * if it is already taken, so the user does not wait for it: it would hold the tree as it still
   * is. An `undo` after the session is resumed then goes back to before the last turn that ran
   * something, whether or not the snapshot was done by the close.
   */
  closing(): Promise<void> {
    const unneeded = this.#unneeded;
    this.#unneeded = null;
    if (unneeded === null) return this.#pending;
    unneeded.stop.abort();
    this.#pending = this.#pending.then(async () => {
      if (unneeded.taken === undefined) return;
      try {
        await deleteSnapshot(unneeded.cwd, unneeded.taken);
      } catch (error) {
        log.warn({ err: error, session: this.#host.sessionId }, 'the snapshot of a turn that changed nothing could not be removed');
      }
    });
    return this.#pending;
  }

  async #snapshot(turn: TurnContext, latest: { readonly stop: AbortController; taken?: GhostSnapshot }): Promise<void> {
    const host = this.#host;
    const { signal } = latest.stop;
    try {
      const snapshot = await takeSnapshot(turn.cwd, host.sessionId, { signal });
      latest.taken = snapshot;
      if (snapshot.skipped.length > 0) {
        const list = snapshot.skipped.map((s) => `${s.path} (${s.reason.replace('_', ' ')})`).join(', ');
        host.emit(turn.turn_id, { type: 'warning', message: `undo will not cover these large or nested paths: ${list}` });
      }
      const all = await listSnapshots(turn.cwd, host.sessionId);
      for (const old of all.slice(0, Math.max(0, all.length - KEPT_SNAPSHOTS))) await deleteSnapshot(turn.cwd, old);
    } catch (error) {
      if (error instanceof NotAGitRepoError || signal.aborted) return;
      host.emit(turn.turn_id, { type: 'warning', message: `no undo snapshot for this turn: ${(error as Error).message}` });
    }
  }
}

/**
 * True when `dir` or one of its parents holds a `.git` (a directory, or a file for worktrees).
 * This runs before every turn and the answer is usually "no" at every level: a synchronous stat
 * that returns nothing for a missing path costs microseconds, where each failed async stat
 * builds an Error with a stack trace.
 */
function insideGitRepo(dir: string): boolean {
  for (let current = resolve(dir); ; current = dirname(current)) {
    if (statSync(join(current, '.git'), { throwIfNoEntry: false }) !== undefined) return true;
    if (dirname(current) === current) return false;
  }
}
