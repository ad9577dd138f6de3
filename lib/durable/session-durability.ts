import type { Event, ResponseItem, SessionMeta, TurnOverrides } from '../../protocol/index.js';
import type { SessionPort } from '../../machines/port.js';
import type { TurnContext } from '../../machines/turn-context.js';
import type { RolloutItem, RolloutRecorder } from '../rollout/index.js';
import type { OpenTurn } from './rebuild.js';
import type { SessionLog } from './session-log.js';

/**
 * What the model is told about a call that was running on a worker that died. The call is not
 * run again: it may have had its effects already (its process may even still be running as an
 * orphan), so the model, which can look, decides.
 */
export const INTERRUPTED_BY_FAILOVER =
  'This call was running on a worker that stopped before the call finished; it may or may not have taken effect, and a process it started may still be running. Check its effects before running it again.';

/** The few things of a session's runtime the durable bindings need to reach. */
export interface RuntimeHooks {
  /** Add items to the history and the rollout, without announcing them. */
  record(item: ResponseItem): void;
  /** Remember the context of a turn that began on another worker. */
  rememberTurn(turnId: string, turn: TurnContext): void;
  /** Whether tool `name` may simply run again when its call was cut off by a failover (ToolHandler.repeatable). */
  repeatable(name: string): boolean;
}

/** A turn to take up again when an adopted session starts (see SessionRuntime.start). */
export interface ResumedTurn {
  readonly turnId: string;
  readonly overrides: TurnOverrides;
}

/** What a session running on NATS gets besides the in-process services. */
export interface SessionDurability {
  /** The seq of the last event in the log (0 for a new session). */
  readonly initialSeq: number;
  /** Set for a session adopted from another worker: the turn it left open, if any. */
  readonly adopted: { readonly from: string; readonly turn: ResumedTurn | null } | null;
  wrap(port: SessionPort, hooks: RuntimeHooks): SessionPort;
  /** Log a grant another session of the tree made, so this session keeps it when adopted. */
  recordApproval(key: string): void;
  /**
   * Publish one of the session's events through its log: stored in order, held while NATS is
   * away. False when the log holds as much as it may and the event was not taken; `force`
   * takes it anyway (the notices saying so).
   */
  publishEvent(event: Event, force?: boolean): boolean;
  /**
   * True while the log holds more than half of what it may (NATS away or slow): the session then
   * leaves out its streaming deltas, whose content the complete items carry anyway.
   */
  congested(): boolean;
  /** What the log may hold before it refuses events. */
  readonly limits: { readonly maxEntries: number; readonly maxBytes: number };
  /**
   * The log refused an event: the session stops on this worker (SessionRuntime.emit has said
   * so on its stream), and continues from its log once what the log holds is stored.
   */
  overflowed(): void;
}

/**
 * The session's port with the call journal around tool execution and, for an adopted session,
 * the open turn taken up where the log left it:
 *
 * - its start (task_started, turn context, user input) is in the log already: not repeated;
 * - the response in flight is replayed from the log when it had made tool calls; otherwise
 *   the model request is sent again;
 * - a call whose output is in the log gets that output, without running;
 * - a call the log shows started but not finished gets INTERRUPTED_BY_FAILOVER, without running,
 *   unless its tool is repeatable (running it again does what running it once does): it is
 *   planned and runs again;
 * - any other call is planned again, so a pending approval is asked again.
 *
 * An `approved_for_session` grant is logged too, so the session keeps it when it is adopted.
 */
export function durableBindings(inner: SessionPort, log: SessionLog, open: OpenTurn | null, hooks: RuntimeHooks): SessionPort {
  let announced = false;
  let begun = false;
  let replayed = false;
  const replaying = new Set(open?.replay.map((item) => JSON.stringify(item)) ?? []);
  const adoptedTurn = (turnId: string) => open !== null && turnId === open.turnId;
  /**
   * What the log decides for a call of the open turn: its output, or (started, not finished)
   * the failover note. Undefined when the call runs: it never started, or its tool is
   * repeatable, so it runs again.
   */
  const decided = (input: { readonly callId: string; readonly name: string }) => {
    const call = open?.calls.get(input.callId);
    if (!call || call.state === 'not_started' || (call.state === 'started' && hooks.repeatable(input.name))) return undefined;
    return call;
  };
  return {
    ...inner,
    rememberApproval(key) {
      inner.rememberApproval(key);
      // Ordered before the call_started record of the call it lets run (same connection).
      log.append({ type: 'approval', key });
    },
    startTask(id, model) {
      if (adoptedTurn(id) && !announced) {
        announced = true;
        return;
      }
      inner.startTask(id, model);
    },
    beginTurn(turnId, turn, input) {
      if (adoptedTurn(turnId) && !begun) {
        begun = true;
        hooks.rememberTurn(turnId, turn);
        return;
      }
      inner.beginTurn(turnId, turn, input);
    },
    startSnapshot(step) {
      if (!adoptedTurn(step.turnId)) inner.startSnapshot(step);
    },
    sample(step, sendBack) {
      if (!open || !adoptedTurn(step.turnId) || replayed || open.replay.length === 0) return inner.sample(step, sendBack);
      replayed = true;
      let stopped = false;
      // Like a real sampler, report on a later tick: the turn's entry actions run first.
      queueMicrotask(() => {
        for (const item of open.replay) if (!stopped) sendBack({ type: 'MODEL.ITEM', item });
        if (!stopped) sendBack({ type: 'MODEL.COMPLETED', usage: null });
      });
      return () => {
        stopped = true;
      };
    },
    recordItem(turnId, item) {
      const key = JSON.stringify(item);
      if (adoptedTurn(turnId) && replaying.delete(key)) {
        // Announced by the worker that first received it.
        hooks.record(item);
        return;
      }
      inner.recordItem(turnId, item);
    },
    async plan(input) {
      // A call that does not run needs no plan; one that runs again is planned again, so an
      // approval it needs is asked again (the model chooses call ids: a later call may take a
      // cut-off call's).
      if (decided(input)) return { kind: 'run', sandboxed: true };
      return inner.plan(input);
    },
    async execute(input, signal) {
      const known = decided(input);
      if (known?.state === 'finished') return known.output;
      if (known?.state === 'started') return { text: INTERRUPTED_BY_FAILOVER, success: false };
      await log.appendDurable({ type: 'call_started', call_id: input.callId, turn_id: input.turnId });
      const output = await inner.execute(input, signal);
      if (!output.escalate) {
        await log.appendDurable({
          type: 'call_output',
          call_id: input.callId,
          turn_id: input.turnId,
          output: { text: output.text, success: output.success },
        });
      }
      return output;
    },
  };
}

/** The part of a rollout recorder a session uses. */
export type RolloutSink = Pick<RolloutRecorder, 'path' | 'record' | 'close'>;

/**
 * A rollout recorder whose lines also go to the session's log. Event lines are left out: the
 * log stream already holds every event, captured from the bus.
 */
export function journaledRollout(recorder: RolloutSink, log: SessionLog, meta?: SessionMeta): RolloutSink {
  const append = (item: { type: string; payload: unknown }) => {
    const line = { timestamp: new Date().toISOString(), ...item } as { timestamp: string } & RolloutItem;
    log.append({ type: 'rollout', line });
  };
  if (meta) append({ type: 'session_meta', payload: meta });
  return {
    path: recorder.path,
    close: () => recorder.close(),
    record(...items: RolloutItem[]) {
      recorder.record(...items);
      for (const item of items) if (item.type !== 'event_msg') append(item);
    },
  };
}
