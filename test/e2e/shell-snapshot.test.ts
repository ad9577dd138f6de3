/**
 * Login shells that start once: `troupe app-server` runs with a HOME of the test's own whose
 * login profile counts its runs, and the commands the model and the user run (`shell` with
 * `bash -lc`, `exec_command`, `run_user_shell_command`) must see what the profile set up
 * (variables, PATH, aliases, functions) while the profile ran once for the session. The
 * snapshot keeps to the shell_environment_policy, cannot be steered by the repository or
 * rewritten from the sandbox, and goes when the session does; a profile that cannot be
 * snapshotted falls back to login shells with one warning. Sub-agents source their parent's
 * snapshot; when the parent's failed, a sub-agent takes its own.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { detectSandbox } from '../../lib/sandbox/detect.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, sentOutput, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';
import { waitFor } from '../support/wait.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[e2e shell-snapshot] sandboxed cases skipped: ${availability.reason}`);
const hasZsh = existsSync('/usr/bin/zsh') || existsSync('/bin/zsh');

const call = (name: string, call_id: string, args: Record<string, unknown>) => ({ type: 'function_call' as const, name, call_id, arguments: args });
const bash = (call_id: string, script: string) => call('shell', call_id, { command: ['bash', '-lc', script] });
const respond = (...items: ReturnType<typeof call>[]): ScriptStep => ({ kind: 'response', items });
const done: ScriptStep = { kind: 'response', items: [{ type: 'message', text: 'done' }] };

/** A value no shell may take for code: quotes, a command substitution, a newline. */
const TRICKY = `it's "$(touch PWNED)" \`touch PWNED\` $HOME\nline two`;

/** A profile that counts its runs (and where it ran), and sets up one of each thing a snapshot carries. */
function bashProfile(home: string): string {
  return [
    `echo "$PWD" >> ${home}/profile-runs`,
    `cat /proc/1/comm > ${home}/profile-pid1`,
    'echo "a profile may print things" ',
    `export PATH="${home}/bin:$PATH"`,
    'export FROM_PROFILE=profile-value',
    `export TRICKY=${shellWord(TRICKY)}`,
    'export OPENAI_API_KEY=sk-from-profile-31337 GITHUB_TOKEN=ghp-from-profile-31337 MY_SECRET_KEY=key-from-profile-31337',
    'export CI=from-profile',
    "alias greet='echo hello-from-alias'",
    'shout() { echo "SHOUT:$1"; }',
    'shopt -s extglob',
    // A profile that reads the current directory: the repository must not be able to use it.
    '[ -f ./.envrc ] && . ./.envrc',
    '',
  ].join('\n');
}

