import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ReviewOutput } from '../protocol/index.js';
import { isRealUserMessage } from '../lib/rollout/reader.js';
import {
  FALLBACK_CORRECTNESS,
  parseReviewOutput,
  resolveReviewTarget,
  REVIEW_INSTRUCTIONS,
  REVIEW_OUTPUT_JSON_SCHEMA,
  reviewFindingsMessage,
  ReviewTargetError,
} from '../actors/tasks/review/index.js';
import { useScratchRepos, writeAt } from './support/git-repo.js';

const { tempDir, newRepo } = useScratchRepos('troupe-review-test-');

async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd, env: { GIT_OPTIONAL_LOCKS: '0' } })).stdout;
}

const write = writeAt;

async function commitAll(root: string, message: string): Promise<string> {
  await git(root, 'add', '-A');
  await git(root, 'commit', '-q', '-m', message);
  return git(root, 'rev-parse', 'HEAD');
}

async function indexHash(root: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(join(root, '.git', 'index')))
    .digest('hex');
}

async function expectTargetError(promise: Promise<unknown>, reason: string, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ReviewTargetError);
  expect((error as ReviewTargetError).reason).toBe(reason);
  expect((error as ReviewTargetError).code).toBe('bad_request');
  expect((error as ReviewTargetError).message).toMatch(message);
}

