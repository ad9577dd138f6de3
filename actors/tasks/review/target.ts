import type { ReviewTarget } from '../../../protocol/index.js';
import {
  GitError,
  headCommit,
  NotAGitRepoError,
  openRepo,
  repoGit,
  resolveCommit,
  withView,
  writeWorktreeTree,
  type GitView,
  type Repo,
  type SkippedPath,
} from '../../../lib/git/index.js';
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
export async function resolveReviewTarget(cwd: string, target: ReviewTarget, options: ResolveReviewOptions = {}): Promise<ResolvedReviewTarget> {
  if (target.type === 'custom') {
    const instructions = target.instructions.trim();
    return { prompt_context: instructions, user_facing_hint: shortHint(instructions), empty: false, truncated: false };
  }
  const what = describeTarget(target);
  try {
    const repo = await openRepo(cwd);
    switch (target.type) {
      case 'uncommitted_changes':
        return await uncommittedChanges(repo, options);
      case 'base_branch':
        return await againstBaseBranch(repo, target.branch, options);
      case 'commit':
        return await singleCommit(repo, target.sha, target.title, options);
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

async function uncommittedChanges(repo: Repo, options: ResolveReviewOptions): Promise<ResolvedReviewTarget> {
  const root = repo.root;
  const snapshot = await writeWorktreeTree(repo, {
    maxUntrackedFileBytes: options.maxUntrackedFileBytes ?? DEFAULT_MAX_UNTRACKED_FILE_BYTES,
  });
  return withView(repo, null, async (view) => {
    const base = snapshot.head ?? (await emptyTree(view));
    const diff = await capped(view, ['diff', ...DIFF_FLAGS, base, snapshot.tree], options);
    const files = await capped(view, ['diff', '--no-color', '--name-status', base, snapshot.tree], { maxDiffChars: MAX_LISTING_CHARS });
    const baseText = snapshot.head ? `HEAD (${snapshot.head})` : 'an empty tree (the repository has no commits yet)';
    const sections = [
      `Review the uncommitted changes in the git repository at ${root}: staged, unstaged and untracked (not ignored) files, compared with ${baseText}.`,
      `How the diff below was made: the working tree, untracked files included, was written to a temporary tree and compared with ${snapshot.head ? 'HEAD' : 'the empty tree'}. In the repository, \`git status\` lists the same files, \`git diff ${snapshot.head ? 'HEAD' : '--cached'}\` shows the tracked part, and untracked files can be read directly.`,
      block('Changed files (`git diff --name-status`)', files),
      ...skippedNote(snapshot.skipped),
      diffBlock(diff, snapshot.head ? 'git diff HEAD' : 'git diff --cached'),
    ];
    return result(sections, 'current changes', diff);
  });
}

async function againstBaseBranch(repo: Repo, branch: string, options: ResolveReviewOptions): Promise<ResolvedReviewTarget> {
  const root = repo.root;
  const head = await headCommit(repo);
  if (head === null) {
    throw new ReviewTargetError('no_commits', `cannot review changes against branch '${branch}': the repository at ${root} has no commits yet`);
  }
  const branchCommit = await resolveCommit(repo, branch);
  if (branchCommit === null) {
    throw new ReviewTargetError('unknown_branch', `cannot review changes against branch '${branch}': no such branch or revision in ${root}`);
  }
  const mergeBase = await repoGit(repo, ['merge-base', head, branchCommit], { okExitCodes: [1] });
  const base = mergeBase.stdout.trim();
  if (mergeBase.exitCode !== 0 || base === '') {
    throw new ReviewTargetError('no_merge_base', `cannot review changes against branch '${branch}': HEAD and '${branch}' have no common ancestor`);
  }
  const worktree = await writeWorktreeTree(repo, { maxUntrackedFileBytes: options.maxUntrackedFileBytes ?? DEFAULT_MAX_UNTRACKED_FILE_BYTES });
  return withView(repo, null, async (view) => {
    const diff = await capped(view, ['diff', ...DIFF_FLAGS, base, worktree.tree], options);
    const log = await capped(view, ['log', '--no-color', '--format=%h %s', `${base}..${head}`], { maxDiffChars: MAX_LISTING_CHARS });
    const sections = [
      `Review the changes in the git repository at ${root} relative to the base branch '${branch}'.`,
      `How the diff below was made: the merge base of HEAD and '${branch}' is ${base} (\`git merge-base HEAD ${branch}\`), and the diff compares the working tree, untracked (not ignored) files included, with that merge base, so it covers the branch's commits and any uncommitted changes. In the repository, \`git diff ${base}\` shows the tracked part.`,
      block(`Commits since the merge base (\`git log ${base.slice(0, 12)}..HEAD\`)`, log),
      ...skippedNote(worktree.skipped),
      diffBlock(diff, `git diff ${base}`),
    ];
    return result(sections, `changes against '${branch}'`, diff);
  });
}

async function singleCommit(repo: Repo, sha: string, title: string | undefined, options: ResolveReviewOptions): Promise<ResolvedReviewTarget> {
  const root = repo.root;
  const commit = await resolveCommit(repo, sha);
  if (commit === null) {
    throw new ReviewTargetError('unknown_commit', `cannot review commit '${sha}': no such commit in ${root}`);
  }
  return withView(repo, null, async (view) => {
    const subject = title ?? (await view.run(['log', '-1', '--format=%s', commit])).stdout.trim();
    // A merge is reviewed as what it brought into its first parent.
    const show = await capped(view, ['show', ...DIFF_FLAGS, '--format=fuller', '--stat', '--patch', '--diff-merges=first-parent', commit], options);
    const short = commit.slice(0, 7);
    const sections = [
      `Review the commit ${commit}${subject ? ` ("${subject}")` : ''} in the git repository at ${root}.`,
      `How the text below was made: \`git show ${commit}\` (commit message, file statistics and patch; a merge commit is shown against its first parent).`,
      diffBlock(show, `git show ${commit}`),
    ];
    return result(sections, subject ? `commit ${short}: ${subject}` : `commit ${short}`, show);
  });
}

/**
 * The id of the empty tree in this repository's hash format (sha1 or sha256). Git knows the
 * empty tree without it being stored, so diffing against it needs no write.
 */
async function emptyTree(view: GitView): Promise<string> {
  return (await view.run(['hash-object', '-t', 'tree', '--stdin'], { input: '' })).stdout.trim();
}

interface Captured {
  readonly text: string;
  readonly truncated: boolean;
}

async function capped(view: GitView, args: string[], options: Pick<ResolveReviewOptions, 'maxDiffChars'>): Promise<Captured> {
  const max = options.maxDiffChars ?? DEFAULT_MAX_DIFF_CHARS;
  const { stdout, truncated } = await view.run(args, { maxOutput: max });
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
