/**
 * `write_stdin`: send characters to a running exec session (or none, to collect more output)
 * and return what it printed since, within `yield_time_ms`. No plan of its own: the program
 * was approved and sandboxed when `exec_command` started it.
 */
import { performance } from 'node:perf_hooks';
import { WriteStdinArgs } from '../../../protocol/index.js';
import { MAX_EXEC_SESSIONS, PtySessionManager } from '../pty/session-manager.js';
import { clampYield, execOutput, sessionsOf } from '../pty/tool-output.js';
import { defineTool, type ToolContext, type ToolOutput } from '../tool.js';

export const DEFAULT_WRITE_YIELD_MS = 250;

const DESCRIPTION =
  'Write chars to the stdin of a program started by exec_command (its session_id), then return its new output ' +
  'after yield_time_ms (clamped to 250..30000). Send "" to just wait for more output; "\\u0003" is Ctrl-C, "\\u0004" Ctrl-D.';

export async function runWriteStdin(args: WriteStdinArgs, ctx: ToolContext): Promise<ToolOutput> {
  const started = performance.now();
  const manager = sessionsOf(ctx, () => new PtySessionManager(MAX_EXEC_SESSIONS, ctx.treeSlots));
  const id = typeof args.session_id === 'number' ? args.session_id : Number.parseInt(args.session_id, 10);
  const session = Number.isSafeInteger(id) ? manager.get(id) : undefined;
  if (session === undefined) {
    return {
      text: `write_stdin: there is no exec session ${String(args.session_id)}: it never existed, or it ended and its exit code was already returned. Start the program again with exec_command.`,
      success: false,
    };
  }
  if (args.chars.length > 0) session.write(args.chars);
  const result = await session.collect(clampYield(args.yield_time_ms, DEFAULT_WRITE_YIELD_MS), ctx.signal);
  return execOutput(manager, session, result, Math.round(performance.now() - started), undefined);
}

export const writeStdinTool = defineTool<WriteStdinArgs>({
  name: 'write_stdin',
  description: DESCRIPTION,
  args: WriteStdinArgs,
  run: runWriteStdin,
});
