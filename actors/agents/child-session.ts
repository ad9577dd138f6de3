import { randomUUID } from 'node:crypto';
import type { ErrorCode, Event, EventType, ResponseItem, SessionConfig, SessionOp } from '../../protocol/index.js';
import type { Bus } from '../../lib/bus/bus.js';
import { subjects } from '../../lib/bus/subjects.js';
import { log } from '../../lib/log.js';
import { TroupeError } from '../../protocol/index.js';

export interface ChildTurnRequest {
  readonly bus: Bus;
  readonly namespace: string;
  readonly parentSessionId: string;
  readonly rootId: string;
  /** The child's depth in the tree. */
  readonly depth: number;
  /** The parent's submission this work is for; the placement carries it. */
  readonly submissionId: string;
  readonly config: SessionConfig;
  readonly purpose: 'review' | 'compact';
  readonly initialHistory?: readonly ResponseItem[] | undefined;
  readonly prompt: string;
  readonly outputSchema?: Record<string, unknown> | undefined;
  readonly signal: AbortSignal;
  /** Called with the child's id as soon as it is placed (its events then stream to the client). */
  readonly onPlaced?: ((sessionId: string) => void) | undefined;
  readonly requestTimeoutMs?: number | undefined;
  /** W3C trace context the child's session span is started under. */
  readonly traceparent?: string | undefined;
}

export interface ChildTurnResult {
  readonly sessionId: string;
  readonly lastMessage: string | null;
  /** The last error the child reported during its turn. */
  readonly error: { readonly code: ErrorCode; readonly message: string } | null;
  /** The parent gave up (its signal aborted) before the child finished. */
  readonly aborted: boolean;
}

/** Raised when the child session could not be started at all. */
export class ChildSessionError extends TroupeError {
  override readonly name = 'ChildSessionError';
}

const SHUTDOWN_TIMEOUT_MS = 30_000;
/** The child's events the turn waits on; the bus skips the others before parsing them. */
const TURN_EVENTS: ReadonlySet<EventType> = new Set<EventType>(['error', 'task_complete', 'turn_aborted', 'shutdown_complete']);

/**
 * One turn in a child session placed through the bus (the placement carries it), then its shutdown: how review threads
 * and compaction's summarizer run (DESIGN.md: review and compaction are sub-agent
 * invocations). The child has its own history and rollout; only messages pass between them.
 */
export async function runChildTurn(request: ChildTurnRequest): Promise<ChildTurnResult> {
  const { bus } = request;
  const names = subjects(request.namespace);
  const sessionId = randomUUID();
  const turnId = `${request.submissionId}-${request.purpose}`;
  const timeoutMs = request.requestTimeoutMs ?? 10_000;
  let lastMessage: string | null = null;
  let error: ChildTurnResult['error'] = null;
  let turnDone!: () => void;
  const turnEnded = new Promise<void>((resolve) => (turnDone = resolve));
  let closedDone!: () => void;
  const closed = new Promise<void>((resolve) => (closedDone = resolve));

  const events = bus.subscribe(
    names.event(request.rootId, sessionId),
    (message) => {
      if (message.kind !== 'event') return;
      const event: Event = message.event;
      const msg = event.msg;
      if (msg.type === 'error') error = { code: msg.code, message: msg.message };
      else if (msg.type === 'task_complete' && msg.turn_id === turnId) {
        lastMessage = msg.last_agent_message;
        turnDone();
      } else if (msg.type === 'turn_aborted' && msg.turn_id === turnId) turnDone();
      else if (msg.type === 'shutdown_complete') {
        turnDone();
        closedDone();
      }
    },
    { eventTypes: TURN_EVENTS },
  );
  const submit = async (id: string, op: SessionOp) => {
    const reply = await bus.request(names.op(sessionId), { kind: 'op', submission: { id, session_id: sessionId, op } }, { timeoutMs });
    if (reply.kind === 'failure') throw new ChildSessionError(reply.message);
  };
  try {
    const placed = await bus.request(
      names.place(),
      {
        kind: 'place',
        submission_id: request.submissionId,
        session_id: sessionId,
        config: request.config,
        lineage: { parent_session_id: request.parentSessionId, root_session_id: request.rootId, depth: request.depth },
        origin: { type: 'new' },
        purpose: request.purpose,
        ...(request.traceparent ? { traceparent: request.traceparent } : {}),
        ...(request.initialHistory ? { initial_history: [...request.initialHistory] } : {}),
        // The turn travels with the placement: the child starts on it as it is placed.
        first_turn: {
          id: turnId,
          op: {
            type: 'user_turn',
            items: [{ type: 'text', text: request.prompt }],
            ...(request.outputSchema ? { final_output_json_schema: request.outputSchema } : {}),
          },
        },
      },
      { timeoutMs },
    );
    if (placed.kind !== 'placed') throw new ChildSessionError(placed.kind === 'failure' ? placed.message : `unexpected reply ${placed.kind}`);
    request.onPlaced?.(sessionId);
    const aborted = new Promise<'aborted'>((resolve) => {
      if (request.signal.aborted) resolve('aborted');
      request.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
    });
    const outcome = await Promise.race([turnEnded.then(() => 'done' as const), aborted]);
    if (outcome === 'aborted') await submit(`${turnId}-interrupt`, { type: 'interrupt' }).catch(() => undefined);
    await submit(`${turnId}-shutdown`, { type: 'shutdown' }).catch((e: unknown) =>
      log.warn({ err: e, child: sessionId }, 'could not shut a child session down'),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS)))]);
    clearTimeout(timer);
    return { sessionId, lastMessage, error, aborted: outcome === 'aborted' };
  } finally {
    await events.unsubscribe();
  }
}
