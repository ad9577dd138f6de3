import { fromCallback, fromPromise, type EventObject } from 'xstate';
import type { SessionPort } from '../../machines/port.js';
import { sessionMachine, type TaskAnnouncement, type TaskInput } from '../../machines/session.js';
import { fromTask } from '../../machines/task.js';
import { toolCallMachine, type ToolCallInput, type ToolRunInput } from '../../machines/tool-call.js';
import type { ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import { turnMachine, type TurnEvent, type TurnStep } from '../../machines/turn.js';

/**
 * The session statechart with its logic provided, built once per host and shared by all its
 * sessions: every implementation finds its session's port (machines/port.ts) by the session id
 * the machines carry. (Providing a machine per session would rebuild three statecharts for each
 * one, which costs memory per idle session and time per spawn.)
 */
export class SessionLogic {
  readonly #ports = new Map<string, SessionPort>();
  readonly machine;

  constructor() {
    const of = (sessionId: string): SessionPort => {
      const port = this.#ports.get(sessionId);
      if (!port) throw new Error(`session ${sessionId} has no port on this host`);
      return port;
    };
    const toolCall = toolCallMachine.provide({
      actors: {
        plan: fromPromise<ToolPlan, ToolCallInput>(({ input }) => of(input.sessionId).plan(input)),
        execute: fromPromise<ToolOutput, ToolRunInput>(({ input, signal }) => of(input.sessionId).execute(input, signal)),
      },
      actions: {
        emitEvent: ({ context }, { msg }) => of(context.sessionId).emit(context.turnId, msg),
        rememberApproval: ({ context }, { key }) => of(context.sessionId).rememberApproval(key),
      },
    });
    const turn = turnMachine.provide({
      actors: {
        toolCall,
        sample: fromCallback<TurnEvent, TurnStep & { attempt: number }>(({ input, sendBack }) => of(input.sessionId).sample(input, sendBack)),
        autoCompact: fromPromise<void, TurnStep>(({ input, signal }) => of(input.sessionId).autoCompact(input, signal)),
      },
      guards: {
        wantsSnapshot: ({ context }) => of(context.sessionId).wantsSnapshot(context.turn),
        wantsCompaction: ({ context }) => of(context.sessionId).wantsCompaction(context.turn),
      },
      actions: {
        emitEvent: ({ context }, { msg, id }) => of(context.sessionId).emit(id ?? context.turnId, msg),
        startSnapshot: ({ context }) => of(context.sessionId).startSnapshot({ sessionId: context.sessionId, turnId: context.turnId, turn: context.turn }),
        beginTurn: ({ context }, { turnId, turn, input }) => of(context.sessionId).beginTurn(turnId, turn, input),
        recordItem: ({ context }, { item }) => of(context.sessionId).recordItem(context.turnId, item),
        recordOutputs: ({ context }, { outputs }) => of(context.sessionId).recordOutputs(outputs),
        recordAborted: ({ context }, { callIds }) => of(context.sessionId).recordAborted(callIds),
        recordInput: ({ context }, { items }) => of(context.sessionId).recordInput(context.turnId, items),
        accountUsage: ({ context }, { usage }) => of(context.sessionId).accountUsage(context.turnId, context.turn, usage),
        rememberRateLimits: ({ context }, { snapshot }) => of(context.sessionId).rememberRateLimits(snapshot),
        reportFailure: ({ context }, { failure }) => of(context.sessionId).reportFailure(context.turnId, context.turn, failure),
        interruptAgents: ({ context }) => of(context.sessionId).interruptAgents(),
      },
    });
    this.machine = sessionMachine.provide({
      actors: {
        turn,
        announce: fromCallback<EventObject, TaskAnnouncement>(({ input }) => of(input.sessionId).startTask(input.id, input.model)),
        task: fromTask<TaskInput>(({ input, signal }) => of(input.sessionId).runTask(input, signal)),
        close: fromPromise<void, { sessionId: string }>(({ input }) => of(input.sessionId).close()),
      },
      actions: {
        emitEvent: ({ context }, { id, msg }) => of(context.sessionId).emit(id, msg),
        rollback: ({ context }, { submissionId, numTurns }) => of(context.sessionId).rollback(submissionId, numTurns),
      },
    });
  }

  /** Serve `sessionId` through `port`; the returned function ends that. */
  bind(sessionId: string, port: SessionPort): () => void {
    if (this.#ports.has(sessionId)) throw new Error(`session ${sessionId} is already bound on this host`);
    this.#ports.set(sessionId, port);
    return () => this.#ports.delete(sessionId);
  }
}
