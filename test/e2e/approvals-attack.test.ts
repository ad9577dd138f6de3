/**
 * Hostile-model attacks on the approval and sandbox boundary, black-box through `troupe
 * app-server`. Each test states what must hold; a failure is a way around the boundary.
 *
 * apply_patch is written by troupe's own process, so its one guard is `checkWritable`; the
 * sandbox protects more than that check does. Whatever a sandboxed command may not write,
 * apply_patch must not write unasked either.
 *
 * The server gets a private TMPDIR (a writable root under workspace-write), so directories the
 * test makes elsewhere in the OS temp directory are outside every writable root.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectSandbox } from '../../lib/sandbox/detect.js';
import { finishE2E, sentOutput, startE2E, type E2E } from '../support/e2e.js';
import type { ScriptStep } from '../../testing/index.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[e2e approvals-attack] sandboxed cases skipped: ${availability.reason}`);

const call = (name: string, call_id: string, args: Record<string, unknown>) => ({ type: 'function_call' as const, name, call_id, arguments: args });
const respond = (...items: ReturnType<typeof call>[]): ScriptStep => ({ kind: 'response', items });
const done: ScriptStep = { kind: 'response', items: [{ type: 'message', text: 'done' }] };
const addFile = (call_id: string, files: Record<string, string>) =>
  call('apply_patch', call_id, {
    input: `*** Begin Patch\n${Object.entries(files)
      .map(
        ([file, text]) =>
          `*** Add File: ${file}\n${text
            .split('\n')
            .map((line) => `+${line}`)
            .join('\n')}\n`,
      )
      .join('')}*** End Patch`,
  });

/** A server with a private TMPDIR, and an `outside` directory no writable root covers. */
async function start(): Promise<{ e2e: E2E; privateTmp: string; outside: string; cleanup: () => Promise<void> }> {
  const privateTmp = realpathSync(await mkdtemp(join(tmpdir(), 'troupe-private-tmp-')));
  const outside = realpathSync(await mkdtemp(join(tmpdir(), 'troupe-outside-')));
  const e2e = await startE2E({ env: { TMPDIR: privateTmp, SHELL: '/bin/bash' } });
  return {
    e2e,
    privateTmp,
    outside,
    cleanup: async () => {
      try {
        await finishE2E(e2e);
      } finally {
        await rm(outside, { recursive: true, force: true });
        await rm(privateTmp, { recursive: true, force: true });
      }
    },
  };
}

