import type { Event, ResponseItem, RolloutLine, SessionMeta, TurnContextRecord, TurnOverrides } from '../../protocol/index.js';
import { historyFromRollout, shouldPersistEvent } from '../rollout/index.js';
import type { LoggedOutput, SessionPurpose } from './records.js';
import type { LogEntry } from './session-log.js';
import { TroupeError } from '../../protocol/index.js';

/** What the log says about one tool call of the round a dead worker left open. */
export type LoggedCall =
  | { readonly state: 'finished'; readonly output: LoggedOutput }
  /** It started and may have had effects, but its output never reached the log. */
  | { readonly state: 'started' }
  /** It never started: planned, perhaps waiting for approval. */
  | { readonly state: 'not_started' };

/** A turn that was running when its worker stopped. */
export interface OpenTurn {
  readonly turnId: string;
  readonly context: TurnContextRecord;
  /**
   * Model items of the response in flight, to be replayed instead of asking the model again.
   * Empty when that response had made no tool call yet: the request is then sent again.
   */
  readonly replay: readonly ResponseItem[];
  readonly calls: ReadonlyMap<string, LoggedCall>;
}

/** A session as its log describes it. */
export interface RebuiltSession {
  readonly meta: SessionMeta;
  /** Every rollout line, to rewrite the rollout file of the adopting worker. */
  readonly lines: readonly RolloutLine[];
  /** The history to start from (the replayed round is not in it: replaying records it again). */
  readonly history: readonly ResponseItem[];
  /** True when the open round was taken out of the history (to be replayed or asked for again). */
  readonly historyCut: boolean;
  readonly overrides: readonly TurnOverrides[];
  /** The seq of the last event: the next one is this plus one. */
  readonly lastSeq: number;
  readonly openTurn: OpenTurn | null;
  /** Ops already applied (by submission id), and turns already begun: neither is applied again. */
  readonly appliedOps: ReadonlySet<string>;
  readonly closed: boolean;
  /** What the session is for ('session' for a log from before placements were recorded). */
  readonly purpose: SessionPurpose;
  /** The `approved_for_session` keys the session held: those it was placed with, then its grants. */
  readonly approvals: readonly string[];
}

export class RebuildError extends TroupeError {
  override name = 'RebuildError';
}

/** Items the model writes; anything else in the history closes a round. */
function isModelOutput(item: ResponseItem): boolean {
  return item.type === 'function_call' || item.type === 'reasoning' || (item.type === 'message' && item.role === 'assistant');
}

/** Rebuild a session from its log (pure: the tests feed it entries directly). */
export function rebuildSession(entries: readonly LogEntry[]): RebuiltSession {
  let meta: SessionMeta | null = null;
  const lines: RolloutLine[] = [];
  const overrides: TurnOverrides[] = [];
  const appliedOps = new Set<string>();
  const turnContexts = new Map<string, TurnContextRecord>();
  const endedTurns = new Set<string>();
  const started = new Set<string>();
  const outputs = new Map<string, LoggedOutput>();
  let lastTurn: string | null = null;
  let lastSeq = 0;
  let closed = false;
  let purpose: SessionPurpose = 'session';
  let approvals = new Set<string>();
  for (const entry of entries) {
    if (entry.kind === 'event') {
      const event: Event = entry.event;
      if (event.seq !== null && event.seq > lastSeq) lastSeq = event.seq;
      const msg = event.msg;
      if (msg.type === 'task_complete' || msg.type === 'turn_aborted') endedTurns.add(msg.turn_id);
      if (msg.type === 'shutdown_complete') closed = true;
      if (shouldPersistEvent(msg)) lines.push({ timestamp: new Date().toISOString(), type: 'event_msg', payload: msg });
      continue;
    }
    const record = entry.record;
    switch (record.type) {
      case 'rollout': {
        const line = record.line;
        if (line.type === 'session_meta') meta = line.payload;
        else lines.push(line);
        if (line.type === 'turn_context') {
          turnContexts.set(line.payload.turn_id, line.payload);
          lastTurn = line.payload.turn_id;
          appliedOps.add(line.payload.turn_id);
        }
        break;
      }
      case 'call_started':
        started.add(record.call_id);
        break;
      case 'call_output':
        outputs.set(record.call_id, record.output);
        break;
      case 'op_done':
        appliedOps.add(record.id);
        if (record.override) overrides.push(record.override);
        break;
      case 'placed':
        // A resume places the session again, with the approvals it is given then.
        purpose = record.purpose;
        approvals = new Set(record.approvals);
        break;
      case 'approval':
        approvals.add(record.key);
        break;
      case 'closed':
        closed = true;
        break;
    }
  }
  if (meta === null) throw new RebuildError('the log has no session_meta record');
  const fullHistory = historyFromRollout(lines);
  let history = fullHistory;
  let historyCut = false;
  let openTurn: OpenTurn | null = null;
  const context = lastTurn !== null ? turnContexts.get(lastTurn) : undefined;
  if (!closed && lastTurn !== null && context && !endedTurns.has(lastTurn)) {
    let start = fullHistory.length;
    while (start > 0 && isModelOutput(fullHistory[start - 1] as ResponseItem)) start--;
    const round = fullHistory.slice(start);
    const hasCalls = round.some((item) => item.type === 'function_call');
    history = fullHistory.slice(0, start);
    historyCut = round.length > 0;
    const calls = new Map<string, LoggedCall>();
    if (hasCalls) {
      for (const item of round) {
        if (item.type !== 'function_call') continue;
        const output = outputs.get(item.call_id);
        calls.set(item.call_id, output ? { state: 'finished', output } : started.has(item.call_id) ? { state: 'started' } : { state: 'not_started' });
      }
    }
    openTurn = { turnId: lastTurn, context, replay: hasCalls ? round : [], calls };
  }
  return { meta, lines, history, historyCut, overrides, lastSeq, openTurn, appliedOps, closed, purpose, approvals: [...approvals] };
}
