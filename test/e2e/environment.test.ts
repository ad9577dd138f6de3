/**
 * shell_environment_policy end to end: `troupe app-server` runs with credentials in its
 * environment, and what the model is sent back from its commands (in the fake model server's
 * recorded requests) must show neither their names nor their values: `shell` in the sandbox,
 * the sandbox's own init (/proc/1/environ), `exec_command` on a PTY and on pipes, a command
 * re-run outside the sandbox after approval, and sub-agents. The user's own commands keep the
 * whole environment; MCP servers get the core variables and their config's `env`. Invalid
 * policies are refused naming the field.
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectSandbox } from '../../lib/sandbox/detect.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, sentOutput, startE2E } from '../support/e2e.js';
import type { FakeModelServer, ScriptStep } from '../../testing/index.js';
import { mcpEchoServerPath } from '../support/mcp-echo-server.js';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[e2e environment] sandboxed cases skipped: ${availability.reason}`);

/** In the app-server's environment; no command the model runs may see a name or a value. */
const SECRETS: Record<string, string> = {
  OPENAI_API_KEY: 'sk-e2e-openai-5f3a9',
  GITHUB_TOKEN: 'ghp-e2e-github-9c1d7',
  openai_api_key: 'sk-e2e-lowercase-77aa1',
  MY_Token_2: 'e2e-mixed-case-token-42',
  DEPLOY_PASSWORD: 'e2e-hunter2-pw',
};
/** Also there, and harmless: commands must see it (proof the output shows the environment at all). */
const VISIBLE = 'TROUPE_E2E_VISIBLE';
const VISIBLE_VALUE = 'visible-e2e-value';

/** Names a shell adds or changes on its own on the way to the program (sandbox wrappers use sh). */
const SHELL_MANAGED = new Set(['PWD', 'OLDPWD', 'SHLVL', '_']);

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E({ env: { ...SECRETS, [VISIBLE]: VISIBLE_VALUE, LC_TROUPE_E2E: 'core-kept' } }));
});

afterEach(() => finishE2E({ model, server, workspace }));

const call = (name: string, call_id: string, args: Record<string, unknown>) => ({ type: 'function_call' as const, name, call_id, arguments: args });
const shell = (call_id: string, command: string[], extra: Record<string, unknown> = {}) => call('shell', call_id, { command, ...extra });
const respond = (...items: ReturnType<typeof call>[]): ScriptStep => ({ kind: 'response', items });
const done: ScriptStep = { kind: 'response', items: [{ type: 'message', text: 'done' }] };

/** Variable names in `env`-style output (NAME=value lines), without the shell's own. */
function namesIn(output: string): string[] {
  const names = output.split(/\r?\n/).flatMap((line) => /^([A-Za-z_][A-Za-z0-9_.-]*)=/.exec(line)?.[1] ?? []);
  return [...new Set(names)].filter((name) => !SHELL_MANAGED.has(name)).sort();
}

/** Neither a secret's name (in any case) nor its value; the harmless variable is there. */
function expectClean(output: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    expect(output.toLowerCase()).not.toContain(name.toLowerCase());
    expect(output).not.toContain(value);
  }
  expect(output).toContain(`${VISIBLE}=${VISIBLE_VALUE}`);
}

