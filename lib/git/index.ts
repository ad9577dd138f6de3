export { GhostSnapshotError, GitCommandError, GitError, NotAGitRepoError, UntrustedGitError } from './errors.js';
export { headCommit, openRepo, repoGit, repoRoot, resolveCommit, splitNul, type GitRunOptions, type GitRunResult, type Repo } from './git.js';
export {
  deleteSnapshot,
  deleteSnapshots,
  GHOST_REF_PREFIX,
  listSnapshots,
  restoreSnapshot,
  takeSnapshot,
  type GhostSnapshot,
  type RestoreResult,
  type TakeSnapshotOptions,
} from './ghost-snapshot.js';
export { withView, type GitView } from './view.js';
export { writeWorktreeTree, type SkippedPath, type SkipReason, type WorktreeTree, type WorktreeTreeOptions } from './worktree-tree.js';