function shellWord(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

async function makeHome(profile: (home: string) => string, file = '.bash_profile'): Promise<string> {
  const home = realpathSync(await mkdtemp(join(tmpdir(), 'troupe-snapshot-home-')));
  await writeFile(join(home, file), profile(home));
  await mkdir(join(home, 'bin'));
  await writeFile(join(home, 'bin', 'profile-tool'), '#!/bin/sh\necho tool-on-profile-path\n');
  await chmod(join(home, 'bin', 'profile-tool'), 0o755);
  return home;
}

const profileRuns = (home: string): string[] =>
  existsSync(join(home, 'profile-runs')) ? readFileSync(join(home, 'profile-runs'), 'utf8').trim().split('\n').filter(Boolean) : [];

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
let home: string | undefined;

async function start(env: Record<string, string>): Promise<void> {
  ({ model, server, workspace } = await startE2E({ env }));
  workspace = realpathSync(workspace);
}

afterEach(async () => {
  await finishE2E({ model, server, workspace });
  if (home !== undefined) await rm(home, { recursive: true, force: true });
  home = undefined;
});

describe.skipIf(!availability.ok)('a session with a bash login profile', () => {
  it('runs the profile once and carries its variables, PATH, aliases and functions into every kind of command, in and out of the sandbox', async () => {
    home = await makeHome(bashProfile);
    await start({ HOME: home, SHELL: '/bin/bash' });
    // The repository's own file, which the profile above would source if run in the repository.
    await writeFile(join(workspace, '.envrc'), `touch ${home}/PWNED-BY-REPO\nexport FROM_REPO=yes\n`);
    const script =
      'echo "var=$FROM_PROFILE"; profile-tool; greet; shout loud; shopt -q extglob && echo extglob-on; printf "%s" "$TRICKY" > tricky.txt; echo "repo=${FROM_REPO:-no}"';
    model.enqueue(
      respond(bash('first', script)),
      respond(call('exec_command', 'exec', { cmd: script, yield_time_ms: 10_000 })),
      respond(bash('env', 'env')),
      done,
    );
    const session = await server.newSession({ cwd: workspace, shell_environment_policy: { set: { CI: 'from-policy' } } });
    await server.turn(session, 'use the profile');
    const sent = model.requests.at(-1)!;
    for (const id of ['first', 'exec']) {
      const output = sentOutput(sent, id);
      expect(output).toContain('var=profile-value');
      expect(output).toContain('tool-on-profile-path');
      expect(output).toContain('hello-from-alias');
      expect(output).toContain('SHOUT:loud');
      expect(output).toContain('extglob-on');
      expect(output).toContain('repo=no');
      expect(output).not.toContain('a profile may print things');
    }
    expect(await readFile(join(workspace, 'tricky.txt'), 'utf8')).toBe(TRICKY);
    expect(existsSync(join(workspace, 'PWNED'))).toBe(false);
    expect(existsSync(join(home, 'PWNED-BY-REPO'))).toBe(false);

    // The policy holds against the profile: its secrets are not restored, its `set` wins.
    const env = sentOutput(sent, 'env');
    expect(env).toContain('FROM_PROFILE=profile-value');
    expect(env).toContain('CI=from-policy');
    for (const leaked of ['sk-from-profile', 'ghp-from-profile', 'key-from-profile', 'OPENAI_API_KEY', 'GITHUB_TOKEN', 'MY_SECRET_KEY'])
      expect(env).not.toContain(leaked);

    // The user's own command uses the same snapshot (with the user's whole environment).
    const id = server.submit({ type: 'run_user_shell_command', command: 'greet; echo "user=$FROM_PROFILE"' }, session);
    const end = await server.waitForMsg('exec_command_end', { session, id });
    expect(end.msg.aggregated_output).toContain('hello-from-alias');
    expect(end.msg.aggregated_output).toContain('user=profile-value');

    // Four commands, one profile run, in the sandbox as the first command was, and not in the repository.
    expect(readFileSync(join(home, 'profile-pid1'), 'utf8').trim()).toBe('bwrap');
    const runs = profileRuns(home);
    expect(runs).toHaveLength(1);
    expect(runs[0]).not.toBe(workspace);
    const snapshotDir = runs[0]!;
    const [file] = readdirSnapshot(snapshotDir);
    const text = readFileSync(join(snapshotDir, file!), 'utf8');
    expect(text).not.toContain('from-profile-31337');
    expect(server.events.filter((e) => e.session_id === session && e.msg.type === 'warning')).toEqual([]);

    // A sandboxed command cannot plant code in the snapshot for a later command outside the sandbox.
    model.enqueue(
      respond(
        call('shell', 'plant', {
          command: ['sh', '-c', `echo 'touch ${home}/PLANTED' >> ${snapshotDir}/${file}; echo more > ${snapshotDir}/extra.sh; ls ${snapshotDir}`],
        }),
      ),
      done,
    );
    await server.turn(session, 'plant');
    expect(sentOutput(model.requests.at(-1)!, 'plant')).toMatch(/Read-only file system/);
    expect(readFileSync(join(snapshotDir, file!), 'utf8')).toBe(text);
    const after = server.submit({ type: 'run_user_shell_command', command: 'true' }, session);
    await server.waitForMsg('exec_command_end', { session, id: after });
    expect(existsSync(join(home, 'PLANTED'))).toBe(false);

    await closeAndExpectRemoved(session, snapshotDir);
  });

  it('falls back to login shells, with one warning, when the profile cannot be snapshotted', async () => {
    // This profile fails anywhere but in a workspace: the snapshot fails, login shells in the workspace work.
    home = await makeHome(
      (h) => `echo "$PWD" >> ${h}/profile-runs\ncase "$PWD" in */troupe-ws-*) ;; *) echo "not here" >&2; exit 3 ;; esac\nexport FROM_PROFILE=login-value\n`,
    );
    await start({ HOME: home, SHELL: '/bin/bash' });
    model.enqueue(
      respond(bash('one', 'echo "v=$FROM_PROFILE"')),
      respond(call('exec_command', 'two', { cmd: 'echo "v=$FROM_PROFILE"', yield_time_ms: 10_000 })),
      done,
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'go');
    const sent = model.requests.at(-1)!;
    expect(sentOutput(sent, 'one')).toContain('v=login-value');
    expect(sentOutput(sent, 'two')).toContain('v=login-value');
    const warnings = server.events.filter((e) => e.session_id === session && e.msg.type === 'warning');
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings[0]!.msg)).toMatch(/could not be snapshotted.*exited with 3: not here/);
    // The failed snapshot, then one login shell per command.
    const runs = profileRuns(home);
    expect(runs.filter((dir) => dir === workspace)).toHaveLength(2);
    expect(runs.filter((dir) => dir !== workspace)).toHaveLength(1);
    await closeAndExpectRemoved(
      session,
      runs.find((dir) => dir !== workspace)!,
    );
  });
});

