export { ReviewTargetError, type ReviewTargetReason } from './errors.js';
export { formatReviewOutput, reviewFindingsMessage, USER_ACTION_PREFIX } from './findings-message.js';
export { REVIEW_INSTRUCTIONS } from './instructions.js';
export { FALLBACK_CORRECTNESS, parseReviewOutput, REVIEW_OUTPUT_JSON_SCHEMA } from './output.js';
export { resolveReviewTarget, type ResolvedReviewTarget, type ResolveReviewOptions } from './target.js';
