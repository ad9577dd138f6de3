import type { ReviewTarget } from '../../../protocol/index.js';
import { emptyTree, GitError, headCommit, NotAGitRepoError, repoRoot, resolveCommit, runGit } from '../../git/index.js';
import { writeWorktreeTree, type SkippedPath } from '../../git/worktree-tree.js';
import { ReviewTargetError } from './errors.js';

export interface ResolvedReviewTarget {
  /** The reviewer's task: what to review, the diff itself, and how it was produced. */
  readonly prompt_context: string;
  /** A short label for the user (`current changes`, `commit 1a2b3c4: Fix parser`). */
  readonly user_facing_hint: string;
  /** There is no change to review (an empty diff); the caller may skip the review. */
  readonly empty: boolean;
  /** The diff was longer than `maxDiffChars` and was cut; the prompt says so. */
  readonly truncated: boolean;
}

export interface ResolveReviewOptions {
  /** Longest diff put into the prompt, in characters. Default 120 000 (about 30k tokens). */
  readonly maxDiffChars?: number;
  /** Untracked files larger than this are listed but not diffed. Default 1 MiB. */
  readonly maxUntrackedFileBytes?: number;
}

const DEFAULT_MAX_DIFF_CHARS = 120_000;
const DEFAULT_MAX_UNTRACKED_FILE_BYTES = 1024 * 1024;
const MAX_LISTING_CHARS = 20_000;
const DIFF_FLAGS = ['--no-color', '--no-ext-diff', '--no-textconv'];

/**
 * Turns a review target into the reviewer's prompt. Git targets are resolved here, by the
 * host, so the reviewer (read-only, in a child session) starts from the exact diff; it can
 * still run git itself to look around. Unresolvable targets throw ReviewTargetError.
 */
export async function resolveReviewTarget(
  cwd: string,
  target: ReviewTarget,
  options: ResolveReviewOptions = {},
): Promise<ResolvedReviewTarget> {
  if (target.type === 'custom') {
    const instructions = target.instructions.trim();
    return { prompt_context: instructions, user_facing_hint: shortHint(instructions), empty: false, truncated: false };
  }
  const what = describeTarget(target);
  try {
    const root = await repoRoot(cwd);
    switch (target.type) {
      case 'uncommitted_changes':
        return await uncommittedChanges(root, options);
      case 'base_branch':
        return await againstBaseBranch(root, target.branch, options);
      case 'commit':
        return await singleCommit(root, target.sha, target.title, options);
    }
  } catch (error) {
    if (error instanceof ReviewTargetError) throw error;
    if (error instanceof NotAGitRepoError) {
      throw new ReviewTargetError('not_a_git_repo', `cannot review ${what}: ${cwd} is not inside a git repository`, { cause: error });
    }
    const detail = error instanceof GitError ? error.message : String(error);
    throw new ReviewTargetError('git_failed', `cannot review ${what}: ${detail}`, { cause: error });
  }
}

function describeTarget(target: Exclude<ReviewTarget, { type: 'custom' }>): string {
  switch (target.type) {
    case 'uncommitted_changes':
      return 'uncommitted changes';
    case 'base_branch':
      return `changes against branch '${target.branch}'`;
    case 'commit':
      return `commit '${target.sha}'`;
  }
}

async function uncommittedChanges(root: string, options: ResolveReviewOptions): Promise<ResolvedReviewTarget> {
  const snapshot = await writeWorktreeTree(root, {
    maxUntrackedFileBytes: options.maxUntrackedFileBytes ?? DEFAULT_MAX_UNTRACKED_FILE_BYTES,
  });
  const base = snapshot.head ?? (await emptyTree(root));
  const diff = await capped(root, ['diff', ...DIFF_FLAGS, base, snapshot.tree], options);
  const status = await capped(root, ['status', '--short', '--untracked-files=all'], { maxDiffChars: MAX_LISTING_CHARS });
  const baseText = snapshot.head ? `HEAD (${snapshot.head})` : 'an empty tree (the repository has no commits yet)';
  const sections = [
    `Review the uncommitted changes in the git repository at ${root}: staged, unstaged and untracked (not ignored) files, compared with ${baseText}.`,
    `How the diff below was made: the working tree, untracked files included, was written to a temporary tree and compared with ${snapshot.head ? 'HEAD' : 'the empty tree'}. In the repository, \`git status\` lists the same files, \`git diff ${snapshot.head ? 'HEAD' : '--cached'}\` shows the tracked part, and untracked files can be read directly.`,
    block('`git status --short`', status),
    ...skippedNote(snapshot.skipped),
    diffBlock(diff, snapshot.head ? 'git diff HEAD' : 'git diff --cached'),
  ];
  return result(sections, 'current changes', diff);
}

