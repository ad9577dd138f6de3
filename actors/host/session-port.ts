import type { SessionPort } from '../../machines/port.js';
import type { AgentSupervisor } from '../agents/supervisor.js';
import type { TreeApprovals } from '../agents/tree-approvals.js';
import type { Bus } from '../../lib/bus/bus.js';
import type { FlowSignal } from '../../lib/flow/flow-gate.js';
import { inBackground, log } from '../../lib/log.js';
import type { ModelClient } from '../../lib/model/types.js';
import { CompactTask } from '../tasks/compact/task.js';
import { ReviewTask } from '../tasks/review/task.js';
import { runTask, type TaskHost } from '../tasks/task.js';
import { UndoTask } from '../tasks/undo.js';
import { UserShellTask } from '../tasks/user-shell.js';
import type { EventStream } from './event-stream.js';
import { sample } from './sampler.js';
import type { SessionState } from './session-state.js';
import type { ToolGateway } from './tool-gateway.js';

/** The parts of a session that implement its port. */
export interface SessionParts {
  readonly sessionId: string;
  readonly rootId: string;
  readonly depth: number;
  readonly bus: Bus;
  readonly namespace: string;
  readonly model: ModelClient;
  /** Base delay of the model retry backoff. */
  readonly retryBaseMs: number;
  readonly flow: FlowSignal;
  readonly events: EventStream;
  readonly state: SessionState;
  readonly tools: ToolGateway;
  readonly approvals: TreeApprovals;
  readonly agents: AgentSupervisor;
  /** The trace context of a call's or turn's span, for the child sessions it places (telemetry on only). */
  readonly traceparent?: ((id: string) => string | undefined) | undefined;
  /** Flush and close what the session holds (the `close` actor of the SessionMachine). */
  close(): Promise<void>;
}

/**
 * A session's port (machines/port.ts), each method handed to the part that does it: the event
 * stream, the session state, the tool gateway, the sampler, and the tasks (actors/tasks), which
 * get what they need of the session as a TaskHost.
 */
export function sessionPort(parts: SessionParts): SessionPort {
  const { events, state, tools, model } = parts;
  const emit: SessionPort['emit'] = (id, msg) => events.emit(id, msg);
  const host: TaskHost = {
    sessionId: parts.sessionId,
    rootId: parts.rootId,
    depth: parts.depth,
    bus: parts.bus,
    namespace: parts.namespace,
    model,
    emit,
    record: (...items) => state.record(...items),
    replaceHistory: (items, note, turnStart) => state.replaceHistory(items, note, turnStart),
    history: () => state.items(),
    turnStart: (turnId) => state.turnStart(turnId),
    tokensInUse: () => state.tokensInUse,
    setTokensInUse: (tokens) => {
      state.tokensInUse = tokens;
    },
    toolContext: (callId, turn, signal) => tools.contextFor(callId, turn, signal),
    traceparent: parts.traceparent,
  };
  const undo = new UndoTask(host);
  const compact = new CompactTask(host);
  const tasks = { REVIEW: new ReviewTask(host), COMPACT: compact, UNDO: undo, USER_SHELL: new UserShellTask(host) };
  return {
    emit,
    // tool calls
    plan: (input) => tools.plan(input),
    // A tool runs once the turn's undo snapshot is taken, so the snapshot never sees its changes.
    execute: async (input, signal) => {
      if (undo.taking) log.debug({ session: parts.sessionId, call: input.callId }, 'the call waits for the undo snapshot of its turn');
      await undo.settled();
      if (signal.aborted) return { text: 'the call was stopped before it ran', success: false };
      return tools.execute(input, signal);
    },
    rememberApproval: (key) => parts.approvals.grant(key),
    // turns
    sample: ({ turn, attempt }, sendBack) =>
      sample({
        model,
        attempt,
        retryBaseMs: parts.retryBaseMs,
        flow: parts.flow,
        report: sendBack,
        emit: (msg) => emit(turn.turn_id, msg),
        // Built when the request goes out, from the history as it is then.
        prompt: () => ({
          model: turn.model,
          instructions: turn.base_instructions,
          input: state.forPrompt((detail) => log.warn({ session: parts.sessionId, detail }, 'history repaired before a request')),
          tools: tools.specs(),
          parallel_tool_calls: true,
          effort: turn.effort,
          reasoning_summary: turn.reasoning_summary,
          output_schema: turn.final_output_json_schema,
        }),
      }),
    wantsSnapshot: (turn) => undo.wantsSnapshot(turn),
    startSnapshot: (step) => undo.startSnapshot(step.turn),
    wantsCompaction: (turn) => compact.wantsCompaction(turn),
    autoCompact: (step, signal) => compact.autoCompact(step.turnId, step.turn, signal),
    beginTurn: (turnId, turn, input) => {
      // One turn at a time: what earlier turns kept is no longer needed.
      tools.beginTurn();
      state.beginTurn(turnId, turn, input);
    },
    recordItem: (turnId, item) => state.recordItem(turnId, item),
    recordOutputs: (outputs) => state.recordOutputs(outputs),
    recordAborted: (callIds) => state.recordAborted(callIds),
    recordInput: (turnId, items) => state.recordInput(turnId, items),
    accountUsage: (turnId, turn, usage) => state.accountUsage(turnId, turn, usage),
    rememberRateLimits: (snapshot) => state.rememberRateLimits(snapshot),
    reportFailure: (turnId, turn, failure) => state.reportFailure(turnId, turn, failure),
    interruptAgents: () => inBackground(parts.agents.interruptAll(), 'interrupting the sub-agents'),
    // the session's tasks
    startTask: (id, taskModel) => emit(id, { type: 'task_started', turn_id: id, model_context_window: model.contextWindow(taskModel) }),
    // An undo, or a command of the user's, comes after the last turn's snapshot.
    runTask: async (input, signal) => {
      await undo.settled();
      return runTask(tasks, input, signal);
    },
    rollback: (submissionId, numTurns) => state.rollback(submissionId, numTurns),
    // A snapshot still being taken is finished, not cut off (its git processes and temporary
    // index), unless nothing ran after its turn began that could change the tree (undo.ts).
    close: async () => {
      await undo.closing();
      await parts.close();
    },
  };
}
