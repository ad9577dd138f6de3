import { errorEvent, TroupeError, type ReviewTarget } from '../../../protocol/index.js';
import type { TaskInput, TaskRequest } from '../../../machines/session.js';
import type { TaskOutput } from '../../../machines/task.js';
import { shellEnvironmentPolicyConfig } from '../../../machines/turn-context.js';
import { runChildTurn, type ChildTurnResult } from '../../agents/child-session.js';
import { childOf, completed, FAILED, INTERRUPTED, type Task, type TaskHost } from '../task.js';
import { ReviewTargetError } from './errors.js';
import { formatReviewOutput, reviewFindingsMessage } from './findings-message.js';
import { REVIEW_INSTRUCTIONS } from './instructions.js';
import { parseReviewOutput, REVIEW_OUTPUT_JSON_SCHEMA } from './output.js';
import { resolveReviewTarget } from './target.js';

type ReviewRequest = Extract<TaskRequest, { type: 'REVIEW' }>;

/**
 * `review`: one turn in a child session with a history of its own, the review instructions,
 * `review_model`, no approvals, a read-only sandbox and no sub-agent tools, asked for the review
 * schema as structured output. Between `entered_review_mode` and `exited_review_mode` come the
 * child's own events; only the findings are recorded in this session's history.
 */
export class ReviewTask implements Task<ReviewRequest> {
  readonly #host: TaskHost;

  constructor(host: TaskHost) {
    this.#host = host;
  }

  async run({ request, settings }: TaskInput<ReviewRequest>, signal: AbortSignal): Promise<TaskOutput> {
    const id = request.submissionId;
    const host = this.#host;
    let resolved;
    try {
      resolved = await resolveReviewTarget(settings.cwd, request.target);
    } catch (error) {
      if (!(error instanceof ReviewTargetError)) throw error;
      host.emit(id, errorEvent(error, 'cannot review'));
      return FAILED;
    }
    const hint = request.hint ?? resolved.user_facing_hint;
    host.emit(id, { type: 'entered_review_mode', target: request.target, user_facing_hint: hint });
    let result: ChildTurnResult;
    try {
      result = await runChildTurn({
        ...childOf(host, id, signal),
        purpose: 'review',
        config: {
          model: settings.review_model ?? settings.model,
          cwd: settings.cwd,
          approval_policy: 'never',
          sandbox_policy: 'read-only',
          base_instructions: REVIEW_INSTRUCTIONS,
          shell_environment_policy: shellEnvironmentPolicyConfig(settings.shell_environment_policy),
        },
        prompt: resolved.prompt_context,
        outputSchema: REVIEW_OUTPUT_JSON_SCHEMA,
      });
    } catch (error) {
      host.emit(id, errorEvent(error, 'the review could not start'));
      host.emit(id, { type: 'exited_review_mode', review_output: null });
      return FAILED;
    }
    if (result.aborted) {
      host.emit(id, { type: 'exited_review_mode', review_output: null });
      return INTERRUPTED;
    }
    if (result.lastMessage === null) {
      if (result.error) host.emit(id, errorEvent(new TroupeError(result.error.message, { code: result.error.code }), 'the review failed'));
      host.emit(id, { type: 'exited_review_mode', review_output: null });
      return result.error ? FAILED : completed();
    }
    const output = parseReviewOutput(result.lastMessage);
    host.emit(id, { type: 'exited_review_mode', review_output: output });
    // The parent keeps the findings, not the reviewer's exploration.
    host.record(reviewFindingsMessage(output, { hint: hintOf(request.target, hint) }));
    return completed(formatReviewOutput(output));
  }
}

function hintOf(target: ReviewTarget, hint: string): string {
  return hint || target.type;
}
