/**
 * troupe's own git (undo snapshots, restore, review targets) against a hostile repository:
 * every way a repository's config, attributes, hooks or the environment can name a program,
 * planted before the session by the test and from inside a sandboxed command by "the model".
 * The planted program appends to a marker file outside every writable root; it must never
 * exist. Undo must still put the tree back.
 */
import { existsSync, realpathSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { listSnapshots, restoreSnapshot, takeSnapshot } from '../lib/git/index.js';
import { resolveReviewTarget } from '../actors/tasks/review/target.js';
import { detectSandbox } from '../lib/sandbox/index.js';
import { runShell } from '../actors/tools/handlers/shell.js';
import { makeToolContext } from './support/tool-context.js';

const availability = await detectSandbox();
const bwrapWorks = availability.ok && availability.backend.kind === 'bubblewrap';

/** Every hook name git knows of, as of 2.47. */
const HOOKS = [
  'applypatch-msg',
  'pre-applypatch',
  'post-applypatch',
  'pre-commit',
  'pre-merge-commit',
  'prepare-commit-msg',
  'commit-msg',
  'post-commit',
  'pre-rebase',
  'post-checkout',
  'post-merge',
  'pre-push',
  'pre-receive',
  'update',
  'proc-receive',
  'post-receive',
  'post-update',
  'reference-transaction',
  'push-to-checkout',
  'pre-auto-gc',
  'post-rewrite',
  'sendemail-validate',
  'fsmonitor-watchman',
  'post-index-change',
];

/**
 * Ways to plant a program, as POSIX shell run in the repository root, so the same text plants
 * from the host and from inside the sandbox. `$PROG` is the program's path.
 */
const MECHANISMS: Record<string, string> = {
  fsmonitor: 'git config core.fsmonitor "$PROG"',
  'hooks in .git/hooks': `for h in ${HOOKS.join(' ')}; do printf '#!/bin/sh\\nexec %s "$@"\\n' "$PROG" > .git/hooks/$h; chmod +x .git/hooks/$h; done`,
  'core.hooksPath': `mkdir -p evil-hooks && for h in ${HOOKS.join(' ')}; do printf '#!/bin/sh\\nexec %s "$@"\\n' "$PROG" > evil-hooks/$h; chmod +x evil-hooks/$h; done && git config core.hooksPath "$PWD/evil-hooks"`,
  'clean and smudge filters':
    'git config filter.x.clean "$PROG" && git config filter.x.smudge "$PROG" && git config filter.x.required true && echo "* filter=x" > .gitattributes',
  'process filter': 'git config filter.p.process "$PROG" && git config filter.p.required true && echo "*.txt filter=p" > .gitattributes',
  'diff driver and textconv': 'git config diff.d.command "$PROG" && git config diff.d.textconv "$PROG" && echo "* diff=d" > .gitattributes',
  'external diff': 'git config diff.external "$PROG"',
  pager: 'git config core.pager "$PROG" && git config pager.diff "$PROG" && git config pager.show "$PROG" && git config pager.log "$PROG"',
  'include and includeIf': `printf '[core]\\n\\tfsmonitor = %s\\n[filter "i"]\\n\\tclean = %s\\n\\tsmudge = %s\\n' "$PROG" "$PROG" "$PROG" > evil.cfg && git config include.path "$PWD/evil.cfg" && git config 'includeIf.gitdir:/.path' "$PWD/evil.cfg" && echo "* filter=i" > .gitattributes`,
  'signing and signatures':
    'git config gpg.program "$PROG" && git config commit.gpgSign true && git config log.showSignature true && git config tag.gpgSign true',
  'transports and credentials':
    'git config core.sshCommand "$PROG" && git config credential.helper "!$PROG" && git config core.askPass "$PROG" && git config core.alternateRefsCommand "$PROG" && git config uploadpack.packObjectsHook "$PROG" && git config remote.origin.url "ext::$PROG" && git config protocol.ext.allow always',
  'automatic maintenance': `git config gc.auto 1 && git config gc.autoDetach false && git config maintenance.auto true && printf '#!/bin/sh\\nexec %s "$@"\\n' "$PROG" > .git/hooks/pre-auto-gc && chmod +x .git/hooks/pre-auto-gc`,
  'a work tree elsewhere': 'mkdir -p "$PROG-dir" && git config core.worktree "$PROG-dir"',
};

/** What the environment of troupe's own process may say about git; none of it may reach troupe's git. */
function hostileEnvironment(prog: string): Record<string, string> {
  return {
    GIT_EXTERNAL_DIFF: prog,
    GIT_PAGER: prog,
    PAGER: prog,
    GIT_SSH_COMMAND: prog,
    GIT_ASKPASS: prog,
    GIT_EDITOR: prog,
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'core.fsmonitor',
    GIT_CONFIG_VALUE_0: prog,
    GIT_CONFIG_PARAMETERS: `'core.fsmonitor'='${prog}'`,
  };
}

let workspace: string;
let marks: string;
let prog: string;
let marker: string;

beforeEach(async () => {
  workspace = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-hostile-')));
  // Outside every writable root of the sandbox (the workspace and the temp directory).
  await mkdir('/var/tmp', { recursive: true });
  marks = realpathSync(await mkdtemp('/var/tmp/troupe-marks-'));
  marker = path.join(marks, 'ran');
  prog = path.join(marks, 'evil');
  // Passes its input through, so a filter or pager it stands in for would still "work".
  await writeFile(prog, `#!/bin/sh\necho "$0 $*" >> ${marker}\nexec cat\n`);
  await chmod(prog, 0o755);
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(marks, { recursive: true, force: true });
});

const HISTORY =
  'git init -q -b main && git config user.name t && git config user.email t@t && printf "one\\r\\ntwo\\n" > a.txt && echo b > b.txt && git add . && git commit -qm first && git branch base && echo c > c.txt && git add c.txt && git commit -qm second';

/** HISTORY made once for the file: a test that plants from the host starts from a copy of it. */
let template: string;

beforeAll(async () => {
  template = await mkdtemp(path.join(tmpdir(), 'troupe-hostile-template-'));
  await execa('sh', ['-c', HISTORY], { cwd: template, env: { HOME: process.env.HOME ?? tmpdir() } });
});

afterAll(async () => {
  await rm(template, { recursive: true, force: true });
});

/** The workspace becomes a repository with HISTORY (a copy of the template). */
async function withHistory(): Promise<void> {
  await cp(template, workspace, { recursive: true });
}

/** Runs `script` on the host, in the workspace, with $PROG set. */
async function onHost(script: string): Promise<void> {
  await execa('sh', ['-c', script], { cwd: workspace, env: { PROG: prog, HOME: process.env.HOME ?? tmpdir() } });
}

/** Runs `script` as the model would: the shell tool, workspace-write sandbox. */
async function inSandbox(script: string): Promise<void> {
  const { ctx } = makeToolContext(workspace);
  const result = await runShell({ command: ['sh', '-c', `PROG=${prog}; export PROG; ${script}`] }, ctx, { sandboxed: true, userApproved: false });
  expect(result.success, result.text).toBe(true);
}

/** Every git operation troupe runs by itself, then checks undo put the tree back. */
async function exerciseTroupeGit(): Promise<void> {
  const snapshot = await takeSnapshot(workspace, 'session-1');
  await writeFile(path.join(workspace, 'a.txt'), 'changed by the turn\n');
  await rm(path.join(workspace, 'b.txt'));
  await writeFile(path.join(workspace, 'new.txt'), 'created by the turn\n');
  for (const target of [{ type: 'uncommitted_changes' }, { type: 'base_branch', branch: 'base' }, { type: 'commit', sha: 'HEAD' }] as const) {
    const resolved = await resolveReviewTarget(workspace, target);
    expect(resolved.prompt_context.length).toBeGreaterThan(0);
  }
  expect((await listSnapshots(workspace, 'session-1')).map((s) => s.commit)).toEqual([snapshot.commit]);
  await restoreSnapshot(workspace, snapshot);
  expect(await readFile(path.join(workspace, 'a.txt'), 'utf8')).toBe('one\r\ntwo\n');
  expect(await readFile(path.join(workspace, 'b.txt'), 'utf8')).toBe('b\n');
  expect(existsSync(path.join(workspace, 'new.txt'))).toBe(false);
}

async function ran(): Promise<string> {
  return readFile(marker, 'utf8').catch(() => '');
}

describe("troupe's own git runs nothing a repository names", () => {
  describe('planted before the session', () => {
    for (const [name, plant] of Object.entries(MECHANISMS)) {
      it(name, async () => {
        await withHistory();
        await onHost(plant);
        if (name === 'a work tree elsewhere') {
          // Refused outright: undo must never be pointed at another directory.
          await expect(takeSnapshot(workspace, 'session-1')).rejects.toThrow(/work tree/);
        } else {
          await exerciseTroupeGit();
        }
        expect(await ran()).toBe('');
      });
    }
  });

  describe.skipIf(!bwrapWorks)('planted from inside the sandbox, in a directory that was no repository', () => {
    for (const [name, plant] of Object.entries(MECHANISMS)) {
      if (name === 'a work tree elsewhere') continue;
      it(name, async () => {
        // One command makes the repository and plants: the .git did not exist when it started.
        await inSandbox(`${HISTORY} && ${plant}`);
        await exerciseTroupeGit();
        expect(await ran()).toBe('');
      });
    }
  });

  it('ignores what the environment of troupe itself says about git', async () => {
    await withHistory();
    const saved = { ...process.env };
    Object.assign(process.env, hostileEnvironment(prog));
    try {
      await exerciseTroupeGit();
    } finally {
      for (const key of Object.keys(hostileEnvironment(prog))) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
    expect(await ran()).toBe('');
  });
});
