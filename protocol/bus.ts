import { z } from 'zod';
import { SessionConfig } from './common.js';
import { Event, SessionSummary } from './events.js';
import { ResponseItem } from './items.js';
import { Submission } from './ops.js';

/**
 * Everything that crosses the bus is one of these, tagged by `kind`. Both ends validate, so a
 * message that is not a BusMessage never reaches an actor, whichever transport carried it.
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

/**
 * Ask the hosts (a queue group) to create a session. The session starts from `history` when
 * given (fork, resume, a forked sub-agent), otherwise empty.
 */
export const PlaceMessage = z.object({
  kind: z.literal('place'),
  /** The submission that asked for the session; its events carry this id. */
  submission_id: z.string(),
  session_id: z.string(),
  config: SessionConfig,
  lineage: SessionLineage.nullable(),
  /** Rebuild from this rollout file instead of starting fresh (resume). */
  resume_from: z.string().nullable(),
  history: z.array(ResponseItem).nullable(),
  forked_from: z.string().nullable(),
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
  FailureMessage,
]);
export type BusMessage = z.infer<typeof BusMessage>;
export type BusMessageKind = BusMessage['kind'];
export type BusMessageOf<K extends BusMessageKind> = Extract<BusMessage, { kind: K }>;
