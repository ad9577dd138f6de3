/** Turning a planned command into the argv that actually runs: confined, or knowingly not. */
import type { TurnContext } from '../../machines/turn-context.js';
import { requireSandbox, sandboxedArgv } from './detect.js';
import { sandboxSpecFor, type SandboxSpec } from './spec.js';

export interface ConfinedCommand {
  readonly argv: string[];
  /** The sandbox it runs in; undefined when it runs unconfined. */
  readonly spec: SandboxSpec | undefined;
}

export interface ConfineOptions {
  /** The plan's decision; false only under danger-full-access or after an approved escalation. */
  readonly sandboxed: boolean;
  /** The command runs on a terminal, which must stay its controlling terminal. */
  readonly tty: boolean;
  /** TROUPE_HOME, kept read-only inside the sandbox when it lies in a writable root. */
  readonly home: string;
  /** More paths kept read-only inside the sandbox when they lie in a writable root (the session's shell snapshots). */
  readonly readOnly?: readonly string[] | undefined;
}

/**
 * The argv for `command`, computed when the command starts (the spec is never cached). When
 * the plan says sandboxed and no backend works, this throws SandboxUnavailableError rather than
 * running the command unconfined.
 */
export async function confineCommand(
  command: readonly string[],
  turn: Pick<TurnContext, 'cwd' | 'sandbox_policy'>,
  options: ConfineOptions,
): Promise<ConfinedCommand> {
  const spec = options.sandboxed ? sandboxSpecFor(turn, { home: options.home, readOnly: options.readOnly }) : undefined;
  if (spec === undefined) return { argv: [...command], spec: undefined };
  const backend = await requireSandbox(spec);
  return { argv: sandboxedArgv(backend, spec, command, { tty: options.tty }), spec };
}
