/**
 * The approval policy: whether a call runs, asks first, or is refused, and in or out of the
 * sandbox. Decisions over the turn's policies, the exec-policy rules, the known-safe commands
 * (safe-commands.ts) and the approvals the session remembers; the matrix itself is
 * exec-plan.ts. How a command is then confined is sandbox/'s.
 */
export { planCommand, rulesHome, type ApprovalMemory, type CommandRequest, type PlanContext } from './command-plan.js';
export { denialHint, escalationAfterDenial } from './escalation.js';
