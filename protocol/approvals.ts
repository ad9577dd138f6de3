import type { ReviewDecision } from './common.js';
import type { EventMsg } from './events.js';
import type { SessionOp } from './ops.js';

/** The events that ask the user to approve a tool call. */
export type ApprovalRequestMsg = Extract<EventMsg, { type: 'exec_approval_request' | 'apply_patch_approval_request' | 'tool_approval_request' }>;

export function isApprovalRequest(msg: EventMsg): msg is ApprovalRequestMsg {
  return msg.type === 'exec_approval_request' || msg.type === 'apply_patch_approval_request' || msg.type === 'tool_approval_request';
}

/** The op that answers an approval request (PROTOCOL.md §3). */
export function approvalAnswer(request: ApprovalRequestMsg, decision: ReviewDecision): SessionOp {
  const type =
    request.type === 'exec_approval_request' ? 'exec_approval' : request.type === 'apply_patch_approval_request' ? 'patch_approval' : 'tool_approval';
  return { type, id: request.call_id, decision };
}

/**
 * What the request asks, in a few words for a person: "run `ls` in /dir", "change a.txt", "call
 * deploy with {…}". `quote` writes a command as its reader should see it (default: words joined by spaces).
 */
export function describeApprovalRequest(request: ApprovalRequestMsg, quote: (argv: readonly string[]) => string = (argv) => argv.join(' ')): string {
  switch (request.type) {
    case 'exec_approval_request':
      return `run \`${quote(request.command)}\` in ${request.cwd}`;
    case 'apply_patch_approval_request':
      return `change ${Object.keys(request.changes).join(', ')}`;
    case 'tool_approval_request':
      return `call ${request.tool} with ${JSON.stringify(request.arguments)}`;
  }
}
