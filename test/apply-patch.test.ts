import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AskForApproval, EventMsg, FileChange, SandboxMode } from '../protocol/index.js';
import type { TurnContext } from '../machines/turn-context.js';
import { applyPatch, previewPatch, PatchApplyError } from '../actors/tools/patch/apply.js';
import { parsePatch, PatchParseError } from '../actors/tools/patch/parser.js';
import { TurnDiffTracker } from '../actors/tools/patch/turn-diff.js';
import { escapesCwd, isWithin, writableRoots } from '../lib/sandbox/paths.js';
import { applyPatchTool } from '../actors/tools/handlers/apply-patch.js';
import type { ApprovalMemory, ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-patch-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const at = (...parts: string[]): string => path.join(dir, ...parts);
const read = (...parts: string[]): Promise<string> => readFile(at(...parts), 'utf8');
const put = async (name: string, content: string): Promise<void> => {
  await mkdir(path.dirname(at(name)), { recursive: true });
  await writeFile(at(name), content);
};
const patch = (...body: string[]): string => ['*** Begin Patch', ...body, '*** End Patch'].join('\n');

describe('parser', () => {
  it('parses add, delete and update with move and hunks', () => {
    const ops = parsePatch(
      patch(
        '*** Add File: new.txt',
        '+one',
        '+two',
        '*** Delete File: gone.txt',
        '*** Update File: old.txt',
        '*** Move to: renamed.txt',
        '@@ def f():',
        ' keep',
        '-old',
        '+new',
        '*** End of File',
      ),
    );
    expect(ops).toEqual([
      { type: 'add', path: 'new.txt', content: 'one\ntwo\n' },
      { type: 'delete', path: 'gone.txt' },
      {
        type: 'update',
        path: 'old.txt',
        moveTo: 'renamed.txt',
        hunks: [
          {
            anchors: ['def f():'],
            lines: [
              { kind: 'context', text: 'keep' },
              { kind: 'remove', text: 'old' },
              { kind: 'add', text: 'new' },
            ],
            atEndOfFile: true,
            patchLine: 8,
          },
        ],
      },
    ]);
  });

  it('reports the line number and what was expected', () => {
    const bad = ['*** Begin Patch', '*** Update File: a.txt', '@@', ' ok', 'oops', '*** End Patch'].join('\n');
    expect(() => parsePatch(bad)).toThrowError(PatchParseError);
    try {
      parsePatch(bad);
    } catch (error) {
      expect((error as PatchParseError).line).toBe(5);
      expect((error as Error).message).toMatch(/line 5: expected a hunk line starting with ' '/);
      expect((error as Error).message).toContain('"oops"');
    }
    expect(() => parsePatch('*** Update File: a.txt\n*** End Patch')).toThrowError(/line 1: expected '\*\*\* Begin Patch'/);
    expect(() => parsePatch('*** Begin Patch\n*** Add File: a\n+x')).toThrowError(/line 3: expected '\*\*\* End Patch'/);
    expect(() => parsePatch(patch('*** Frobnicate: a'))).toThrowError(/line 2: expected a file header/);
    expect(() => parsePatch(patch('*** Update File: a.txt', '*** Delete File: b'))).toThrowError(/line 2: expected at least one hunk/);
    expect(() => parsePatch(patch('*** Update File: a.txt', '@@', ' a', 'x'))).toThrowError(/line 5/);
    expect(() => parsePatch(patch())).toThrowError(/changes no file/);
  });

  it('is lenient about whitespace on markers, heredocs and a first hunk without @@', () => {
    const text = [
      "apply_patch <<'EOF'",
      '  *** Begin Patch  ',
      '*** Update File: a.txt   ',
      ' x',
      '-y',
      '+z',
      '@@ -10,3 +10,3 @@',
      ' q',
      '',
      '*** End Patch\t',
      'EOF',
      '',
    ].join('\n');
    const ops = parsePatch(text);
    expect(ops).toHaveLength(1);
    const op = ops[0];
    expect(op?.type === 'update' && op.hunks.map((h) => h.anchors)).toEqual([[], []]);
    // A heredoc error still counts lines from the text as sent.
    expect(() => parsePatch('<<EOF\n*** Begin Patch\n*** Nope\n*** End Patch\nEOF')).toThrowError(/line 3/);
  });
});

describe('applyPatch', () => {
  it('adds, updates, deletes and moves files', async () => {
    await put('upd.txt', 'a\nb\nc\n');
    await put('del.txt', 'bye\n');
    await put('mv.txt', 'one\ntwo\n');
    await chmod(at('mv.txt'), 0o755);
    const result = await applyPatch(
      patch(
        '*** Add File: sub/dir/new.txt',
        '+hello',
        '*** Update File: upd.txt',
        '@@',
        ' a',
        '-b',
        '+B',
        ' c',
        '*** Delete File: del.txt',
        '*** Update File: mv.txt',
        '*** Move to: moved/mv2.txt',
        '@@',
        '-two',
        '+TWO',
      ),
      dir,
    );
    expect(await read('sub/dir/new.txt')).toBe('hello\n');
    expect(await read('upd.txt')).toBe('a\nB\nc\n');
    expect(existsSync(at('del.txt'))).toBe(false);
    expect(existsSync(at('mv.txt'))).toBe(false);
    expect(await read('moved/mv2.txt')).toBe('one\nTWO\n');
    expect((await stat(at('moved/mv2.txt'))).mode & 0o777).toBe(0o755);

    expect(result.added).toEqual([at('sub/dir/new.txt')]);
    expect(result.modified).toEqual([at('upd.txt'), at('moved/mv2.txt')]);
    expect(result.deleted).toEqual([at('del.txt')]);
    expect(result.changes[at('sub/dir/new.txt')]).toEqual({ type: 'add', content: 'hello\n' });
    expect(result.changes[at('del.txt')]).toEqual({ type: 'delete' });
    const upd = result.changes[at('upd.txt')];
    expect(upd?.type).toBe('update');
    expect(upd?.type === 'update' && upd.unified_diff).toContain('-b\n+B\n');
    const mv = result.changes[at('mv.txt')];
    expect(mv).toMatchObject({ type: 'update', move_path: at('moved/mv2.txt') });
    expect(mv?.type === 'update' && mv.unified_diff).toContain('-two\n+TWO\n');
    expect(result.before.get(at('upd.txt'))).toBe('a\nb\nc\n');
    expect(result.before.get(at('sub/dir/new.txt'))).toBeNull();
    expect(result.before.get(at('moved/mv2.txt'))).toBeNull();
    expect(result.before.get(at('mv.txt'))).toBe('one\ntwo\n');
  });

  it('accepts absolute paths and replaces a file that is added over', async () => {
    await put('exists.txt', 'old\n');
    const result = await applyPatch(patch(`*** Add File: ${at('exists.txt')}`, '+new'), '/');
    expect(await read('exists.txt')).toBe('new\n');
    expect(result.before.get(at('exists.txt'))).toBe('old\n');
  });

  it('applies several hunks in order, using @@ anchors to pick the place', async () => {
    await put('code.py', ['def a():', '    return 1', '', 'def b():', '    return 1', '', 'def c():', '    return 1', ''].join('\n'));
    await applyPatch(patch('*** Update File: code.py', '@@ def b():', '-    return 1', '+    return 2', '@@ def c():', '-    return 1', '+    return 3'), dir);
    expect(await read('code.py')).toBe(['def a():', '    return 1', '', 'def b():', '    return 2', '', 'def c():', '    return 3', ''].join('\n'));
  });

  it('narrows with consecutive @@ anchors and ignores unified-diff range headers', async () => {
    await put('k.py', ['class A:', '    def run(self):', '        pass', 'class B:', '    def run(self):', '        pass', ''].join('\n'));
    await applyPatch(patch('*** Update File: k.py', '@@ class B:', '@@     def run(self):', '-        pass', '+        return 1'), dir);
    expect(await read('k.py')).toContain('class B:\n    def run(self):\n        return 1\n');
    expect(await read('k.py')).toContain('class A:\n    def run(self):\n        pass\n');
    await applyPatch(patch('*** Update File: k.py', '@@ -1,2 +1,2 @@', '-class A:', '+class Z:'), dir);
    expect(await read('k.py')).toMatch(/^class Z:\n/);
  });

  it('inserts after the anchor when a hunk only adds lines', async () => {
    await put('list.txt', 'head\nitems:\ntail\n');
    await applyPatch(patch('*** Update File: list.txt', '@@ items:', '+new item'), dir);
    expect(await read('list.txt')).toBe('head\nitems:\nnew item\ntail\n');
  });

  it('anchors an End of File hunk at the end even when the lines occur earlier', async () => {
    await put('f.txt', 'x\nend\nmiddle\nx\nend\n');
    await applyPatch(patch('*** Update File: f.txt', '@@', ' x', '-end', '+END', '*** End of File'), dir);
    expect(await read('f.txt')).toBe('x\nend\nmiddle\nx\nEND\n');
  });

  it('matches context that differs only in whitespace', async () => {
    await put('ws.txt', 'alpha   \n    beta\ngamma\n');
    await applyPatch(patch('*** Update File: ws.txt', '@@', ' alpha', '-beta', '+BETA', ' gamma'), dir);
    expect(await read('ws.txt')).toBe('alpha   \nBETA\ngamma\n');
  });

  it('matches typographic punctuation written as ASCII', async () => {
    await put('u.txt', 'say \u201Chello\u201D \u2014 it\u2019s fine\nnext\n');
    await applyPatch(patch('*** Update File: u.txt', '@@', `-say "hello" - it's fine`, '+say hi', ' next'), dir);
    expect(await read('u.txt')).toBe('say hi\nnext\n');
  });

  it('keeps CRLF line endings', async () => {
    await put('win.txt', 'a\r\nb\r\n');
    await applyPatch(patch('*** Update File: win.txt', '@@', '-b', '+c'), dir);
    expect(await read('win.txt')).toBe('a\r\nc\r\n');
  });

  it('leaves every file untouched when a later hunk fails, naming the file and the lines', async () => {
    await put('first.txt', 'one\n');
    await put('second.txt', 'two\n');
    const text = patch(
      '*** Update File: first.txt',
      '@@',
      '-one',
      '+ONE',
      '*** Add File: added.txt',
      '+x',
      '*** Delete File: second.txt',
      '*** Update File: second.txt',
      '@@',
      '-not there',
      '+whatever',
    );
    const failure = await applyPatch(
      patch(
        '*** Update File: first.txt',
        '@@',
        '-one',
        '+ONE',
        '*** Add File: added.txt',
        '+x',
        '*** Update File: second.txt',
        '@@',
        '-not there',
        '+whatever',
      ),
      dir,
    ).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(PatchApplyError);
    expect((failure as Error).message).toContain('second.txt');
    expect((failure as Error).message).toContain('not there');
    expect(await read('first.txt')).toBe('one\n');
    expect(await read('second.txt')).toBe('two\n');
    expect(existsSync(at('added.txt'))).toBe(false);
    // Updating a file the same patch deleted is an error naming it.
    await expect(applyPatch(text, dir)).rejects.toThrowError(/cannot update second\.txt: the file does not exist/);
    expect(await read('first.txt')).toBe('one\n');
  });

  it('names a missing file', async () => {
    await expect(applyPatch(patch('*** Delete File: nope.txt'), dir)).rejects.toThrowError(/cannot delete nope\.txt/);
    await expect(applyPatch(patch('*** Update File: nope.txt', '@@', '-a', '+b'), dir)).rejects.toThrowError(/cannot update nope\.txt/);
  });

  it('restores what it already wrote when a write fails midway', async () => {
    await put('keep.txt', 'original\n');
    await put('blocker', 'a file, not a directory\n');
    const failure = await applyPatch(
      patch('*** Update File: keep.txt', '@@', '-original', '+changed', '*** Add File: fresh/new.txt', '+n', '*** Add File: blocker/x.txt', '+x'),
      dir,
    ).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(PatchApplyError);
    expect((failure as Error).message).toContain('blocker/x.txt');
    expect(await read('keep.txt')).toBe('original\n');
    expect(existsSync(at('fresh'))).toBe(false);
    expect(await read('blocker')).toBe('a file, not a directory\n');
  });

  it('does not write when the signal is already aborted', async () => {
    await put('a.txt', 'a\n');
    const controller = new AbortController();
    controller.abort();
    await expect(applyPatch(patch('*** Update File: a.txt', '@@', '-a', '+b'), dir, { signal: controller.signal })).rejects.toThrowError(/aborted/);
    expect(await read('a.txt')).toBe('a\n');
  });

  it('previews without touching the disk', async () => {
    await put('a.txt', 'a\n');
    const preview = await previewPatch(patch('*** Update File: a.txt', '*** Move to: b.txt', '@@', '-a', '+b', '*** Add File: c.txt', '+c'), dir);
    expect(Object.keys(preview.changes).sort()).toEqual([at('a.txt'), at('c.txt')]);
    expect(preview.changes[at('a.txt')]).toMatchObject({ type: 'update', move_path: at('b.txt') });
    expect(await read('a.txt')).toBe('a\n');
    expect(existsSync(at('b.txt'))).toBe(false);
    expect(existsSync(at('c.txt'))).toBe(false);
  });
});

describe('TurnDiffTracker', () => {
  it('diffs the first-seen content against the disk across patches, following moves', async () => {
    await put('same.txt', '1\n2\n3\n');
    await put('gone.txt', 'bye\n');
    await put('from.txt', 'move me\n');
    await put('back.txt', 'stable\n');
    const tracker = new TurnDiffTracker(dir);
    const run = async (text: string): Promise<void> => {
      const result = await applyPatch(text, dir);
      tracker.track(result.before, result.changes);
    };
    await run(patch('*** Update File: same.txt', '@@', '-1', '+one', '*** Update File: back.txt', '@@', '-stable', '+unstable'));
    await run(patch('*** Update File: same.txt', '@@', '-3', '+three', '*** Add File: new/file.txt', '+fresh'));
    await run(patch('*** Delete File: gone.txt', '*** Update File: from.txt', '*** Move to: to.txt', '@@', '-move me', '+moved'));
    await run(patch('*** Update File: back.txt', '@@', '-unstable', '+stable'));

    const diff = await tracker.unifiedDiff();
    expect(diff).toBe(
      [
        'diff --git a/gone.txt b/gone.txt',
        'deleted file mode 100644',
        '--- a/gone.txt',
        '+++ /dev/null',
        '@@ -1,1 +0,0 @@',
        '-bye',
        'diff --git a/new/file.txt b/new/file.txt',
        'new file mode 100644',
        '--- /dev/null',
        '+++ b/new/file.txt',
        '@@ -0,0 +1,1 @@',
        '+fresh',
        'diff --git a/same.txt b/same.txt',
        '--- a/same.txt',
        '+++ b/same.txt',
        '@@ -1,3 +1,3 @@',
        '-1',
        '+one',
        ' 2',
        '-3',
        '+three',
        'diff --git a/from.txt b/to.txt',
        'rename from from.txt',
        'rename to to.txt',
        '--- a/from.txt',
        '+++ b/to.txt',
        '@@ -1,1 +1,1 @@',
        '-move me',
        '+moved',
        '',
      ].join('\n'),
    );
  });

  it('follows a file moved twice and omits one added then deleted', async () => {
    await put('a.txt', 'x\n');
    const tracker = new TurnDiffTracker(dir);
    for (const text of [
      patch('*** Update File: a.txt', '*** Move to: b.txt', '@@', '-x', '+y'),
      patch('*** Update File: b.txt', '*** Move to: c.txt', '@@', '-y', '+x'),
      patch('*** Add File: tmp.txt', '+t'),
      patch('*** Delete File: tmp.txt'),
    ]) {
      const result = await applyPatch(text, dir);
      tracker.track(result.before, result.changes);
    }
    expect(await tracker.unifiedDiff()).toBe('diff --git a/a.txt b/c.txt\nrename from a.txt\nrename to c.txt\n');
  });
});

describe('sandbox paths', () => {
  const turnFor = (mode: SandboxMode, writable: string[] = []): TurnContext => makeTurn('/work/project', 'on-request', mode, writable);

  it('computes writable roots per sandbox mode', () => {
    expect(writableRoots(turnFor('danger-full-access'))).toBe('all');
    expect(writableRoots(turnFor('read-only'))).toBe('none');
    expect(writableRoots(turnFor('workspace-write', ['../shared', '/opt/cache']))).toEqual([
      '/work/project',
      '/work/shared',
      '/opt/cache',
      path.resolve(os.tmpdir()),
    ]);
  });

  it('tells inside from outside and catches .. escapes', () => {
    expect(isWithin('/a/b', '/a/b')).toBe(true);
    expect(isWithin('/a/b', '/a/b/c/d')).toBe(true);
    expect(isWithin('/a/b', '/a/bc')).toBe(false);
    expect(isWithin('/a/b', '/a')).toBe(false);
    expect(escapesCwd('/a/b', '../c')).toBe(true);
    expect(escapesCwd('/a/b', 'x/../../c')).toBe(true);
    expect(escapesCwd('/a/b', 'x/../y')).toBe(false);
    expect(escapesCwd('/a/b', '/etc/passwd')).toBe(false);
    expect(escapesCwd('/a/b', '/a/b/../../etc')).toBe(true);
    expect(escapesCwd('/a/b', '..foo/x')).toBe(false);
  });
});

describe('apply_patch handler', () => {
  const noApprovals: ApprovalMemory = { has: () => false };

  interface Harness {
    ctx: ToolContext;
    events: EventMsg[];
    tracked: Array<{ changes: Record<string, FileChange>; before: ReadonlyMap<string, string | null> }>;
    controller: AbortController;
  }
  const harness = (policy: AskForApproval, mode: SandboxMode, writable: string[] = []): Harness => {
    const events: EventMsg[] = [];
    const tracked: Harness['tracked'] = [];
    const controller = new AbortController();
    const ctx: ToolContext = {
      sessionId: 's1',
      callId: 'call-1',
      turn: makeTurn(dir, policy, mode, writable),
      signal: controller.signal,
      resources: new TestResources(),
      emit: (msg) => events.push(msg),
      trackChanges: (changes, before) => void tracked.push({ changes, before }),
    };
    return { ctx, events, tracked, controller };
  };
  const plan = (input: string, policy: AskForApproval, mode: SandboxMode, approvals = noApprovals, writable: string[] = []) =>
    applyPatchTool.plan?.({ input }, harness(policy, mode, writable).ctx, approvals);

  const inside = (): string => patch('*** Add File: inside.txt', '+x');
  // Outside the cwd and the temp dir; planning only reads, so it never needs to exist.
  const outsideDir = `/troupe-test-outside-${process.pid}`;
  const outside = (): string => patch(`*** Add File: ${path.join(outsideDir, 'out.txt')}`, '+x');

  it('rejects a patch that does not parse or apply, telling the model why', async () => {
    const parse = await plan('*** Begin Patch\n*** Bogus\n*** End Patch', 'on-request', 'workspace-write');
    expect(parse).toMatchObject({ kind: 'reject' });
    expect(parse?.kind === 'reject' && parse.reason).toMatch(/could not parse.*line 2/);
    await put('a.txt', 'a\n');
    const apply = await plan(patch('*** Update File: a.txt', '@@', '-zzz', '+b'), 'on-request', 'workspace-write');
    expect(apply?.kind === 'reject' && apply.reason).toMatch(/a\.txt[\s\S]*zzz/);
  });

  it('plans by approval policy and sandbox mode', async () => {
    const policies: AskForApproval[] = ['untrusted', 'on-failure', 'on-request', 'never'];
    const modes: SandboxMode[] = ['read-only', 'workspace-write', 'danger-full-access'];
    for (const policy of policies) {
      for (const mode of modes) {
        const forInside = await plan(inside(), policy, mode);
        const forOutside = await plan(outside(), policy, mode);
        const label = `${policy} × ${mode}`;
        if (policy === 'untrusted') {
          expect(forInside?.kind, label).toBe('ask');
          expect(forOutside?.kind, label).toBe('ask');
          continue;
        }
        if (mode === 'danger-full-access') {
          expect(forInside, label).toEqual({ kind: 'run', sandboxed: false });
          expect(forOutside, label).toEqual({ kind: 'run', sandboxed: false });
          continue;
        }
        const expectedInside = mode === 'read-only' ? (policy === 'never' ? 'reject' : 'ask') : 'run';
        const expectedOutside = policy === 'never' ? 'reject' : 'ask';
        expect(forInside?.kind, label).toBe(expectedInside);
        expect(forOutside?.kind, label).toBe(expectedOutside);
        if (forOutside?.kind === 'reject') {
          expect(forOutside.reason, label).toContain(path.join(outsideDir, 'out.txt'));
          expect(forOutside.reason, label).toMatch(/"never" forbids asking/);
        }
        if (forOutside?.kind === 'ask') expect(forOutside.request.reason, label).toContain(path.join(outsideDir, 'out.txt'));
      }
    }
  });

  it('builds the approval request from the preview and honours remembered approvals', async () => {
    await put('a.txt', 'a\n');
    const text = patch('*** Update File: a.txt', `*** Move to: ${path.join(outsideDir, 'b.txt')}`, '@@', '-a', '+b');
    const asked = await plan(text, 'on-request', 'workspace-write');
    expect(asked?.kind).toBe('ask');
    if (asked?.kind !== 'ask') return;
    expect(asked.sandboxedAfterApproval).toBe(true);
    expect(asked.approvalKey).toBe(`patch:${[at('a.txt'), path.join(outsideDir, 'b.txt')].sort().join('\n')}`);
    expect(asked.request).toMatchObject({ type: 'patch', changes: { [at('a.txt')]: { type: 'update', move_path: path.join(outsideDir, 'b.txt') } } });
    expect(asked.request.reason).toContain(path.join(outsideDir, 'b.txt'));
    const remembered: ApprovalMemory = { has: (key) => key === asked.approvalKey };
    // A remembered approval runs under its key, which the run checks the files against again.
    expect(await plan(text, 'on-request', 'workspace-write', remembered)).toEqual({ kind: 'run', sandboxed: true, approvedKey: asked.approvalKey });
    expect(await plan(text, 'untrusted', 'workspace-write', remembered)).toEqual({ kind: 'run', sandboxed: true, approvedKey: asked.approvalKey });
    // Nothing was written while planning.
    expect(await read('a.txt')).toBe('a\n');
  });

  it('treats configured writable roots as writable', async () => {
    expect(await plan(outside(), 'on-request', 'workspace-write', noApprovals, [outsideDir])).toEqual({ kind: 'run', sandboxed: true });
  });

  it('refuses a .. path that leaves the cwd, except with full access', async () => {
    const text = patch('*** Add File: ../escape.txt', '+x');
    for (const mode of ['read-only', 'workspace-write'] as const) {
      const planned = await plan(text, 'on-request', mode);
      expect(planned?.kind).toBe('reject');
      expect(planned?.kind === 'reject' && planned.reason).toContain('../escape.txt');
    }
    const moved = patch('*** Update File: a.txt', '*** Move to: sub/../../x.txt', '@@', '-a', '+b');
    const planned = await plan(moved, 'untrusted', 'workspace-write');
    expect(planned?.kind === 'reject' && planned.reason).toContain('sub/../../x.txt');
    expect((await plan(text, 'on-request', 'danger-full-access'))?.kind).toBe('run');
  });

  it('runs: emits begin and end, writes, tracks changes and summarizes', async () => {
    await put('m.txt', 'm\n');
    await put('d.txt', 'd\n');
    const h = harness('on-request', 'workspace-write');
    const output = await applyPatchTool.run(
      { input: patch('*** Add File: a.txt', '+a', '*** Update File: m.txt', '@@', '-m', '+M', '*** Delete File: d.txt') },
      h.ctx,
      { sandboxed: true, userApproved: false },
    );
    expect(output.success).toBe(true);
    expect(output.text).toContain('A a.txt');
    expect(output.text).toContain('M m.txt');
    expect(output.text).toContain('D d.txt');
    expect(await read('a.txt')).toBe('a\n');
    expect(h.events.map((e) => e.type)).toEqual(['patch_apply_begin', 'patch_apply_end']);
    const [begin, end] = h.events;
    expect(begin).toMatchObject({ type: 'patch_apply_begin', call_id: 'call-1', auto_approved: true });
    expect(begin?.type === 'patch_apply_begin' && Object.keys(begin.changes).sort()).toEqual([at('a.txt'), at('d.txt'), at('m.txt')]);
    expect(end).toEqual({ type: 'patch_apply_end', call_id: 'call-1', success: true, stdout: output.text, stderr: '' });
    expect(h.tracked).toHaveLength(1);
    expect(h.tracked[0]?.before.get(at('m.txt'))).toBe('m\n');
  });

  it('runs: reports a failure to the model and the client, and marks user-approved runs', async () => {
    await put('m.txt', 'm\n');
    const h = harness('untrusted', 'workspace-write');
    const output = await applyPatchTool.run({ input: patch('*** Update File: m.txt', '@@', '-nope', '+x') }, h.ctx, { sandboxed: true, userApproved: true });
    expect(output.success).toBe(false);
    expect(output.text).toMatch(/m\.txt[\s\S]*nope/);
    expect(h.events[0]).toMatchObject({ type: 'patch_apply_begin', auto_approved: false });
    expect(h.events[1]).toMatchObject({ type: 'patch_apply_end', success: false, stdout: '', stderr: output.text });
    expect(h.tracked).toHaveLength(0);
  });

  it('runs: writes nothing once the turn is aborted', async () => {
    const h = harness('on-request', 'workspace-write');
    h.controller.abort();
    const output = await applyPatchTool.run({ input: inside() }, h.ctx, { sandboxed: true, userApproved: false });
    expect(output.success).toBe(false);
    expect(existsSync(at('inside.txt'))).toBe(false);
  });
});

function makeTurn(cwd: string, approval_policy: AskForApproval, mode: SandboxMode, writable_roots: string[]): TurnContext {
  return {
    model: 'test-model',
    cwd,
    approval_policy,
    sandbox_policy: { mode, writable_roots, network_access: false },
    base_instructions: '',
    turn_id: 'turn-1',
  };
}