describe('resolveReviewTarget', () => {
  it('uncommitted_changes covers staged, unstaged and untracked files, not ignored ones, and changes nothing', async () => {
    const root = await newRepo();
    await write(root, '.gitignore', 'secret.env\n');
    await write(root, 'app.js', 'const a = 1;\n');
    await write(root, 'lib.js', 'export const b = 2;\n');
    const head = await commitAll(root, 'initial');
    await write(root, 'app.js', 'const a = 100; // staged edit\n');
    await git(root, 'add', 'app.js');
    await write(root, 'lib.js', 'export const b = 200; // unstaged edit\n');
    await write(root, 'fresh/new.js', 'console.log("untracked content");\n');
    await write(root, 'secret.env', 'TOKEN=hunter2\n');
    const indexBefore = await indexHash(root);

    const resolved = await resolveReviewTarget(root, { type: 'uncommitted_changes' });
    expect(resolved.user_facing_hint).toBe('current changes');
    expect(resolved.empty).toBe(false);
    expect(resolved.truncated).toBe(false);
    const text = resolved.prompt_context;
    expect(text).toContain(`git repository at ${root}`);
    expect(text).toContain(head);
    expect(text).toContain('+const a = 100; // staged edit');
    expect(text).toContain('+export const b = 200; // unstaged edit');
    expect(text).toContain('+console.log("untracked content");');
    expect(text).toContain('A\tfresh/new.js');
    expect(text).toContain('M\tlib.js');
    expect(text).not.toContain('hunter2');
    expect(text).toMatch(/How the diff below was made/);

    expect(await git(root, 'rev-parse', 'HEAD')).toBe(head);
    expect(await indexHash(root)).toBe(indexBefore);
    expect(await git(root, 'status', '--porcelain')).toBe('M  app.js\n M lib.js\n?? fresh/');
  });

  it('uncommitted_changes in a clean repository is empty, and works before the first commit', async () => {
    const clean = await newRepo();
    await write(clean, 'a.txt', 'a\n');
    await commitAll(clean, 'initial');
    const none = await resolveReviewTarget(clean, { type: 'uncommitted_changes' });
    expect(none.empty).toBe(true);
    expect(none.prompt_context).toContain('There are no changes');

    const unborn = await newRepo();
    await write(unborn, 'first.py', 'print("hi")\n');
    const resolved = await resolveReviewTarget(unborn, { type: 'uncommitted_changes' });
    expect(resolved.empty).toBe(false);
    expect(resolved.prompt_context).toContain('+print("hi")');
    expect(resolved.prompt_context).toContain('no commits yet');
  });

  it('cuts a diff that is too long and tells the reviewer how to see the rest', async () => {
    const root = await newRepo();
    await write(root, 'a.txt', 'a\n');
    await commitAll(root, 'initial');
    await write(root, 'a.txt', `${'x'.repeat(100)}\n`.repeat(200));
    const resolved = await resolveReviewTarget(root, { type: 'uncommitted_changes' }, { maxDiffChars: 2000 });
    expect(resolved.truncated).toBe(true);
    expect(resolved.prompt_context).toMatch(/The diff was cut after \d+ characters/);
    expect(resolved.prompt_context).toContain('git diff HEAD');
    expect(resolved.prompt_context.length).toBeLessThan(6000);
  });

  it('base_branch diffs against the merge base, leaving out what the base branch did since', async () => {
    const root = await newRepo();
    await write(root, 'shared.txt', 'shared\n');
    await commitAll(root, 'initial');
    await git(root, 'checkout', '-q', '-b', 'feature');
    await write(root, 'feature.txt', 'feature work\n');
    await commitAll(root, 'Add feature');
    await git(root, 'checkout', '-q', 'main');
    await write(root, 'main-only.txt', 'main moved on\n');
    const mainHead = await commitAll(root, 'Main moves on');
    await git(root, 'checkout', '-q', 'feature');
    await write(root, 'shared.txt', 'shared, edited but not committed\n');
    const mergeBase = await git(root, 'merge-base', 'HEAD', 'main');

    const resolved = await resolveReviewTarget(root, { type: 'base_branch', branch: 'main' });
    expect(resolved.user_facing_hint).toBe("changes against 'main'");
    expect(resolved.prompt_context).toContain(`git diff ${mergeBase}`);
    expect(resolved.prompt_context).toContain('+feature work');
    expect(resolved.prompt_context).toContain('+shared, edited but not committed');
    expect(resolved.prompt_context).toContain('Add feature');
    expect(resolved.prompt_context).not.toContain('main moved on');
    expect(mergeBase).not.toBe(mainHead);
  });

  it('base_branch fails clearly for an unknown branch, unrelated histories and an empty repository', async () => {
    const root = await newRepo();
    await write(root, 'a.txt', 'a\n');
    await commitAll(root, 'initial');
    await expectTargetError(
      resolveReviewTarget(root, { type: 'base_branch', branch: 'no-such-branch' }),
      'unknown_branch',
      /branch 'no-such-branch': no such branch/,
    );
    await expectTargetError(resolveReviewTarget(root, { type: 'base_branch', branch: '--all' }), 'unknown_branch', /no such branch/);

    await git(root, 'checkout', '-q', '--orphan', 'island');
    await write(root, 'b.txt', 'b\n');
    await commitAll(root, 'unrelated root');
    await expectTargetError(resolveReviewTarget(root, { type: 'base_branch', branch: 'main' }), 'no_merge_base', /no common ancestor/);

    const empty = await newRepo();
    await expectTargetError(resolveReviewTarget(empty, { type: 'base_branch', branch: 'main' }), 'no_commits', /no commits/);
  });

  it('commit shows that one commit, by full or short sha, with its title', async () => {
    const root = await newRepo();
    await write(root, 'calc.js', 'export const add = (a, b) => a + b;\n');
    await commitAll(root, 'Add calculator');
    await write(root, 'calc.js', 'export const add = (a, b) => a - b;\n');
    const sha = await commitAll(root, 'Break addition');
    await write(root, 'later.txt', 'later\n');
    await commitAll(root, 'Later commit');

    const resolved = await resolveReviewTarget(root, { type: 'commit', sha: sha.slice(0, 8) });
    expect(resolved.user_facing_hint).toBe(`commit ${sha.slice(0, 7)}: Break addition`);
    expect(resolved.prompt_context).toContain(`git show ${sha}`);
    expect(resolved.prompt_context).toContain('-export const add = (a, b) => a + b;');
    expect(resolved.prompt_context).toContain('+export const add = (a, b) => a - b;');
    expect(resolved.prompt_context).not.toContain('later.txt');

    const titled = await resolveReviewTarget(root, { type: 'commit', sha, title: 'The subtraction bug' });
    expect(titled.user_facing_hint).toBe(`commit ${sha.slice(0, 7)}: The subtraction bug`);
  });

  it('commit fails clearly for an unknown sha', async () => {
    const root = await newRepo();
    await write(root, 'a.txt', 'a\n');
    await commitAll(root, 'initial');
    await expectTargetError(resolveReviewTarget(root, { type: 'commit', sha: 'deadbeef' }), 'unknown_commit', /commit 'deadbeef': no such commit/);
    await expectTargetError(resolveReviewTarget(root, { type: 'commit', sha: '-p' }), 'unknown_commit', /no such commit/);
  });

  it('every git target outside a repository is a not_a_git_repo error; custom needs no repository', async () => {
    const dir = await tempDir();
    for (const target of [
      { type: 'uncommitted_changes' as const },
      { type: 'base_branch' as const, branch: 'main' },
      { type: 'commit' as const, sha: 'abc123' },
    ]) {
      await expectTargetError(resolveReviewTarget(dir, target), 'not_a_git_repo', new RegExp(`${dir} is not inside a git repository`));
    }
    const custom = await resolveReviewTarget(dir, { type: 'custom', instructions: '  Check the error handling in src/io.ts\nand the retries.  ' });
    expect(custom).toEqual({
      prompt_context: 'Check the error handling in src/io.ts\nand the retries.',
      user_facing_hint: 'Check the error handling in src/io.ts',
      empty: false,
      truncated: false,
    });
  });
});