describe.skipIf(!availability.ok)('the commands the model runs', () => {
  it("shell, the sandbox's init, and exec_command on a PTY and on pipes see no secret", async () => {
    model.enqueue(
      respond(shell('env', ['env'])),
      respond(shell('init', ['sh', '-c', 'cat /proc/1/comm; tr "\\0" "\\n" < /proc/1/environ'])),
      respond(call('exec_command', 'pty', { cmd: 'env', tty: true, yield_time_ms: 5_000 })),
      respond(call('exec_command', 'pipes', { cmd: 'env', yield_time_ms: 5_000 })),
      done,
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'show me the environment');
    const sent = model.requests.at(-1)!;
    expectClean(sentOutput(sent, 'env'));
    const init = sentOutput(sent, 'init');
    expect(init).toMatch(/Output:\nbwrap\n/); // it is the sandbox's pid 1 whose environment was read
    expectClean(init);
    const pty = sentOutput(sent, 'pty');
    expectClean(pty);
    expect(pty).toContain('PAGER=cat');
    expectClean(sentOutput(sent, 'pipes'));
  });

  it('include_only and set decide exactly what a command gets', async () => {
    model.enqueue(respond(shell('env', ['env'])), done);
    const session = await server.newSession({
      cwd: workspace,
      shell_environment_policy: { include_only: ['path', 'troupe_e2e_*', 'github_*'], set: { E2E_SET: 'from-set' } },
    });
    await server.turn(session, 'go');
    const output = sentOutput(model.requests[1]!, 'env');
    // GITHUB_TOKEN matches include_only, but the default excludes came first.
    expect(namesIn(output)).toEqual(['E2E_SET', 'PATH', VISIBLE]);
    expect(output).toContain('E2E_SET=from-set');
  });

  it('inherit core keeps only the core variables; inherit none only what set adds', async () => {
    model.enqueue(respond(shell('core', ['env'])), done, respond(shell('none', ['env'])), done);
    const core = await server.newSession({ cwd: workspace, shell_environment_policy: { inherit: 'core' } });
    await server.turn(core, 'go');
    const coreNames = namesIn(sentOutput(model.requests[1]!, 'core'));
    expect(coreNames).toEqual(expect.arrayContaining(['HOME', 'PATH']));
    const allowed = new Set(['HOME', 'LOGNAME', 'PATH', 'SHELL', 'USER', 'USERNAME', 'TMPDIR', 'TEMP', 'TMP', 'LANG', 'TERM']);
    expect(coreNames.filter((name) => !allowed.has(name) && !name.startsWith('LC_'))).toEqual([]);

    const none = await server.newSession({ cwd: workspace, shell_environment_policy: { inherit: 'none', set: { ONLY: 'this-one' } } });
    await server.turn(none, 'go');
    const output = sentOutput(model.requests[3]!, 'none');
    expect(namesIn(output)).toEqual(['ONLY']);
    expect(output).toContain('ONLY=this-one');
  });

  it('a command run outside the sandbox after approval gets the filtered environment too', async () => {
    const outside = realpathSync(await mkdtemp('/var/tmp/troupe-e2e-env-'));
    try {
      // on-failure: the sandbox refuses the write, the user approves, it runs again outside.
      const denied = join(outside, 'after-denial.txt');
      model.enqueue(respond(shell('retry', ['sh', '-c', `env > ${denied} && env`])), done);
      const session = await server.newSession({ cwd: workspace, approval_policy: 'on-failure' });
      const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, session);
      await server.waitForMsg('exec_approval_request', { session });
      server.submit({ type: 'exec_approval', id: 'retry', decision: 'approved' }, session);
      await server.waitForMsg('task_complete', { id: turn });
      expectClean(await readFile(denied, 'utf8'));
      expectClean(sentOutput(model.requests[1]!, 'retry'));

      // on-request: the model asks to leave the sandbox up front.
      const escalated = join(outside, 'escalated.txt');
      model.enqueue(respond(shell('up', ['sh', '-c', `env > ${escalated}`], { with_escalated_permissions: true, justification: 'write outside' })), done);
      const other = await server.newSession({ cwd: workspace, approval_policy: 'on-request' });
      const second = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'go' }] }, other);
      await server.waitForMsg('exec_approval_request', { session: other });
      server.submit({ type: 'exec_approval', id: 'up', decision: 'approved' }, other);
      await server.waitForMsg('task_complete', { id: second });
      expectClean(await readFile(escalated, 'utf8'));
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it("sub-agents run under their parent's policy", async () => {
    model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'PARENT') && outputFor(r, 's1') === undefined,
        items: [call('spawn_agent', 's1', { message: 'CHILD: show env' })],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD') && outputFor(r, 'child-env') === undefined, items: [shell('child-env', ['env'])] },
      { kind: 'response', match: (r) => mentions(r, 'CHILD') && outputFor(r, 'child-env') !== undefined, items: [{ type: 'message', text: 'child done' }] },
      {
        kind: 'reply',
        match: (r) => outputFor(r, 's1') !== undefined && outputFor(r, 'w') === undefined,
        handler: (r) => respond(call('wait_agent', 'w', { agent_ids: spawnedAgentIds(r) })),
      },
      { kind: 'response', match: (r) => outputFor(r, 'w') !== undefined, items: [{ type: 'message', text: 'done' }] },
    );
    const session = await server.newSession({ cwd: workspace, shell_environment_policy: { inherit: 'none', set: { FROM_PARENT: 'yes' } } });
    await server.turn(session, 'PARENT: delegate');
    const childRequest = model.requests.find((r) => outputFor(r, 'child-env') !== undefined)!;
    expect(namesIn(sentOutput(childRequest, 'child-env'))).toEqual(['FROM_PARENT']);
  });

  it("TROUPE_HOME/config.json sets the policy for sessions without one; a session's own replaces it", async () => {
    await writeFile(join(server.home, 'config.json'), JSON.stringify({ shell_environment_policy: { include_only: ['PATH'], set: { FROM_HOME: '1' } } }));
    model.enqueue(respond(shell('home', ['env'])), done, respond(shell('own', ['env'])), done);
    const fromHome = await server.newSession({ cwd: workspace });
    await server.turn(fromHome, 'go');
    expect(namesIn(sentOutput(model.requests[1]!, 'home'))).toEqual(['FROM_HOME', 'PATH']);

    const own = await server.newSession({ cwd: workspace, shell_environment_policy: { include_only: ['troupe_e2e_*'] } });
    await server.turn(own, 'go');
    expect(namesIn(sentOutput(model.requests[3]!, 'own'))).toEqual([VISIBLE]);
  });
});