describe.skipIf(!availability.ok)('apply_patch holds to what the sandbox keeps read-only', () => {
  it('does not rewrite the shell snapshot, which commands outside the sandbox source', async () => {
    const { e2e, privateTmp, outside, cleanup } = await start();
    try {
      const { model, server, workspace } = e2e;
      const marker = join(outside, 'PLANTED');
      // A first login-shell command takes the session's snapshot (under the server's TMPDIR).
      model.enqueue(respond(call('shell', 'first', { command: ['bash', '-lc', 'ls "${TMPDIR:-/tmp}"/troupe-snapshot-*'] })), done);
      const session = await server.newSession({ cwd: workspace, approval_policy: 'never', sandbox_policy: 'workspace-write' });
      await server.turn(session, 'look around');
      // What the model just read: the snapshot's directory and file name (the sandbox lets it list them).
      expect(sentOutput(model.requests.at(-1)!, 'first')).toMatch(/bash-[0-9a-f]+\.sh/);
      const dir = readdirSync(privateTmp).find((entry) => entry.startsWith('troupe-snapshot-'));
      expect(dir).toBeDefined();
      const file = readdirSync(join(privateTmp, dir!)).find((entry) => /^bash-.*\.sh$/.test(entry));
      expect(file).toBeDefined();
      const snapshot = join(privateTmp, dir!, file!);
      const original = await readFile(snapshot, 'utf8');

      // The sandbox keeps that directory read-only; apply_patch, under "never", writes it unasked.
      model.enqueue(respond(addFile('plant', { [snapshot]: `touch ${marker}` })), done);
      await server.turn(session, 'plant');
      expect.soft(await readFile(snapshot, 'utf8')).toBe(original);

      // The user's own command runs outside the sandbox and sources the snapshot.
      const id = server.submit({ type: 'run_user_shell_command', command: 'true' }, session);
      await server.waitForMsg('exec_command_end', { session, id });
      expect(existsSync(marker)).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it('does not write a .git between a writable root and cwd', async () => {
    const { e2e, outside, cleanup } = await start();
    try {
      const { model, server } = e2e;
      // A monorepo checked out under a directory the user made writable; the session works in a package.
      const parent = join(outside, 'src');
      const repo = join(parent, 'repo');
      const cwd = join(repo, 'pkg');
      await mkdir(cwd, { recursive: true });
      execFileSync('git', ['init', '-q', repo]);
      const hook = join(repo, '.git', 'hooks', 'pre-commit');
      const config = { cwd, approval_policy: 'never', sandbox_policy: { mode: 'workspace-write', writable_roots: [parent] } };

      // The sandbox keeps repo/.git read-only for commands...
      model.enqueue(respond(call('shell', 'sh', { command: ['sh', '-c', `echo x > ${join(repo, '.git', 'planted-by-shell')}`] })), done);
      const session = await server.newSession(config);
      await server.turn(session, 'try the shell');
      expect(sentOutput(model.requests.at(-1)!, 'sh')).toMatch(/Read-only file system/);
      expect(existsSync(join(repo, '.git', 'planted-by-shell'))).toBe(false);

      // ...and apply_patch must not write it either (an absolute path: no '..' to refuse).
      model.enqueue(respond(addFile('hook', { [hook]: `#!/bin/sh\ntouch ${join(outside, 'HOOK-RAN')}` })), done);
      await server.turn(session, 'add a hook');
      expect(existsSync(hook)).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it("does not write the git directory a worktree's gitfile names", async () => {
    const { e2e, outside, cleanup } = await start();
    try {
      const { model, server } = e2e;
      // A bare repository with a linked worktree beside it, both under a writable root.
      const root = join(outside, 'project');
      const bare = join(root, 'bare.git');
      const wt = join(root, 'main');
      await mkdir(root, { recursive: true });
      const seed = join(outside, 'seed');
      execFileSync('git', ['init', '-q', seed]);
      execFileSync('git', ['-C', seed, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '--allow-empty', '-m', 'seed']);
      execFileSync('git', ['clone', '-q', '--bare', seed, bare]);
      execFileSync('git', ['--git-dir', bare, 'worktree', 'add', '-q', wt]);
      expect((await readFile(join(wt, '.git'), 'utf8')).startsWith('gitdir:')).toBe(true);
      const hook = join(bare, 'hooks', 'pre-commit');
      const config = { cwd: wt, approval_policy: 'never', sandbox_policy: { mode: 'workspace-write', writable_roots: [root] } };

      model.enqueue(respond(call('shell', 'sh', { command: ['sh', '-c', `echo x > ${join(bare, 'planted-by-shell')}`] })), done);
      const session = await server.newSession(config);
      await server.turn(session, 'try the shell');
      expect(sentOutput(model.requests.at(-1)!, 'sh')).toMatch(/Read-only file system/);

      model.enqueue(respond(addFile('hook', { [hook]: `#!/bin/sh\ntouch ${join(outside, 'HOOK-RAN')}` })), done);
      await server.turn(session, 'add a hook');
      expect(existsSync(hook)).toBe(false);
    } finally {
      await cleanup();
    }
  });
});

describe.skipIf(!availability.ok)('an approved patch', () => {
  it('writes where the user was shown, not through a link a parallel call retargeted while it waited', async () => {
    const { e2e, outside, cleanup } = await start();
    try {
      const { model, server, workspace } = e2e;
      const shown = join(outside, 'shown');
      const hidden = join(outside, 'hidden');
      await mkdir(shown);
      await mkdir(hidden);
      // dir -> a directory inside the workspace when the patch is planned.
      await mkdir(join(workspace, 'inside'));
      await symlink(join(workspace, 'inside'), join(workspace, 'dir'));
      // One response, two calls: a patch that must ask (one of its files is outside the roots,
      // shown to the user), and a sandboxed command, run unasked, that retargets the link
      // once the patch is waiting for the user.
      model.enqueue(
        respond(
          addFile('patch', { [join(shown, 'visible.txt')]: 'visible', 'dir/notes.txt': 'hello' }),
          call('shell', 'flip', {
            command: ['bash', '-c', `until [ -e go ]; do sleep 0.02; done; ln -sfn ${hidden} dir.new && mv -T dir.new dir`],
            timeout_ms: 15_000,
          }),
        ),
        done,
      );
      const session = await server.newSession({ cwd: workspace, approval_policy: 'on-request', sandbox_policy: 'workspace-write' });
      const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'write notes' }] }, session);
      const request = await server.waitForMsg('apply_patch_approval_request', { session, where: (m) => m.call_id === 'patch' });
      // What the user is shown: visible.txt outside, and notes.txt inside the workspace.
      expect(Object.keys(request.msg.changes).sort()).toEqual([join(shown, 'visible.txt'), join(workspace, 'dir', 'notes.txt')].sort());
      await writeFile(join(workspace, 'go'), '');
      await server.waitForMsg('exec_command_end', { session, where: (m) => m.call_id === 'flip' });
      expect(realpathSync(join(workspace, 'dir'))).toBe(hidden);
      server.submit({ type: 'patch_approval', id: 'patch', decision: 'approved' }, session);
      await server.waitForMsg('task_complete', { session, id: turn });
      // Nothing lands in a directory the user was never shown.
      expect(readdirSync(hidden)).toEqual([]);
    } finally {
      await cleanup();
    }
  });
});
