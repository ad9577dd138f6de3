import type { ActorLogic, Snapshot } from 'xstate';
import type { TurnAbortReason } from './turn.js';

/**
 * The contract between the SessionMachine and every task it runs. A task is an invoked actor
 * that
 *
 * - is asked to stop with `ABORT` (an interrupt, or a shutdown while it runs), and answers by
 *   ending once it has stopped what it started: a task that cannot stop half-way (undo) just
 *   finishes;
 * - ends with a TaskOutput, or throws.
 *
 * The session machine announces the task (`task_started`) when it enters the task's state and
 * closes it from the output (`task_complete`, or `turn_aborted` for an aborted task), so each
 * task kind only does its work. A regular turn is the TurnMachine (turn.ts); the other kinds
 * are `fromTask` actors whose work the host provides (actors/tasks/).
 */

/** `failed` says the task reported its failure itself (an `error` event); it still ends with `task_complete`. */
export type TaskStatus = 'completed' | 'failed' | 'aborted';

export interface TaskOutput {
  readonly status: TaskStatus;
  /** What `task_complete` carries as `last_agent_message`. */
  readonly lastAgentMessage: string | null;
  /** Why an aborted task stopped (`turn_aborted`'s reason); null when it was not aborted. */
  readonly abortReason: TurnAbortReason | null;
}

/** Asks a running task to stop. */
export interface TaskAbort {
  readonly type: 'ABORT';
  readonly reason: TurnAbortReason;
}

/** What a `fromTask` actor's work is given: its input, and a signal that an ABORT (or stopping the actor) aborts. */
export interface TaskWork<TInput> {
  readonly input: TInput;
  readonly signal: AbortSignal;
}

type TaskSnapshot<TInput> = Snapshot<TaskOutput> & { readonly input: TInput | undefined };

/** ABORT from outside; the other two the actor sends itself when its work settles. */
type TaskActorEvent = TaskAbort | { readonly type: 'task.settled'; readonly output: TaskOutput } | { readonly type: 'task.threw'; readonly error: unknown };

export type TaskLogic<TInput> = ActorLogic<TaskSnapshot<TInput>, TaskActorEvent, TInput>;

/**
 * A task actor around an async function. Like `fromPromise`, except that the actor hears
 * `ABORT`: it aborts the work's signal and still waits for the work to end, so the task can
 * say how it ended (a `fromPromise` actor can only be stopped, and a stopped actor reports
 * nothing). Stopping the actor aborts the signal too, and then nothing is reported.
 */
export function fromTask<TInput>(work: (args: TaskWork<TInput>) => Promise<TaskOutput>): TaskLogic<TInput> {
  // One logic serves many actors (every session of a host): each has its own controller.
  const controllers = new WeakMap<object, AbortController>();
  return {
    config: work,
    getInitialSnapshot: (_, input) => ({ status: 'active', output: undefined, error: undefined, input }),
    start: (snapshot, { self }) => {
      if (snapshot.status !== 'active') return;
      const controller = new AbortController();
      controllers.set(self, controller);
      let settled = false;
      // Stopped from outside (the state was left, or the session stopped): abort, report nothing.
      const stopped = () => {
        if (!settled) controller.abort();
        settled = true;
      };
      self.subscribe({ complete: stopped, error: stopped });
      // A work that throws at once fails the task like one that rejects.
      new Promise<TaskOutput>((resolve) => resolve(work({ input: snapshot.input as TInput, signal: controller.signal }))).then(
        (output) => {
          if (settled) return;
          settled = true;
          self.send({ type: 'task.settled', output });
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          self.send({ type: 'task.threw', error });
        },
      );
    },
    transition: (snapshot, event, { self }) => {
      if (snapshot.status !== 'active') return snapshot;
      switch (event.type) {
        case 'ABORT':
          controllers.get(self)?.abort();
          return snapshot;
        case 'task.settled':
          controllers.delete(self);
          return { status: 'done', output: event.output, error: undefined, input: undefined };
        case 'task.threw':
          controllers.delete(self);
          return { status: 'error', output: undefined, error: event.error, input: undefined };
        default:
          // XState's own events (stopping is seen by the observer in `start`).
          return snapshot;
      }
    },
    getPersistedSnapshot: (snapshot) => snapshot,
  };
}
