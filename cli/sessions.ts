import type { SessionSummary } from '../protocol/index.js';
import { NATS_FLAGS } from '../lib/nats/settings.js';
import { gatewayBusOptions } from '../actors/gateway-options.js';
import { createRuntime, type RuntimeOptions } from '../actors/runtime.js';
import { parseArgs } from './flags.js';

/** How much of the first prompt a listing line shows. */
const PROMPT_CHARS = 72;

/**
 * `troupe sessions [--all] [--json]`: the sessions whose rollouts troupe can see, newest first,
 * one a line: id, when it started, its directory and the start of its first prompt. Sub-agents
 * and review threads only with --all; --json prints each summary as a JSON line.
 */
export async function runSessions(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: { ...NATS_FLAGS, all: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  });
  const nats = await gatewayBusOptions(values, process.env, 'troupe sessions');
  const runtime = createRuntime({ ...runtimeOptions, ...nats });
  try {
    const sessions = (await runtime.listSessions()).filter((s) => values.all || s.parent_session_id === null);
    for (const session of sessions) process.stdout.write(`${values.json ? JSON.stringify(session) : describe(session)}\n`);
    return 0;
  } finally {
    await runtime.close();
  }
}

function describe(session: SessionSummary): string {
  const prompt = (session.first_user_message ?? '').replace(/\s+/g, ' ').trim();
  const shown = prompt.length > PROMPT_CHARS ? `${prompt.slice(0, PROMPT_CHARS - 1)}…` : prompt;
  return [session.session_id, session.created_at, session.cwd, shown || '(no prompt)'].join('  ');
}