/** A step for the requests `match` accepts that have no output for `callId` yet (its first), or that do (after it). */
const before = (callId: string, match: (r: RecordedRequest) => boolean) => (r: RecordedRequest) => match(r) && outputFor(r, callId) === undefined;
const after = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;
const spawn = (call_id: string, message: string) => call('spawn_agent', call_id, { message });
/** The parent's step that waits for every agent it spawned (their ids read from its own history). */
const waitForSpawned = (match: (r: RecordedRequest) => boolean): ScriptStep => ({
  kind: 'reply',
  match,
  handler: (request) => respond(call('wait_agent', 'wait', { agent_ids: spawnedAgentIds(request) })),
});
/** The parent's first request (a child's messages name its task, CHILD ...). */
const isParent = (r: RecordedRequest) => mentions(r, 'PARENT-GO') && !mentions(r, 'CHILD');
const warningsOf = (session: string) => server.events.filter((e) => e.session_id === session && e.msg.type === 'warning');
const childrenOf = (parent: string) => server.events.flatMap((e) => (e.session_id === parent && e.msg.type === 'agent_spawned' ? [e.msg.agent_id] : []));

/** The output of call `callId` as the model was sent it, in whichever session's request carried it. */
function outputSent(callId: string): string {
  return sentOutput(
    model.requests.find((r) => outputFor(r, callId) !== undefined)!,
    callId,
  );
}

