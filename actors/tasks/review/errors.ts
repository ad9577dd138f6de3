import { TroupeError } from '../../../protocol/index.js';

/** Why a review target could not be resolved. */
export type ReviewTargetReason = 'not_a_git_repo' | 'no_commits' | 'unknown_branch' | 'no_merge_base' | 'unknown_commit' | 'git_failed';

/**
 * A review target that cannot be turned into something to review. The message is meant for the
 * `error` event as is: it names the target and what is wrong with it.
 */
export class ReviewTargetError extends TroupeError {
  override readonly name = 'ReviewTargetError';
  override readonly code = 'bad_request';
  constructor(
    readonly reason: ReviewTargetReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
