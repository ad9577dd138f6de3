import type { ResponseItem, ReviewFinding, ReviewOutput } from '../../../protocol/index.js';

/** Marks injected context; `isRealUserMessage` does not count such a message as a user turn. */
export const USER_ACTION_PREFIX = '<user_action>';

/** A review as plain text: verdict, explanation, then each finding with its location. */
export function formatReviewOutput(output: ReviewOutput): string {
  const lines = [
    `Verdict: ${output.overall_correctness} (confidence ${output.overall_confidence_score})`,
    ...(output.overall_explanation.trim() ? [output.overall_explanation.trim()] : []),
    '',
  ];
  if (output.findings.length === 0) {
    lines.push('Findings: none.');
  } else {
    lines.push(`Findings (${output.findings.length}):`);
    output.findings.forEach((finding, i) => lines.push(...formatFinding(finding, i + 1)));
  }
  return lines.join('\n');
}

function formatFinding(finding: ReviewFinding, number: number): string[] {
  const { absolute_file_path: path, line_range: range } = finding.code_location;
  const where = path ? `${path}:${range.start}${range.end !== range.start ? `-${range.end}` : ''}` : 'location not given';
  return [
    `${number}. [P${finding.priority}] ${finding.title}`,
    `   at ${where} (confidence ${finding.confidence_score})`,
    ...finding.body
      .trim()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => `   ${line}`),
  ];
}

/**
 * The message the parent's history records once a review ends: the reviewer's report, in the
 * user role and marked as injected context (so it starts no turn and a rollback or fork does
 * not count it). A later "fix what the review found" turn reads the findings from here; the
 * reviewer's own exploration never reaches the parent.
 */
export function reviewFindingsMessage(output: ReviewOutput, options: { readonly hint?: string } = {}): ResponseItem {
  const subject = options.hint ? ` of ${options.hint}` : '';
  const text = [
    USER_ACTION_PREFIX,
    `The user had a code review${subject} run in a separate thread. Below is the reviewer's report. Nothing has been changed because of it; act on it only when the user asks.`,
    '<review_report>',
    formatReviewOutput(output),
    '</review_report>',
    '</user_action>',
  ].join('\n');
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text }] };
}