describe.skipIf(!availability.ok)('sub-agents and the snapshot of their parent', () => {
  it('a parent and the two sub-agents it spawns run the profile once between them', async () => {
    home = await makeHome((h) => `echo "$PWD" >> ${h}/profile-runs\nexport FROM_PROFILE=profile-value\n`);
    await start({ HOME: home, SHELL: '/bin/bash' });
    model.enqueue(
      { ...respond(bash('p', 'echo "parent=$FROM_PROFILE"')), match: before('p', isParent) },
      { ...respond(spawn('s1', 'CHILD one'), spawn('s2', 'CHILD two')), match: after('p') },
      { ...respond(bash('c1', 'echo "one=$FROM_PROFILE"')), match: before('c1', (r) => mentions(r, 'CHILD one')) },
      { ...respond(bash('c2', 'echo "two=$FROM_PROFILE"')), match: before('c2', (r) => mentions(r, 'CHILD two')) },
      { ...done, match: after('c1') },
      { ...done, match: after('c2') },
      waitForSpawned(after('s2')),
      { ...done, match: after('wait') },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'PARENT-GO');
    expect(outputSent('p')).toContain('parent=profile-value');
    expect(outputSent('c1')).toContain('one=profile-value');
    expect(outputSent('c2')).toContain('two=profile-value');
    expect(childrenOf(session)).toHaveLength(2);
    for (const id of [session, ...childrenOf(session)]) expect(warningsOf(id)).toEqual([]);
    const runs = profileRuns(home);
    expect(runs).toHaveLength(1);
    await closeAndExpectRemoved(session, runs[0]!);
  });

  it('a sub-agent takes a snapshot of its own when its parent could not take one', async () => {
    // The profile fails outside a workspace while `broken` is there: the parent's snapshot fails,
    // its login shell in the workspace works; the file goes before the parent spawns its child.
    home = await makeHome(
      (h) =>
        `echo "$PWD" >> ${h}/profile-runs\ncase "$PWD" in */troupe-ws-*) ;; *) [ -e ${h}/broken ] && { echo "broken" >&2; exit 3; } ;; esac\nexport FROM_PROFILE=profile-value\n`,
    );
    await writeFile(join(home, 'broken'), '');
    const brokenHome = home;
    await start({ HOME: home, SHELL: '/bin/bash' });
    model.enqueue(
      { ...respond(bash('p', 'echo "parent=$FROM_PROFILE"')), match: before('p', isParent) },
      {
        kind: 'reply',
        match: after('p'),
        handler: async () => {
          await rm(join(brokenHome, 'broken'));
          return respond(spawn('s1', 'CHILD one'));
        },
      },
      { ...respond(bash('c1', 'echo "one=$FROM_PROFILE"')), match: before('c1', (r) => mentions(r, 'CHILD one')) },
      { ...respond(bash('c2', 'echo "again=$FROM_PROFILE"')), match: after('c1') },
      { ...done, match: after('c2') },
      waitForSpawned(after('s1')),
      { ...done, match: after('wait') },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'PARENT-GO');
    expect(outputSent('p')).toContain('parent=profile-value');
    expect(outputSent('c1')).toContain('one=profile-value');
    expect(outputSent('c2')).toContain('again=profile-value');
    const [child] = childrenOf(session);
    expect(warningsOf(session)).toHaveLength(1);
    expect(JSON.stringify(warningsOf(session)[0]!.msg)).toMatch(/could not be snapshotted.*exited with 3: broken/);
    expect(warningsOf(child!)).toEqual([]);
    // The parent's failed snapshot and its login shell, then the child's snapshot, which its two commands share.
    const runs = profileRuns(home);
    expect(runs.filter((dir) => dir === workspace)).toHaveLength(1);
    expect(runs.filter((dir) => dir !== workspace)).toHaveLength(2);
    await closeAndExpectRemoved(session, runs.at(-1)!);
  });
});

describe.skipIf(!availability.ok || !hasZsh)('a session whose shell is zsh', () => {
  it('snapshots the zsh login profile for exec_command', async () => {
    home = await makeHome(
      (h) =>
        `echo "$PWD" >> ${h}/profile-runs\nexport PATH="${h}/bin:$PATH"\nexport FROM_ZPROFILE=z-value\nalias zgreet='echo hello-from-zsh-alias'\nzshout() { echo "ZSHOUT:$1"; }\n`,
      '.zprofile',
    );
    await start({ HOME: home, SHELL: existsSync('/usr/bin/zsh') ? '/usr/bin/zsh' : '/bin/zsh' });
    const cmd = 'echo "z=$FROM_ZPROFILE"; profile-tool; zgreet; zshout x';
    model.enqueue(
      respond(call('exec_command', 'z1', { cmd, yield_time_ms: 10_000 })),
      respond(call('exec_command', 'z2', { cmd, yield_time_ms: 10_000 })),
      done,
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'go');
    const sent = model.requests.at(-1)!;
    for (const id of ['z1', 'z2']) {
      const output = sentOutput(sent, id);
      expect(output).toContain('z=z-value');
      expect(output).toContain('tool-on-profile-path');
      expect(output).toContain('hello-from-zsh-alias');
      expect(output).toContain('ZSHOUT:x');
    }
    const runs = profileRuns(home);
    expect(runs).toHaveLength(1);
    await closeAndExpectRemoved(session, runs[0]!);
  });
});

/** The snapshot directory goes with its session. */
async function closeAndExpectRemoved(session: string, snapshotDir: string): Promise<void> {
  expect(existsSync(snapshotDir)).toBe(true);
  server.submit({ type: 'shutdown' }, session);
  await server.waitForMsg('shutdown_complete', { session });
  await waitFor(() => !existsSync(snapshotDir), 'the snapshot directory to be removed');
}

function readdirSnapshot(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.sh'))
    .sort();
}
