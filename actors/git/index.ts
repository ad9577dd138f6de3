export { GhostSnapshotError, GitCommandError, GitError, NotAGitRepoError } from './errors.js';
export { emptyTree, headCommit, repoRoot, resolveCommit, runGit, type GitRunOptions, type GitRunResult } from './git.js';
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
export { writeWorktreeTree, type SkippedPath, type SkipReason, type WorktreeTree, type WorktreeTreeOptions } from './worktree-tree.js';
