/**
 * The undo snapshot runs beside the turn's first model request, not before it, and the turn's
 * tools wait for it. Every git troupe runs is held by a `git` of the test's own, first on the
 * PATH, until the test lets it through: the request reaching the model while the snapshot
 * cannot have finished shows the request does not wait, and undo putting back the tree as it was
 * before the turn shows the tool that changed it waited for the snapshot. A turn that ran
 * nothing does not keep the session's close waiting for its snapshot.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import { initRepo } from '../support/git-repo.js';
import { waitFor } from '../support/wait.js';
import type { FakeModelServer } from '../../testing/index.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
let gate: string;
let gatedPath: string;

beforeEach(async () => {
  gate = await mkdtemp(join(tmpdir(), 'troupe-git-gate-'));
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  // troupe gives git a closed environment (PATH only), so the paths are written into the script.
  const script = ['#!/bin/sh', `echo "$*" >> '${gate}/calls'`, `while [ ! -e '${gate}/open' ]; do sleep 0.01; done`, `exec '${realGit}' "$@"`, ''].join('\n');
  await writeFile(join(gate, 'git'), script);
  await chmod(join(gate, 'git'), 0o755);
  gatedPath = `${gate}:${process.env.PATH ?? ''}`;
  ({ model, server, workspace } = await startE2E({ env: { PATH: gatedPath, TROUPE_LOG: 'debug' } }));
});

afterEach(async () => {
  await writeFile(join(gate, 'open'), '');
  await finishE2E({ model, server, workspace });
  await rm(gate, { recursive: true, force: true });
});

describe('the undo snapshot beside the first request', () => {
  it('the request goes out while the snapshot is held; the tool waits for it, and undo restores the tree before the turn', async () => {
    await initRepo(workspace, { 'app.js': 'export const answer = 41;\n' });
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'shell', call_id: 's', arguments: { command: ['sh', '-c', 'echo changed > app.js && echo made > created.txt'] } },
        ],
      },
      { kind: 'response', items: [{ type: 'message', text: 'changed things' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    const id = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'change the answer' }] }, session);

    // The first request reaches the model and its answer (the call) is delivered, with the
    // snapshot's first git still held: the request did not wait for the snapshot.
    await waitFor(() => model.requests[0]?.endedAt != null, 'the first model request to be answered');
    await waitFor(() => existsSync(join(gate, 'calls')), 'the snapshot to start git');
    // The call has reached its execution and waits there (the debug log says so); a call that
    // did not wait would have changed the tree under the held snapshot, which undo would show.
    await waitFor(() => server.stderr.includes('the call waits for the undo snapshot of its turn'), 'the call to wait for the snapshot');
    expect(server.events.some((e) => e.msg.type === 'exec_command_begin')).toBe(false);
    expect(await readFile(join(workspace, 'app.js'), 'utf8')).toBe('export const answer = 41;\n');

    await writeFile(join(gate, 'open'), '');
    await server.waitForMsg('task_complete', { session, id });
    expect(await readFile(join(workspace, 'app.js'), 'utf8')).toBe('changed\n');
    expect(model.requests).toHaveLength(2);

    const undo = server.submit({ type: 'undo' }, session);
    const done = await server.waitForMsg('undo_completed', { session, id: undo });
    expect(done.msg.success).toBe(true);
    expect(await readFile(join(workspace, 'app.js'), 'utf8')).toBe('export const answer = 41;\n');
    expect(existsSync(join(workspace, 'created.txt'))).toBe(false);
  });

  it('a turn that ran nothing does not hold the close, and undo after a resume goes back to before the last turn that ran something', async () => {
    await initRepo(workspace, { 'app.js': 'export const answer = 41;\n' });
    await writeFile(join(gate, 'open'), '');
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 's', arguments: { command: ['sh', '-c', 'echo changed > app.js'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'changed it' }] },
      { kind: 'response', items: [{ type: 'message', text: 'just an answer' }] },
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'change the answer');
    expect(await readFile(join(workspace, 'app.js'), 'utf8')).toBe('changed\n');

    // The second turn only answers; its snapshot is held at its first git through the close.
    await unlink(join(gate, 'open'));
    const gitCalls = async () => (await readFile(join(gate, 'calls'), 'utf8')).split('\n').length;
    const before = await gitCalls();
    await server.turn(session, 'what is the answer?');
    await waitFor(async () => (await gitCalls()) > before, "the second turn's snapshot to start git");
    server.submit({ type: 'shutdown' }, session);
    await server.waitForMsg('shutdown_complete', { session });
    expect(existsSync(join(gate, 'open'))).toBe(false);
    await writeFile(join(gate, 'open'), '');
    expect(await server.end()).toBe(0);
    const refs = execFileSync('git', ['for-each-ref', '--format=%(refname)', 'refs/troupe/ghost/'], { cwd: workspace, encoding: 'utf8' });
    expect(refs.trim().split('\n')).toEqual([`refs/troupe/ghost/${session}/1`]);

    const resumed = await AppServerProcess.start({ modelUrl: model.url, home: server.home, env: { PATH: gatedPath } });
    try {
      await resumed.waitForMsg('session_configured', { id: resumed.submit({ type: 'resume_session', session_id: session }) });
      const done = await resumed.waitForMsg('undo_completed', { session, id: resumed.submit({ type: 'undo' }, session) });
      expect(done.msg.success).toBe(true);
      expect(await readFile(join(workspace, 'app.js'), 'utf8')).toBe('export const answer = 41;\n');
    } finally {
      await resumed.dispose();
    }
  });
});
