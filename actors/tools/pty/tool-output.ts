/** What `exec_command` and `write_stdin` return to the model (PROTOCOL.md §6). */
import { truncateMiddle } from '../../../lib/truncate.js';
import type { ToolContext, ToolOutput } from '../tool.js';
import { MAX_CALL_OUTPUT_BYTES, type CollectResult, type ExecSession, type PtySessionManager } from './session-manager.js';

export const MIN_YIELD_MS = 250;
export const MAX_YIELD_MS = 30_000;
/** A rough, conservative exchange rate for `max_output_tokens`. */
const BYTES_PER_TOKEN = 4;

export function clampYield(requested: number | undefined, fallback: number): number {
  return Math.min(MAX_YIELD_MS, Math.max(MIN_YIELD_MS, requested ?? fallback));
}

/** The per-session store key under which the manager lives (one per troupe session). */
export const PTY_RESOURCE = 'pty';

export function sessionsOf(ctx: ToolContext, create: () => PtySessionManager): PtySessionManager {
  return ctx.resources.get(PTY_RESOURCE, create);
}

export function execOutput(
  manager: PtySessionManager,
  session: ExecSession,
  result: CollectResult,
  wallTimeMs: number,
  maxOutputTokens: number | undefined,
): ToolOutput {
  const maxBytes = Math.min(MAX_CALL_OUTPUT_BYTES, maxOutputTokens === undefined ? Infinity : maxOutputTokens * BYTES_PER_TOKEN);
  let output = truncateMiddle(result.output, { maxBytes: Math.max(256, maxBytes), maxLines: Number.MAX_SAFE_INTEGER });
  if (result.interrupted) output += '\n[the turn was interrupted: the program was killed]';
  const body: Record<string, unknown> = { output };
  if (result.exitCode === null) body.session_id = session.id;
  else {
    body.exit_code = result.exitCode;
    // Its end has now been reported: the id is free to forget.
    manager.forget(session.id);
  }
  body.wall_time_ms = wallTimeMs;
  return { text: JSON.stringify(body), success: result.exitCode === null || result.exitCode === 0 };
}
