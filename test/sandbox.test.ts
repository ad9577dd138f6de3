/**
 * The sandbox against real bubblewrap: what a confined command can and cannot do, and the
 * escape attempts it must stop. Skipped, with the reason printed, where bwrap cannot run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, symlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import { EventMsg, type AskForApproval, type SandboxPolicy } from '../protocol/index.js';
import { planApplyPatch } from '../actors/tools/handlers/apply-patch.js';
import { planShell, runShell } from '../actors/tools/handlers/shell.js';
import {
  bubblewrapArgs,
  confineCommand,
  detectSandbox,
  isLikelySandboxDenial,
  sandboxSpecFor,
  seatbeltCommand,
  seatbeltProfile,
  type SandboxSpec,
} from '../lib/sandbox/index.js';
import { checkWritable } from '../lib/sandbox/writable.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';
import { processesMatching } from './support/processes.js';
import { waitFor } from './support/wait.js';

const availability = await detectSandbox();
if (!availability.ok) console.warn(`[sandbox tests] skipping the bubblewrap tests: ${availability.reason}`);
const bwrapWorks = availability.ok && availability.backend.kind === 'bubblewrap';

function makeContext(cwd: string, sandbox: SandboxPolicy, policy: AskForApproval = 'never'): { ctx: ToolContext; events: EventMsg[] } {
  const settings = settingsFromConfig({ cwd, approval_policy: policy, sandbox_policy: sandbox }, { model: 'm', cwd, base_instructions: '' });
  const events: EventMsg[] = [];
  const ctx: ToolContext = {
    sessionId: 's',
    callId: 'c',
    turn: buildTurnContext(settings, 't', {}),
    signal: new AbortController().signal,
    resources: new TestResources(),
    emit: (msg) => events.push(EventMsg.parse(msg)),
  };
  return { ctx, events };
}

const SANDBOXED = { sandboxed: true, userApproved: false } as const;
const noApprovals = { has: () => false };

let workspace: string;
/** Outside every writable root: not under the workspace nor the temp directory. */
let outside: string;
beforeEach(async () => {
  workspace = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-sbx-')));
  await mkdir('/var/tmp', { recursive: true });
  outside = realpathSync(await mkdtemp('/var/tmp/troupe-outside-'));
});
afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function sh(script: string, cwd: string, sandbox: SandboxPolicy, policy: AskForApproval = 'never', timeoutMs?: number) {
  const { ctx } = makeContext(cwd, sandbox, policy);
  return runShell({ command: ['sh', '-c', script], ...(timeoutMs ? { timeout_ms: timeoutMs } : {}) }, ctx, SANDBOXED);
}

