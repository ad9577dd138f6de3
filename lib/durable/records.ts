import { z } from 'zod';
import { PlaceMessage, RolloutLine, TurnOverrides } from '../../protocol/index.js';

/**
 * What a session appends to its log besides its events. Together with the events (same
 * stream, stream order) this is enough to rebuild the session on another worker.
 */
export const LoggedOutput = z.object({ text: z.string(), success: z.boolean() });
export type LoggedOutput = z.infer<typeof LoggedOutput>;

/** A regular session, a review thread or a compaction's summarizer (PlaceMessage.purpose). */
export const SessionPurpose = PlaceMessage.shape.purpose.unwrap();
export type SessionPurpose = z.infer<typeof SessionPurpose>;

export const LogRecord = z.discriminatedUnion('type', [
  /** One rollout line (PROTOCOL.md §8), exactly as the worker's rollout file gets it. */
  z.object({ type: z.literal('rollout'), line: RolloutLine }),
  /**
   * A tool call is about to run. Written and acknowledged before the call starts, so a worker
   * that adopts the session knows the call may have had effects.
   */
  z.object({ type: z.literal('call_started'), call_id: z.string(), turn_id: z.string() }),
  /** The output a call gave the model. A call with this record is never run again. */
  z.object({ type: z.literal('call_output'), call_id: z.string(), turn_id: z.string(), output: LoggedOutput }),
  /**
   * An op from the session's queue was applied. Written before the queue message is
   * acknowledged, so a redelivered op can be recognised; `override` keeps a settings change,
   * which no rollout line records.
   */
  z.object({ type: z.literal('op_done'), id: z.string(), override: TurnOverrides.optional() }),
  /**
   * How the session was placed (or resumed), which its session_meta line does not say: what it
   * is for, and the `approved_for_session` keys it started with. The last one counts.
   */
  z.object({ type: z.literal('placed'), purpose: SessionPurpose, approvals: z.array(z.string()) }),
  /** The session granted an `approved_for_session` key; an adopted session keeps it. */
  z.object({ type: z.literal('approval'), key: z.string() }),
  /** The session shut down; nothing adopts it. */
  z.object({ type: z.literal('closed') }),
]);
export type LogRecord = z.infer<typeof LogRecord>;