describe("outside the model's commands", () => {
  it("run_user_shell_command keeps the user's whole environment", async () => {
    const session = await server.newSession({ cwd: workspace, shell_environment_policy: { inherit: 'none' } });
    const id = server.submit({ type: 'run_user_shell_command', command: 'env' }, session);
    const end = await server.waitForMsg('exec_command_end', { session, id });
    expect(end.msg.aggregated_output).toContain(`GITHUB_TOKEN=${SECRETS.GITHUB_TOKEN}`);
    expect(end.msg.aggregated_output).toContain(`${VISIBLE}=${VISIBLE_VALUE}`);
  });

  it("an MCP server gets the core variables and its config's env, nothing else", async () => {
    model.enqueue(respond(call('echo__env', 'm1', {})), done);
    const session = await server.newSession({
      cwd: workspace,
      mcp_servers: { echo: { command: process.execPath, args: [mcpEchoServerPath()], env: { FROM_CONFIG: 'configured' } } },
    });
    await server.turn(session, 'what does the server see?');
    const output = outputFor(model.requests[1]!, 'm1')!;
    expect(output).toContain('FROM_CONFIG=configured');
    expect(output).toMatch(/^PATH=/m);
    expect(output).toContain('LC_TROUPE_E2E=core-kept'); // the core set, which troupe passes itself
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(output.toLowerCase()).not.toContain(name.toLowerCase());
      expect(output).not.toContain(value);
    }
    expect(output).not.toContain(VISIBLE);
  });
});

describe('invalid policies', () => {
  it('in new_session: a bad_request naming the field', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ inherit: 'some' }, /shell_environment_policy\.inherit/],
      [{ set: { 'A=B': 'x' } }, /shell_environment_policy\.set\.A=B: variable name "A=B" must not contain "="/],
      [{ exclude: [''] }, /shell_environment_policy\.exclude\.0: a pattern must not be empty/],
      [{ includeOnly: ['PATH'] }, /shell_environment_policy: Unrecognized key: "includeOnly"/],
    ];
    for (const [policy, message] of cases) {
      const id = server.submit({ type: 'new_session', config: { cwd: workspace, shell_environment_policy: policy } });
      const error = await server.waitForMsg('error', { id });
      expect(error.msg.code).toBe('bad_request');
      expect(error.msg.message).toMatch(message);
    }
    expect(server.events.some((e) => e.msg.type === 'session_configured')).toBe(false);
  });

  it('in TROUPE_HOME/config.json: new sessions are refused, naming the file and the field', async () => {
    // The server checks the file when it starts (a bad one then exits 2): break it once it is up.
    await server.waitForMsg('session_list', { id: server.submit({ type: 'list_sessions' }) });
    await writeFile(join(server.home, 'config.json'), JSON.stringify({ shell_environment_policy: { exclude: ['FOO=bar'] } }));
    const id = server.submit({ type: 'new_session', config: { cwd: workspace } });
    const error = await server.waitForMsg('error', { id });
    expect(error.msg.code).toBe('bad_request');
    expect(error.msg.message).toContain(join(server.home, 'config.json'));
    expect(error.msg.message).toContain('shell_environment_policy.exclude.0');
    expect(server.events.some((e) => e.msg.type === 'session_configured')).toBe(false);
  });
});
