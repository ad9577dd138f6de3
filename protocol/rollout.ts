import { z } from 'zod';
import { AskForApproval, ReasoningEffort, SandboxPolicy, SessionConfig } from './common.js';
import { EventMsg } from './events.js';
import { ResponseItem } from './items.js';

export const SessionMeta = z.object({
  session_id: z.string(),
  created_at: z.string(),
  cwd: z.string(),
  model: z.string(),
  parent_session_id: z.string().nullable(),
  depth: z.number().int().nonnegative(),
  /** The session settings as created, so a resume without a config rebuilds the same session. */
  config: SessionConfig,
  /** Set when the session was forked from another rollout. */
  forked_from: z.string().nullable().optional(),
});
export type SessionMeta = z.infer<typeof SessionMeta>;

export const TurnContextRecord = z.object({
  turn_id: z.string(),
  cwd: z.string(),
  model: z.string(),
  approval_policy: AskForApproval,
  sandbox_policy: SandboxPolicy,
  effort: ReasoningEffort.optional(),
});
export type TurnContextRecord = z.infer<typeof TurnContextRecord>;

export const CompactedRecord = z.object({
  message: z.string(),
  /** The whole history after compaction; resuming replaces everything before it with this. */
  replacement_history: z.array(ResponseItem).optional(),
});
export type CompactedRecord = z.infer<typeof CompactedRecord>;

const line = <T extends string, P extends z.ZodType>(type: T, payload: P) => z.object({ timestamp: z.string(), type: z.literal(type), payload });

/** One line of a rollout file (PROTOCOL.md §8). */
export const RolloutLine = z.discriminatedUnion('type', [
  line('session_meta', SessionMeta),
  line('response_item', ResponseItem),
  line('turn_context', TurnContextRecord),
  // `seq`: the event's number on the session's stream, so a resumed session goes on from it.
  line('event_msg', EventMsg).extend({ seq: z.number().int().positive().optional() }),
  line('compacted', CompactedRecord),
]);
export type RolloutLine = z.infer<typeof RolloutLine>;