describe.skipIf(!bwrapWorks)('bubblewrap confinement', () => {
  it('workspace-write: a write inside the workspace succeeds, one outside fails and leaves no file', async () => {
    const out = await sh(`echo in > inside.txt && echo out > ${outside}/escaped.txt`, workspace, 'workspace-write');
    expect(out.success).toBe(false);
    expect(out.text).toMatch(/Read-only file system/);
    expect(await readFile(path.join(workspace, 'inside.txt'), 'utf8')).toBe('in\n');
    expect(existsSync(path.join(outside, 'escaped.txt'))).toBe(false);
  });

  it('workspace-write: configured writable roots are writable too', async () => {
    const out = await sh(`echo ok > ${outside}/allowed.txt`, workspace, { mode: 'workspace-write', writable_roots: [outside] });
    expect(out.success).toBe(true);
    expect(await readFile(path.join(outside, 'allowed.txt'), 'utf8')).toBe('ok\n');
  });

  it('read-only: even the working directory cannot be written', async () => {
    const out = await sh('echo x > file.txt', workspace, 'read-only');
    expect(out.success).toBe(false);
    expect(out.text).toMatch(/Read-only file system/);
    expect(existsSync(path.join(workspace, 'file.txt'))).toBe(false);
    // Reading still works.
    await writeFile(path.join(workspace, 'r.txt'), 'readable');
    expect((await sh('cat r.txt', workspace, 'read-only')).text).toContain('readable');
  });

  it('.git and .troupe inside the workspace stay read-only', async () => {
    await mkdir(path.join(workspace, '.git'));
    await mkdir(path.join(workspace, '.troupe'));
    await writeFile(path.join(workspace, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    const out = await sh('echo evil > .git/HEAD; echo hook > .git/hook; echo x > .troupe/rules.json; echo fine > src.txt', workspace, 'workspace-write');
    expect(out.text).toMatch(/Read-only file system/);
    expect(await readFile(path.join(workspace, '.git', 'HEAD'), 'utf8')).toBe('ref: refs/heads/main\n');
    expect(existsSync(path.join(workspace, '.git', 'hook'))).toBe(false);
    expect(existsSync(path.join(workspace, '.troupe', 'rules.json'))).toBe(false);
    expect(await readFile(path.join(workspace, 'src.txt'), 'utf8')).toBe('fine\n');
  });

  it('runs a command whose read-only path is gone by the time it starts (another session closed and removed its snapshot)', async () => {
    const gone = path.join(workspace, 'soon-gone');
    await mkdir(gone);
    const { ctx } = makeContext(workspace, 'workspace-write', 'never');
    const confined = await confineCommand(['sh', '-c', 'echo ran > ran.txt'], ctx.turn, {
      sandboxed: true,
      tty: false,
      home: path.join(workspace, '.home'),
      readOnly: [gone],
    });
    await rm(gone, { recursive: true });
    const run = spawnSync(confined.argv[0]!, confined.argv.slice(1), { cwd: workspace, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(await readFile(path.join(workspace, 'ran.txt'), 'utf8')).toBe('ran\n');
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    beforeEach(async () => {
      server = createServer((socket) => socket.end('hello from the host\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterEach(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    const connect = (p: number) =>
      `node -e "require('net').connect(${p}, '127.0.0.1').on('data', d => { process.stdout.write(d); process.exit(0) }).on('error', e => { console.error(e.message); process.exit(3) })"`;

    it('without network_access, a loopback listener on the host cannot be reached', async () => {
      const out = await sh(connect(port), workspace, 'workspace-write');
      expect(out.success).toBe(false);
      expect(out.text).toMatch(/ECONNREFUSED|ENETUNREACH/);
      expect(out.text).not.toContain('hello from the host');
    });

    it('with network_access, it can', async () => {
      const out = await sh(connect(port), workspace, { mode: 'workspace-write', network_access: true });
      expect(out.text).toContain('hello from the host');
      expect(out.success).toBe(true);
    });
  });

  describe('escape attempts', () => {
    it('a symlink inside the workspace does not lead out of it', async () => {
      symlinkSync(outside, path.join(workspace, 'link'));
      const out = await sh('echo x > link/through-link.txt', workspace, 'workspace-write');
      expect(out.success).toBe(false);
      expect(existsSync(path.join(outside, 'through-link.txt'))).toBe(false);
    });

    it('writing through /proc/self/root and /proc/1/root reaches the same read-only view', async () => {
      const out = await sh(
        `echo a > /proc/self/root${outside}/a.txt; echo b > /proc/1/root${outside}/b.txt; ls /proc | grep -c '^[0-9]'`,
        workspace,
        'workspace-write',
      );
      expect(out.text).toMatch(/Read-only file system/);
      expect(existsSync(path.join(outside, 'a.txt'))).toBe(false);
      expect(existsSync(path.join(outside, 'b.txt'))).toBe(false);
      // Its own PID namespace: only a handful of processes are visible, not the host's.
      const visible = Number(/Output:\n(?:.*\n)*?(\d+)\n?$/.exec(out.text)?.[1]);
      expect(visible).toBeLessThan(10);
    });

    it('cannot remount the file system writable, even as root', async () => {
      const out = await sh(`mount -o remount,rw / 2>&1; mount -o remount,rw ${outside} 2>&1; echo x > ${outside}/m.txt`, workspace, 'workspace-write');
      expect(out.success).toBe(false);
      expect(existsSync(path.join(outside, 'm.txt'))).toBe(false);
    });

    it('a process-spawning loop is ended by the timeout, and nothing it started survives', async () => {
      const marker = `troupe-bomb-${process.pid}-${Date.now()}`;
      // A duration no other process will have (other test files run beside this one).
      const sleep = `sleep 300.${process.pid}${Date.now() % 10_000}`;
      const out = await sh(`while true; do ${sleep} & done; : ${marker}`, workspace, 'workspace-write', 'never', 1500);
      // Ended by the timeout, or earlier by the sandbox's process limit (max_processes) when the
      // loop forks that many first: either way, nothing it started may survive.
      expect(out.text).toMatch(/^Exit code: 124|Cannot fork|Resource temporarily unavailable/);
      await waitFor(() => processesMatching(sleep).length === 0 && processesMatching(marker).length === 0, 'the loop and its children to die');
    });
  });
});

describe('apply_patch and the writable roots', () => {
  const add = (file: string) => `*** Begin Patch\n*** Add File: ${file}\n+x\n*** End Patch`;

  it('refuses .. paths that leave the working directory', async () => {
    const { ctx } = makeContext(workspace, 'workspace-write', 'on-request');
    const plan = await planApplyPatch({ input: add('../escape.txt') }, ctx, noApprovals);
    expect(plan.kind).toBe('reject');
  });

  it('a path through a symlink that points outside needs approval, and is refused under never', async () => {
    symlinkSync(outside, path.join(workspace, 'link'));
    const onRequest = await planApplyPatch({ input: add('link/new.txt') }, makeContext(workspace, 'workspace-write', 'on-request').ctx, noApprovals);
    expect(onRequest).toMatchObject({
      kind: 'ask',
      request: { type: 'patch', reason: expect.stringContaining('outside the writable roots') },
    });
    const never = await planApplyPatch({ input: add('link/new.txt') }, makeContext(workspace, 'workspace-write', 'never').ctx, noApprovals);
    expect(never.kind).toBe('reject');
  });

  it('a dangling symlink is judged by where a write through it would land', () => {
    symlinkSync(path.join(outside, 'not-yet.txt'), path.join(workspace, 'dangling'));
    const verdict = checkWritable(makeContext(workspace, 'workspace-write').ctx.turn, path.join(workspace, 'dangling'));
    expect(verdict.ok).toBe(false);
  });

  it('files under .git need approval; ordinary files do not', async () => {
    const { ctx } = makeContext(workspace, 'workspace-write', 'on-request');
    expect((await planApplyPatch({ input: add('.git/hooks/pre-commit') }, ctx, noApprovals)).kind).toBe('ask');
    expect(await planApplyPatch({ input: add('src/ok.txt') }, ctx, noApprovals)).toEqual({ kind: 'run', sandboxed: true });
  });
});

describe('sandbox specs and backends', () => {
  it('workspace-write binds the real paths of cwd, extra roots and tmp, and protects .git', async () => {
    await mkdir(path.join(workspace, '.git'));
    const spec = sandboxSpecFor(makeContext(workspace, { mode: 'workspace-write', writable_roots: [outside] }).ctx.turn)!;
    expect(spec.writableRoots).toEqual(expect.arrayContaining([workspace, outside, realpathSync(tmpdir())]));
    expect(spec.readOnlyPaths).toEqual([path.join(workspace, '.git')]);
    expect(spec.networkAccess).toBe(false);
    expect(sandboxSpecFor(makeContext(workspace, 'danger-full-access').ctx.turn)).toBeUndefined();
    expect(sandboxSpecFor(makeContext(workspace, 'read-only').ctx.turn)).toMatchObject({ writableRoots: [], readOnlyPaths: [] });
  });

  const spec: SandboxSpec = {
    mode: 'workspace-write',
    writableRoots: ['/work/repo', '/tmp'],
    readOnlyPaths: ['/work/repo/.git'],
    protectedSpots: [],
    networkAccess: false,
    cwd: '/work/repo',
    limits: { maxProcesses: 64, maxFileSizeBytes: 1_000_000 },
  };

  it('bubblewrap: read-only root, writable binds, protected re-binds, no network, own pid namespace', () => {
    const args = bubblewrapArgs(spec, ['ls', '-la'], { newSession: true, isRoot: true, prlimit: '/usr/bin/prlimit' });
    const joined = args.join(' ');
    expect(joined).toContain(
      '--ro-bind / / --dev /dev --proc /proc --bind /work/repo /work/repo --bind /tmp /tmp --ro-bind-try /work/repo/.git /work/repo/.git',
    );
    expect(args).toEqual(expect.arrayContaining(['--unshare-net', '--unshare-pid', '--die-with-parent', '--new-session']));
    expect(joined).toContain('--cap-drop ALL');
    expect(args.slice(-9)).toEqual(['--chdir', '/work/repo', '--', '/usr/bin/prlimit', '--nproc=64', '--fsize=1000000', '--', 'ls', '-la']);
    const withNet = bubblewrapArgs({ ...spec, networkAccess: true }, ['true'], { newSession: false, isRoot: false, prlimit: 'prlimit' });
    expect(withNet).not.toContain('--unshare-net');
    expect(withNet).not.toContain('--new-session');
    expect(withNet).not.toContain('--cap-drop');
  });

  it('seatbelt: denies by default, writes only under parameterised roots minus protected paths', () => {
    const { profile, params } = seatbeltProfile(spec);
    expect(profile.startsWith('(version 1)\n(deny default)\n')).toBe(true);
    expect(profile).toContain('(allow file-read*)');
    expect(profile).toContain('(require-all (subpath (param "WRITABLE_ROOT_0")) (require-not (subpath (param "WRITABLE_ROOT_0_RO_0"))))');
    expect(profile).toContain('(subpath (param "WRITABLE_ROOT_1"))');
    expect(profile).not.toContain('network-outbound');
    expect(params).toEqual({ WRITABLE_ROOT_0: '/work/repo', WRITABLE_ROOT_0_RO_0: '/work/repo/.git', WRITABLE_ROOT_1: '/tmp' });
    // Paths never appear in the profile text: a quote in a directory name cannot change it.
    expect(profile).not.toContain('/work/repo');
    expect(seatbeltProfile({ ...spec, networkAccess: true }).profile).toContain('(allow network-outbound)');
    expect(seatbeltProfile({ ...spec, mode: 'read-only', writableRoots: [], readOnlyPaths: [] }).profile).not.toContain('file-write*');
    const argv = seatbeltCommand(spec, ['make']);
    expect(argv.slice(0, 2)).toEqual(['/usr/bin/sandbox-exec', '-p']);
    expect(argv).toEqual(expect.arrayContaining(['-D', 'WRITABLE_ROOT_0=/work/repo']));
    expect(argv.slice(-6)).toEqual(['--', '/bin/sh', '-c', 'ulimit -f "$0" && exec "$@"', '1953', 'make']);
  });

  it('seatbelt: refuses to create a protected name that does not exist yet, in a root and on the way to cwd', () => {
    const spots = ['/work/repo/.git', '/work/repo/.troupe', '/work/repo/sub/.git', '/work/repo/sub/.troupe'];
    const { profile, params } = seatbeltProfile({ ...spec, readOnlyPaths: [], protectedSpots: spots, cwd: '/work/repo/sub' });
    const excluded = Object.entries(params).filter(([name]) => name.startsWith('WRITABLE_ROOT_0_RO_'));
    expect(excluded.map(([, value]) => value).sort()).toEqual([...spots].sort());
    for (const [name] of excluded) expect(profile).toContain(`(require-not (subpath (param "${name}")))`);
  });

  it('detection reports no backend on a platform without one, and when disabled', async () => {
    expect(await detectSandbox({ PATH: '' }, 'win32')).toMatchObject({ ok: false, reason: expect.stringContaining('win32') });
    expect(await detectSandbox({ TROUPE_SANDBOX_BACKEND: 'none', PATH: process.env.PATH ?? '' })).toMatchObject({ ok: false });
    expect(await detectSandbox({ PATH: '/nonexistent' }, 'linux').then((a) => a.ok || a.reason)).toSatisfy(
      (r: true | string) => r === true || /not installed|cannot create/.test(r),
    );
  });

  it('without a backend, sandboxed policies refuse with how to install one; danger-full-access still runs', async () => {
    const saved = process.env.TROUPE_SANDBOX_BACKEND;
    process.env.TROUPE_SANDBOX_BACKEND = 'none';
    try {
      const plan = await planShell({ command: ['touch', 'x'] }, makeContext(workspace, 'workspace-write', 'on-request').ctx, noApprovals);
      expect(plan.kind).toBe('reject');
      if (plan.kind === 'reject') expect(plan.reason).toMatch(/apt-get install bubblewrap[\s\S]*danger-full-access/);
      const run = await runShell({ command: ['touch', 'x'] }, makeContext(workspace, 'workspace-write').ctx, SANDBOXED);
      expect(run.success).toBe(false);
      expect(existsSync(path.join(workspace, 'x'))).toBe(false);
      expect(await planShell({ command: ['touch', 'x'] }, makeContext(workspace, 'danger-full-access', 'on-request').ctx, noApprovals)).toEqual({
        kind: 'run',
        sandboxed: false,
      });
    } finally {
      if (saved === undefined) delete process.env.TROUPE_SANDBOX_BACKEND;
      else process.env.TROUPE_SANDBOX_BACKEND = saved;
    }
  });

  it('recognises sandbox denials in output, and not ordinary failures', () => {
    const off = { networkAccess: false };
    expect(isLikelySandboxDenial({ exitCode: 1, output: "touch: cannot touch '/x': Read-only file system" }, off)).toBe(true);
    expect(isLikelySandboxDenial({ exitCode: 1, output: 'Permission denied' }, off)).toBe(true);
    expect(isLikelySandboxDenial({ exitCode: 7, output: "curl: (7) Couldn't connect to server" }, off)).toBe(true);
    expect(isLikelySandboxDenial({ exitCode: 7, output: "curl: (7) Couldn't connect to server" }, { networkAccess: true })).toBe(false);
    expect(isLikelySandboxDenial({ exitCode: 0, output: 'Permission denied' }, off)).toBe(false);
    expect(isLikelySandboxDenial({ exitCode: 1, output: 'test failed: expected 2' }, off)).toBe(false);
    expect(isLikelySandboxDenial({ exitCode: 124, output: 'Permission denied', timedOut: true }, off)).toBe(false);
    expect(isLikelySandboxDenial({ exitCode: 127, output: 'command not found' }, off)).toBe(false);
  });
});