async function againstBaseBranch(root: string, branch: string, options: ResolveReviewOptions): Promise<ResolvedReviewTarget> {
  const head = await headCommit(root);
  if (head === null) {
    throw new ReviewTargetError('no_commits', `cannot review changes against branch '${branch}': the repository at ${root} has no commits yet`);
  }
  const branchCommit = await resolveCommit(root, branch);
  if (branchCommit === null) {
    throw new ReviewTargetError('unknown_branch', `cannot review changes against branch '${branch}': no such branch or revision in ${root}`);
  }
  const mergeBase = await runGit(root, ['merge-base', head, branchCommit], { okExitCodes: [1] });
  const base = mergeBase.stdout.trim();
  if (mergeBase.exitCode !== 0 || base === '') {
    throw new ReviewTargetError('no_merge_base', `cannot review changes against branch '${branch}': HEAD and '${branch}' have no common ancestor`);
  }
  const diff = await capped(root, ['diff', ...DIFF_FLAGS, base], options);
  const log = await capped(root, ['log', '--no-color', '--format=%h %s', `${base}..${head}`], { maxDiffChars: MAX_LISTING_CHARS });
  const sections = [
    `Review the changes in the git repository at ${root} relative to the base branch '${branch}'.`,
    `How the diff below was made: the merge base of HEAD and '${branch}' is ${base} (\`git merge-base HEAD ${branch}\`), and the diff is \`git diff ${base}\`: the working tree against that merge base, so it covers the branch's commits and any uncommitted changes to tracked files.`,
    block(`Commits since the merge base (\`git log ${base.slice(0, 12)}..HEAD\`)`, log),
    diffBlock(diff, `git diff ${base}`),
  ];
  return result(sections, `changes against '${branch}'`, diff);
}

async function singleCommit(
  root: string,
  sha: string,
  title: string | undefined,
  options: ResolveReviewOptions,
): Promise<ResolvedReviewTarget> {
  const commit = await resolveCommit(root, sha);
  if (commit === null) {
    throw new ReviewTargetError('unknown_commit', `cannot review commit '${sha}': no such commit in ${root}`);
  }
  const subject = title ?? (await runGit(root, ['log', '-1', '--format=%s', commit])).stdout.trim();
  // A merge is reviewed as what it brought into its first parent.
  const show = await capped(root, ['show', ...DIFF_FLAGS, '--format=fuller', '--stat', '--patch', '--diff-merges=first-parent', commit], options);
  const short = commit.slice(0, 7);
  const sections = [
    `Review the commit ${commit}${subject ? ` ("${subject}")` : ''} in the git repository at ${root}.`,
    `How the text below was made: \`git show ${commit}\` (commit message, file statistics and patch; a merge commit is shown against its first parent).`,
    diffBlock(show, `git show ${commit}`),
  ];
  return result(sections, subject ? `commit ${short}: ${subject}` : `commit ${short}`, show);
}

interface Captured {
  readonly text: string;
  readonly truncated: boolean;
}

async function capped(root: string, args: string[], options: Pick<ResolveReviewOptions, 'maxDiffChars'>): Promise<Captured> {
  const max = options.maxDiffChars ?? DEFAULT_MAX_DIFF_CHARS;
  const { stdout, truncated } = await runGit(root, args, { maxOutput: max });
  return { text: stdout, truncated };
}

function result(sections: readonly string[], hint: string, main: Captured): ResolvedReviewTarget {
  return {
    prompt_context: sections.join('\n\n'),
    user_facing_hint: hint,
    empty: main.text.trim() === '' && !main.truncated,
    truncated: main.truncated,
  };
}

function block(title: string, captured: Captured): string {
  const body = captured.text.trimEnd() === '' ? '(none)' : fence(captured.text.trimEnd(), '');
  return `${title}:\n${body}${captured.truncated ? '\n(list cut short)' : ''}`;
}

function diffBlock(captured: Captured, command: string): string {
  if (captured.text.trim() === '' && !captured.truncated) return 'There are no changes: the diff is empty.';
  const note = captured.truncated
    ? `\n\nThe diff was cut after ${captured.text.length} characters because of its size. Run \`${command}\` in the repository (a path at a time if needed) to read the rest before concluding.`
    : '';
  return `Diff:\n${fence(captured.text.trimEnd(), 'diff')}${note}`;
}

function skippedNote(skipped: readonly SkippedPath[]): string[] {
  if (skipped.length === 0) return [];
  const lines = skipped.map((entry) => `- ${entry.path} (${describeSkip(entry)})`);
  return [`Untracked paths left out of the diff; read them directly if they matter:\n${lines.join('\n')}`];
}

function describeSkip(entry: SkippedPath): string {
  switch (entry.reason) {
    case 'large_file':
      return `large file, ${entry.size ?? '?'} bytes`;
    case 'large_directory':
      return `directory of ${entry.size ?? '?'} files`;
    case 'nested_repository':
      return 'a separate git repository';
  }
}

/** A code fence longer than any run of backticks inside, so the content cannot close it. */
function fence(text: string, lang: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const marks = '`'.repeat(Math.max(3, longest + 1));
  return `${marks}${lang}\n${text}\n${marks}`;
}

function shortHint(text: string): string {
  const firstLine = text.split('\n', 1)[0] ?? '';
  return firstLine.length > 80 ? `${firstLine.slice(0, 79)}…` : firstLine;
}
