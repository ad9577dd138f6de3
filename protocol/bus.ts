import { z } from 'zod';
import { SessionConfig } from './common.js';
import { AgentStatus, Event, SessionSummary } from './events.js';
import { ResponseItem } from './items.js';
import { Submission, UserTurnOp } from './ops.js';

/**
 * Everything that crosses the bus is one of these, tagged by `kind`. Publishers validate, and
 * receivers validate whatever they did not see validated, so a message that is not a BusMessage
 * never reaches an actor, whichever transport carried it.
 */

/** An op addressed to a session that exists. */
export const OpMessage = z.object({
  kind: z.literal('op'),
  submission: Submission.extend({ session_id: z.string().min(1) }),
});

/** A protocol event from a session. */
export const EventMessage = z.object({ kind: z.literal('event'), event: Event });

/** Where a new session sits in its tree; absent for a root session. */
export const SessionLineage = z.object({
  parent_session_id: z.string(),
  root_session_id: z.string(),
  depth: z.number().int().positive(),
});
export type SessionLineage = z.infer<typeof SessionLineage>;

const SessionRef = { rollout_path: z.string().min(1).optional(), session_id: z.string().min(1).optional() };

/** Where a placed session's history comes from. */
export const SessionOrigin = z.discriminatedUnion('type', [
  z.object({ type: z.literal('new') }),
  /** Rebuild the session from its rollout; it keeps its id and appends to the same file. */
  z.object({ type: z.literal('resume'), ...SessionRef }),
  /** A new session whose history is the source's, cut before its nth user message. */
  z.object({ type: z.literal('fork'), ...SessionRef, nth_user_message: z.number().int().min(0).optional() }),
]);
export type SessionOrigin = z.infer<typeof SessionOrigin>;

/** Ask the hosts (a queue group) to create a session; answered by `placed` or `failure`. */
export const PlaceMessage = z.object({
  kind: z.literal('place'),
  /** The submission that asked for the session; its events carry this id. */
  submission_id: z.string(),
  /** The id for a new or forked session; a resumed session keeps the id in its rollout. */
  session_id: z.string(),
  config: SessionConfig.optional(),
  lineage: SessionLineage.nullable(),
  origin: SessionOrigin,
  /** A sub-agent started with `fork_context`: its history begins as a copy of its parent's. */
  initial_history: z.array(ResponseItem).optional(),
  /** Approval keys granted `approved_for_session` in the tree so far (sub-agents inherit them). */
  approvals: z.array(z.string()).optional(),
  /**
   * What the session is for: a regular session (the default), a review thread (core tools but
   * no sub-agents) or a compaction's summarizer (no tools at all).
   */
  purpose: z.enum(['session', 'review', 'compact']).optional(),
  /**
   * The session's first turn (a sub-agent's task), taken as soon as it is placed, as an op on
   * its subject would be: it spares the round trip of submitting it after the `placed` reply.
   */
  first_turn: z.object({ id: z.string().min(1), op: UserTurnOp }).optional(),
  /**
   * W3C trace context of the span that asked for the session (a sub-agent's spawn_agent call),
   * so a tree spread over workers is one trace. Sent only while telemetry is on.
   */
  traceparent: z
    .string()
    .regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, 'a W3C traceparent (00-<trace id>-<span id>-<flags>)')
    .optional(),
});
export type PlaceMessage = z.infer<typeof PlaceMessage>;

export const PlacedMessage = z.object({
  kind: z.literal('placed'),
  session_id: z.string(),
  worker_id: z.string(),
  rollout_path: z.string(),
});

export const ListSessionsMessage = z.object({ kind: z.literal('list_sessions') });
export const SessionListMessage = z.object({ kind: z.literal('session_list'), sessions: z.array(SessionSummary) });

/**
 * Slots of one session tree, kept by its root, in two pools: `agents` (open sub-agents) and
 * `exec` (live exec_command programs). `acquire` asks for one (answered by
 * `agent_slot_reply`), `release` gives one back.
 */
export const TreePool = z.enum(['agents', 'exec']);
export type TreePool = z.infer<typeof TreePool>;
export const AgentSlotMessage = z.object({
  kind: z.literal('agent_slot'),
  action: z.enum(['acquire', 'release']),
  pool: TreePool.default('agents'),
  agent_id: z.string(),
});
export const AgentSlotReplyMessage = z.object({
  kind: z.literal('agent_slot_reply'),
  granted: z.boolean(),
  open: z.number().int().nonnegative(),
  limit: z.number().int().positive(),
});

/** A sub-agent of a tree as `list_agents` shows it; the root keeps them all, wherever each runs. */
export const AgentInfo = z.object({
  agent_id: z.string(),
  nickname: z.string(),
  role: z.string().nullable(),
  status: AgentStatus,
  depth: z.number().int().positive(),
  parent_session_id: z.string(),
});
export type AgentInfo = z.infer<typeof AgentInfo>;
/** A supervisor tells its tree's root that one of its agents started or changed status. */
export const AgentUpdateMessage = z.object({ kind: z.literal('agent_update'), agent: AgentInfo });
/** Asks the root for the tree's live agents, answered by `agent_list_reply`. */
export const AgentListMessage = z.object({ kind: z.literal('agent_list') });
export const AgentListReplyMessage = z.object({ kind: z.literal('agent_list_reply'), agents: z.array(AgentInfo) });

/** An `approved_for_session` decision, broadcast to every session of the tree. */
export const TreeApprovalMessage = z.object({ kind: z.literal('tree_approval'), key: z.string() });

/** The receiver took the message (an op was handed to its session). */
export const AckMessage = z.object({ kind: z.literal('ack') });

/** A request that failed; `code` follows the protocol's error codes. */
export const FailureMessage = z.object({
  kind: z.literal('failure'),
  code: z.enum(['bad_request', 'internal', 'unavailable']),
  message: z.string(),
});

export const BusMessage = z.discriminatedUnion('kind', [
  OpMessage,
  EventMessage,
  PlaceMessage,
  PlacedMessage,
  ListSessionsMessage,
  SessionListMessage,
  AgentSlotMessage,
  AgentSlotReplyMessage,
  AgentUpdateMessage,
  AgentListMessage,
  AgentListReplyMessage,
  TreeApprovalMessage,
  AckMessage,
  FailureMessage,
]);
export type BusMessage = z.infer<typeof BusMessage>;
export type BusMessageKind = BusMessage['kind'];
export type BusMessageOf<K extends BusMessageKind> = Extract<BusMessage, { kind: K }>;
