/**
 * Hostile: a command the model runs outside the sandbox (danger-full-access, or an approved
 * escalation) reads what troupe's process launcher holds, not from its own environment, which
 * the shell_environment_policy filters, but from the launcher's /proc/<pid>/environ: same user,
 * so it is readable. The launcher holds only the core variables, so a variable the session's
 * policy withholds is not there to read. (The host's own environ is as readable to such a
 * command; docs/DESIGN.md says what that means for secrets.)
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, sentOutput, startE2E } from '../support/e2e.js';
import type { FakeModelServer, ScriptStep } from '../../testing/index.js';

const SECRETS: Record<string, string> = {
  OPENAI_API_KEY: 'sk-attack-openai-3e8c1',
  GITHUB_TOKEN: 'ghp-attack-github-71b0d',
};
/** Harmless by name, withheld by the session's own policy (exclude / include_only). */
const WITHHELD = { DATABASE_URL: 'postgres://app:attack-dbpw-55f2@db/app' };

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E({ env: { ...SECRETS, ...WITHHELD } }));
});

afterEach(() => finishE2E({ model, server, workspace }));

const call = (name: string, call_id: string, args: Record<string, unknown>) => ({ type: 'function_call' as const, name, call_id, arguments: args });
const respond = (...items: ReturnType<typeof call>[]): ScriptStep => ({ kind: 'response', items });
const done: ScriptStep = { kind: 'response', items: [{ type: 'message', text: 'done' }] };

/** From the command's shell up to the first node process above it, the process launcher: what its environ holds of the planted values. */
const LAUNCHER_ONLY = [
  'p=$PPID',
  'while [ -n "$p" ] && [ "$p" -gt 1 ] && [ "$(cat /proc/$p/comm)" != node ]; do p=$(awk "/^PPid:/{print \\$2}" /proc/$p/status); done',
  'echo "ancestor $p $(cat /proc/$p/comm 2>/dev/null)"',
  'tr "\\0" "\\n" < /proc/$p/environ 2>/dev/null | grep -E "attack-" || true',
].join('\n');

describe.skipIf(process.platform !== 'linux')("a command outside the sandbox and its ancestors' /proc/<pid>/environ", () => {
  it("the launcher's own environment does not widen a session's stricter policy (exclude)", async () => {
    model.enqueue(respond(call('shell', 'launcher', { command: ['sh', '-c', LAUNCHER_ONLY] })), done);
    const session = await server.newSession({
      cwd: workspace,
      approval_policy: 'never',
      sandbox_policy: 'danger-full-access',
      shell_environment_policy: { exclude: ['DATABASE_URL'] },
    });
    await server.turn(session, 'go');
    const output = sentOutput(model.requests[1]!, 'launcher');
    expect(output).toMatch(/ancestor \d+ node\n/); // the launcher's environ was read
    for (const value of [...Object.values(SECRETS), ...Object.values(WITHHELD)]) expect(output).not.toContain(value);
  });
});
