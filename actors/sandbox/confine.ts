/** Turning a planned command into the argv that actually runs: confined, or knowingly not. */
import type { ToolContext } from '../tools/tool.js';
import { requireSandbox, sandboxedArgv } from './detect.js';
import { rulesHome } from './command-plan.js';
import { sandboxSpecFor, type SandboxSpec } from './spec.js';

export interface ConfinedCommand {
  readonly argv: string[];
  /** The sandbox it runs in; undefined when it runs unconfined. */
  readonly spec: SandboxSpec | undefined;
}

/**
 * The argv for `command`. `sandboxed: false` is only ever the plan's decision (danger-full-access,
 * or an approved escalation); when the plan says sandboxed and no backend works, this throws
 * SandboxUnavailableError rather than running the command unconfined.
 */
export async function confineCommand(command: readonly string[], ctx: ToolContext, options: { sandboxed: boolean; tty: boolean }): Promise<ConfinedCommand> {
  const spec = options.sandboxed ? sandboxSpecFor(ctx.turn, { home: rulesHome(ctx) }) : undefined;
  if (spec === undefined) return { argv: [...command], spec: undefined };
  const backend = await requireSandbox(spec);
  return { argv: sandboxedArgv(backend, spec, command, { tty: options.tty }), spec };
}
