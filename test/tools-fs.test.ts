import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import { EventMsg } from '../protocol/index.js';
import { readFileHandler, readFileLines } from '../actors/tools/handlers/read-file.js';
import { listDirectory, listDirHandler } from '../actors/tools/handlers/list-dir.js';
import { updatePlanHandler } from '../actors/tools/handlers/update-plan.js';
import type { RunPlan, ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';

const RUN_PLAN: RunPlan = { sandboxed: true, userApproved: false };

let dir: string;
beforeEach(async () => {
  dir = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-fs-')));
});
afterEach(async () => {
  await chmod(dir, 0o700).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

function makeContext(): { ctx: ToolContext; events: EventMsg[] } {
  const settings = settingsFromConfig({ cwd: dir }, { model: 'test-model', cwd: dir, base_instructions: '' });
  const events: EventMsg[] = [];
  const ctx: ToolContext = {
    sessionId: 'session-1',
    callId: 'call-1',
    turn: buildTurnContext(settings, 'turn-1', {}),
    signal: new AbortController().signal,
    resources: new TestResources(),
    emit: (msg) => events.push(EventMsg.parse(msg)),
  };
  return { ctx, events };
}

const numbered = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join('');

describe('read_file', () => {
  it('returns lines prefixed with their numbers', async () => {
    const file = path.join(dir, 'a.txt');
    await writeFile(file, 'alpha\nbeta\r\n\ngamma');
    const out = await readFileHandler.run({ file_path: file }, makeContext().ctx, RUN_PLAN);
    expect(out).toEqual({ text: 'L1: alpha\nL2: beta\nL3: \nL4: gamma', success: true });
  });

  it('pages with offset and limit', async () => {
    const file = path.join(dir, 'n.txt');
    await writeFile(file, numbered(10));
    expect((await readFileLines({ file_path: file, offset: 4, limit: 3 })).text).toBe('L4: line 4\nL5: line 5\nL6: line 6');
    expect((await readFileLines({ file_path: file, offset: 9 })).text).toBe('L9: line 9\nL10: line 10');
  });

  it('reads at most 2000 lines by default', async () => {
    const file = path.join(dir, 'big.txt');
    await writeFile(file, numbered(2500));
    const lines = (await readFileLines({ file_path: file })).text.split('\n');
    expect(lines).toHaveLength(2000);
    expect(lines.at(-1)).toBe('L2000: line 2000');
  });

  it('reads from the middle of a large file', async () => {
    const file = path.join(dir, 'large.txt');
    await writeFile(file, numbered(200_000));
    const out = await readFileLines({ file_path: file, offset: 150_000, limit: 2 });
    expect(out.text).toBe('L150000: line 150000\nL150001: line 150001');
  });

  it('says how many lines the file has when the offset is past its end', async () => {
    const file = path.join(dir, 'short.txt');
    await writeFile(file, numbered(3));
    const out = await readFileLines({ file_path: file, offset: 4 });
    expect(out.success).toBe(false);
    expect(out.text).toContain('the file has 3 lines');
    const empty = path.join(dir, 'empty.txt');
    await writeFile(empty, '');
    expect((await readFileLines({ file_path: empty })).text).toContain('the file has 0 lines');
  });

  it('cuts long lines at 500 characters without splitting a character', async () => {
    const file = path.join(dir, 'long.txt');
    // 499 ASCII characters, then emoji (two UTF-16 units each): the cap falls inside a pair.
    await writeFile(file, `${'a'.repeat(499)}${'😀'.repeat(10)}\nshort\n`);
    const out = await readFileLines({ file_path: file });
    const [first, second] = out.text.split('\n');
    expect(first).toBe(`L1: ${'a'.repeat(499)}`);
    expect(second).toBe('L2: short');
    const exact = path.join(dir, 'exact.txt');
    await writeFile(exact, `${'b'.repeat(500)}\n${'c'.repeat(5000)}\n`);
    const lines = (await readFileLines({ file_path: exact })).text.split('\n');
    expect(lines[0]).toBe(`L1: ${'b'.repeat(500)}`);
    expect(lines[1]).toBe(`L2: ${'c'.repeat(500)}`);
  });

  it('refuses relative paths, missing files, directories and binary files with an output, not an exception', async () => {
    const relative = await readFileLines({ file_path: 'a.txt' });
    expect(relative).toMatchObject({ success: false });
    expect(relative.text).toContain('absolute');

    const missing = await readFileLines({ file_path: path.join(dir, 'missing.txt') });
    expect(missing).toMatchObject({ success: false });
    expect(missing.text).toContain('no such file');

    const directory = await readFileLines({ file_path: dir });
    expect(directory).toMatchObject({ success: false });
    expect(directory.text).toContain('is a directory');

    const binary = path.join(dir, 'blob.bin');
    await writeFile(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0x01, 0x02]));
    const out = await readFileLines({ file_path: binary });
    expect(out).toMatchObject({ success: false });
    expect(out.text).toContain('binary');
  });

  it('reports an unreadable file', async () => {
    if (process.getuid?.() === 0) return; // root reads everything
    const file = path.join(dir, 'secret.txt');
    await writeFile(file, 'x\n');
    await chmod(file, 0o000);
    const out = await readFileLines({ file_path: file });
    expect(out).toMatchObject({ success: false });
    expect(out.text).toContain('permission denied');
  });
});

describe('list_dir', () => {
  beforeEach(async () => {
    await writeFile(path.join(dir, 'a.txt'), 'a');
    await mkdir(path.join(dir, 'b', 'd'), { recursive: true });
    await writeFile(path.join(dir, 'b', 'c.txt'), 'c');
    await writeFile(path.join(dir, 'b', 'd', 'e.txt'), 'e');
    await symlink(path.join(dir, 'b'), path.join(dir, 'link'));
    await mkdir(path.join(dir, 'z'));
  });

  it('lists two levels as an indented tree by default', async () => {
    const out = await listDirHandler.run({ dir_path: dir }, makeContext().ctx, RUN_PLAN);
    expect(out).toEqual({ text: [dir, 'a.txt', 'b/', '  c.txt', '  d/', 'link@', 'z/'].join('\n'), success: true });
  });

  it('descends to the requested depth and does not follow symlinks', async () => {
    const one = await listDirectory({ dir_path: dir, depth: 1 });
    expect(one.text).toBe([dir, 'a.txt', 'b/', 'link@', 'z/'].join('\n'));
    const three = await listDirectory({ dir_path: dir, depth: 3 });
    expect(three.text).toBe([dir, 'a.txt', 'b/', '  c.txt', '  d/', '    e.txt', 'link@', 'z/'].join('\n'));
  });

  it('paginates with offset and limit and says when more entries exist', async () => {
    const first = await listDirectory({ dir_path: dir, limit: 2 });
    expect(first.text).toBe([dir, 'a.txt', 'b/', '[4 more entries; continue with offset 3]'].join('\n'));
    const second = await listDirectory({ dir_path: dir, offset: 3, limit: 2 });
    expect(second.text).toBe([dir, '  c.txt', '  d/', '[2 more entries; continue with offset 5]'].join('\n'));
    const last = await listDirectory({ dir_path: dir, offset: 5, limit: 2 });
    expect(last.text).toBe([dir, 'link@', 'z/'].join('\n'));
  });

  it('pages through more than the default 25 entries', async () => {
    const many = path.join(dir, 'many');
    await mkdir(many);
    for (let i = 0; i < 30; i++) await writeFile(path.join(many, `f${String(i).padStart(2, '0')}`), '');
    const out = await listDirectory({ dir_path: many });
    const lines = out.text.split('\n');
    expect(lines).toHaveLength(27);
    expect(lines[25]).toBe('f24');
    expect(lines[26]).toBe('[5 more entries; continue with offset 26]');
  });

  it('errors on relative paths, files, missing directories and an offset past the end', async () => {
    expect(await listDirectory({ dir_path: 'b' })).toMatchObject({ success: false });
    const file = await listDirectory({ dir_path: path.join(dir, 'a.txt') });
    expect(file).toMatchObject({ success: false });
    expect(file.text).toContain('not a directory');
    const missing = await listDirectory({ dir_path: path.join(dir, 'nope') });
    expect(missing).toMatchObject({ success: false });
    expect(missing.text).toContain('no such directory');
    const past = await listDirectory({ dir_path: dir, offset: 50 });
    expect(past).toMatchObject({ success: false });
    expect(past.text).toContain('6 entries');
  });

  it('shows only the path for an empty directory', async () => {
    const out = await listDirectory({ dir_path: path.join(dir, 'z') });
    expect(out).toEqual({ text: path.join(dir, 'z'), success: true });
  });
});

describe('update_plan', () => {
  it('emits plan_update and answers "Plan updated"', async () => {
    const { ctx, events } = makeContext();
    const plan = [
      { step: 'read the code', status: 'completed' as const },
      { step: 'write the fix', status: 'in_progress' as const },
      { step: 'run the tests', status: 'pending' as const },
    ];
    const out = await updatePlanHandler.run({ explanation: 'found the bug', plan }, ctx, RUN_PLAN);
    expect(out).toEqual({ text: 'Plan updated', success: true });
    expect(events).toEqual([{ type: 'plan_update', explanation: 'found the bug', plan }]);

    await updatePlanHandler.run({ plan: [] }, ctx, RUN_PLAN);
    expect(events[1]).toEqual({ type: 'plan_update', plan: [] });
  });

  it('refuses a plan with two steps in progress and emits nothing', async () => {
    const { ctx, events } = makeContext();
    const out = await updatePlanHandler.run(
      {
        plan: [
          { step: 'a', status: 'in_progress' },
          { step: 'b', status: 'in_progress' },
        ],
      },
      ctx,
      RUN_PLAN,
    );
    expect(out.success).toBe(false);
    expect(out.text).toContain('At most one step');
    expect(events).toEqual([]);
  });

  it('validates statuses through its args schema', () => {
    expect(updatePlanHandler.args.safeParse({ plan: [{ step: 'a', status: 'done' }] }).success).toBe(false);
  });
});