const valid: ReviewOutput = {
  findings: [
    {
      title: 'Addition subtracts',
      body: 'add() returns a - b, so every caller gets the wrong sum.',
      confidence_score: 0.95,
      priority: 0,
      code_location: { absolute_file_path: '/repo/calc.js', line_range: { start: 1, end: 1 } },
    },
  ],
  overall_correctness: 'patch is incorrect',
  overall_explanation: 'The change breaks add().',
  overall_confidence_score: 0.9,
};

describe('parseReviewOutput', () => {
  it('accepts strict JSON', () => {
    expect(parseReviewOutput(JSON.stringify(valid))).toEqual(valid);
    expect(parseReviewOutput(`\n  ${JSON.stringify(valid, null, 2)}\n`)).toEqual(valid);
  });

  it('finds the object inside a code fence or prose', () => {
    expect(parseReviewOutput('```json\n' + JSON.stringify(valid) + '\n```')).toEqual(valid);
    expect(parseReviewOutput(`Here is my review {as promised}:\n${JSON.stringify(valid)}\nThanks.`)).toEqual(valid);
  });

  it('keeps what is usable from an almost-right object', () => {
    const parsed = parseReviewOutput(
      JSON.stringify({
        findings: [{ title: 'Leak', body: 'fd never closed', priority: 'P2', confidence_score: '0.7' }, 42, { unrelated: true }],
        overall_correctness: 'looks fine',
        overall_explanation: 'Mostly fine.',
      }),
    );
    expect(parsed).toEqual({
      findings: [
        {
          title: 'Leak',
          body: 'fd never closed',
          priority: 2,
          confidence_score: 0.7,
          code_location: { absolute_file_path: '', line_range: { start: 0, end: 0 } },
        },
      ],
      overall_correctness: FALLBACK_CORRECTNESS,
      overall_explanation: 'Mostly fine.',
      overall_confidence_score: 0,
    });
    expect(ReviewOutput.safeParse(parsed).success).toBe(true);
  });

  it('falls back to the whole text as the explanation, never throwing', () => {
    for (const text of ['The patch looks good to me.', '', '{ not json at all', '{"foo": 1}', '[1,2]', 'null']) {
      const parsed = parseReviewOutput(text);
      expect(parsed).toEqual({
        findings: [],
        overall_correctness: 'patch is incorrect',
        overall_explanation: text.trim(),
        overall_confidence_score: 0,
      });
    }
  });
});

describe('review prompts and schema', () => {
  it('the JSON schema describes ReviewOutput strictly', () => {
    const schema = REVIEW_OUTPUT_JSON_SCHEMA as { type: string; required: string[]; additionalProperties: boolean; $schema?: string };
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(['findings', 'overall_correctness', 'overall_explanation', 'overall_confidence_score']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.$schema).toBeUndefined();
    expect(JSON.stringify(schema)).not.toContain(String(Number.MAX_SAFE_INTEGER));
    expect(JSON.stringify(schema)).toContain('"patch is incorrect"');
  });

  it('the instructions name every field of the output', () => {
    for (const field of [
      'findings',
      'title',
      'body',
      'confidence_score',
      'priority',
      'code_location',
      'absolute_file_path',
      'line_range',
      'overall_correctness',
      'overall_explanation',
      'overall_confidence_score',
    ]) {
      expect(REVIEW_INSTRUCTIONS).toContain(`"${field}"`);
    }
  });

  it('the findings message is injected context carrying every finding', () => {
    const message = reviewFindingsMessage(valid, { hint: 'current changes' });
    expect(message.type).toBe('message');
    expect(isRealUserMessage(message)).toBe(false);
    if (message.type !== 'message') return;
    expect(message.role).toBe('user');
    const text = message.content[0]?.type === 'input_text' ? message.content[0].text : '';
    expect(text.startsWith('<user_action>')).toBe(true);
    expect(text).toContain('review of current changes');
    expect(text).toContain('[P0] Addition subtracts');
    expect(text).toContain('/repo/calc.js:1');
    expect(text).toContain('add() returns a - b');
    expect(text).toContain('patch is incorrect');

    const clean = reviewFindingsMessage({ ...valid, findings: [], overall_correctness: 'patch is correct' });
    const cleanText = clean.type === 'message' && clean.content[0]?.type === 'input_text' ? clean.content[0].text : '';
    expect(cleanText).toContain('Findings: none.');
  });
});
