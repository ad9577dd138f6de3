import { TroupeError } from '../../protocol/index.js';
/**
 * Errors of the git helpers. Callers turn them into protocol answers (`undo_completed{success:
 * false}`, a review `error`), so each carries a message a user can act on without the stack.
 */
export class GitError extends TroupeError {
  override readonly name: string = 'GitError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The directory is not inside a git work tree (or git itself is missing). */
export class NotAGitRepoError extends GitError {
  override readonly name = 'NotAGitRepoError';
  constructor(
    readonly dir: string,
    options?: ErrorOptions,
  ) {
    super(`${dir} is not inside a git repository`, options);
  }
}

/** A git command failed in a way the caller did not expect; `stderr` says why. */
export class GitCommandError extends GitError {
  override readonly name = 'GitCommandError';
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: ErrorOptions,
  ) {
    super(`git ${args.join(' ')} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim() || 'no message'}`, options);
  }
}

/** A ghost snapshot could not be taken, found or restored. */
export class GhostSnapshotError extends GitError {
  override readonly name = 'GhostSnapshotError';
}

/** The repository is set up in a way troupe will not act on (its work tree is elsewhere, …). */
export class UntrustedGitError extends GitError {
  override readonly name = 'UntrustedGitError';
}
