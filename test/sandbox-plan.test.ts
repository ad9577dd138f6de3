/**
 * The ExecPlan matrix, every cell: approval policy × sandbox policy × exec-policy rule ×
 * escalation request (× known-safe, which only `untrusted` looks at). The expectations are
 * written out by hand, not computed, so a change of behaviour shows up as a changed row.
 */
import { describe, expect, it } from 'vitest';
import { planExec, type ExecPlan } from '../lib/approval/exec-plan.js';
import type { RuleDecision } from '../lib/exec-policy/index.js';
import type { AskForApproval, SandboxMode } from '../protocol/index.js';

type Cell = 'run:sb' | 'run:sb+esc' | 'run:full' | 'ask:sb' | 'ask:full' | 'reject';
type Rule = RuleDecision | 'none';
/** [rule, escalation requested, known safe, read-only, workspace-write, danger-full-access] */
type Row = readonly [Rule, boolean, boolean, Cell, Cell, Cell];

const MODES: readonly SandboxMode[] = ['read-only', 'workspace-write', 'danger-full-access'];

const TABLE: Record<AskForApproval, readonly Row[]> = {
  'on-request': [
    ['none', false, false, 'run:sb', 'run:sb', 'run:full'],
    ['none', false, true, 'run:sb', 'run:sb', 'run:full'],
    ['none', true, false, 'ask:full', 'ask:full', 'run:full'],
    ['none', true, true, 'ask:full', 'ask:full', 'run:full'],
    ['allow', false, false, 'run:sb', 'run:sb', 'run:full'],
    ['allow', false, true, 'run:sb', 'run:sb', 'run:full'],
    ['allow', true, false, 'ask:full', 'ask:full', 'run:full'],
    ['allow', true, true, 'ask:full', 'ask:full', 'run:full'],
    ['prompt', false, false, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', false, true, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', true, false, 'ask:full', 'ask:full', 'ask:full'],
    ['prompt', true, true, 'ask:full', 'ask:full', 'ask:full'],
    ['forbidden', false, false, 'reject', 'reject', 'reject'],
    ['forbidden', false, true, 'reject', 'reject', 'reject'],
    ['forbidden', true, false, 'reject', 'reject', 'reject'],
    ['forbidden', true, true, 'reject', 'reject', 'reject'],
  ],
  'on-failure': [
    ['none', false, false, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['none', false, true, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['none', true, false, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['none', true, true, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['allow', false, false, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['allow', false, true, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['allow', true, false, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['allow', true, true, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['prompt', false, false, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', false, true, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', true, false, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', true, true, 'ask:sb', 'ask:sb', 'ask:full'],
    ['forbidden', false, false, 'reject', 'reject', 'reject'],
    ['forbidden', false, true, 'reject', 'reject', 'reject'],
    ['forbidden', true, false, 'reject', 'reject', 'reject'],
    ['forbidden', true, true, 'reject', 'reject', 'reject'],
  ],
  never: [
    ['none', false, false, 'run:sb', 'run:sb', 'run:full'],
    ['none', false, true, 'run:sb', 'run:sb', 'run:full'],
    ['none', true, false, 'reject', 'reject', 'run:full'],
    ['none', true, true, 'reject', 'reject', 'run:full'],
    ['allow', false, false, 'run:sb', 'run:sb', 'run:full'],
    ['allow', false, true, 'run:sb', 'run:sb', 'run:full'],
    ['allow', true, false, 'reject', 'reject', 'run:full'],
    ['allow', true, true, 'reject', 'reject', 'run:full'],
    ['prompt', false, false, 'reject', 'reject', 'reject'],
    ['prompt', false, true, 'reject', 'reject', 'reject'],
    ['prompt', true, false, 'reject', 'reject', 'reject'],
    ['prompt', true, true, 'reject', 'reject', 'reject'],
    ['forbidden', false, false, 'reject', 'reject', 'reject'],
    ['forbidden', false, true, 'reject', 'reject', 'reject'],
    ['forbidden', true, false, 'reject', 'reject', 'reject'],
    ['forbidden', true, true, 'reject', 'reject', 'reject'],
  ],
  untrusted: [
    ['none', false, false, 'ask:sb', 'ask:sb', 'ask:full'],
    ['none', false, true, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['none', true, false, 'ask:full', 'ask:full', 'ask:full'],
    ['none', true, true, 'ask:full', 'ask:full', 'run:full'],
    ['allow', false, false, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['allow', false, true, 'run:sb+esc', 'run:sb+esc', 'run:full'],
    ['allow', true, false, 'ask:full', 'ask:full', 'run:full'],
    ['allow', true, true, 'ask:full', 'ask:full', 'run:full'],
    ['prompt', false, false, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', false, true, 'ask:sb', 'ask:sb', 'ask:full'],
    ['prompt', true, false, 'ask:full', 'ask:full', 'ask:full'],
    ['prompt', true, true, 'ask:full', 'ask:full', 'ask:full'],
    ['forbidden', false, false, 'reject', 'reject', 'reject'],
    ['forbidden', false, true, 'reject', 'reject', 'reject'],
    ['forbidden', true, false, 'reject', 'reject', 'reject'],
    ['forbidden', true, true, 'reject', 'reject', 'reject'],
  ],
};

function cellOf(plan: ExecPlan): Cell {
  switch (plan.kind) {
    case 'run':
      if (!plan.sandboxed) return 'run:full';
      return plan.escalateOnDenial ? 'run:sb+esc' : 'run:sb';
    case 'ask':
      return plan.sandboxedAfterApproval ? 'ask:sb' : 'ask:full';
    case 'reject':
      return 'reject';
  }
}

const rule = (decision: Rule) => (decision === 'none' ? undefined : { decision, description: `${decision} ["x"] (rules.json:3)` });

describe('ExecPlan matrix', () => {
  const cells = Object.entries(TABLE).flatMap(([policy, rows]) =>
    rows.flatMap(([decision, escalate, safe, ...expected]) =>
      MODES.map((mode, i) => ({ policy: policy as AskForApproval, mode, decision, escalate, safe, expected: expected[i]! })),
    ),
  );

  it('covers every combination exactly once', () => {
    expect(cells).toHaveLength(4 * 3 * 4 * 2 * 2);
    expect(new Set(cells.map((c) => `${c.policy}/${c.mode}/${c.decision}/${c.escalate}/${c.safe}`)).size).toBe(cells.length);
  });

  it.each(cells)('$policy × $mode × rule $decision × escalate $escalate × safe $safe → $expected', ({ policy, mode, decision, escalate, safe, expected }) => {
    const plan = planExec({
      approvalPolicy: policy,
      sandboxMode: mode,
      rule: rule(decision),
      escalationRequested: escalate,
      knownSafe: safe,
      justification: 'needs it',
    });
    expect(cellOf(plan)).toBe(expected);
  });
});

describe('ExecPlan details', () => {
  it('a forbidden rule names itself and its reason to the model', () => {
    const plan = planExec({
      approvalPolicy: 'on-request',
      sandboxMode: 'workspace-write',
      rule: { decision: 'forbidden', description: 'forbidden ["rm","-rf"] (/h/rules.json:4)', reason: 'never wipe trees' },
      escalationRequested: false,
      knownSafe: false,
    });
    expect(plan).toEqual({ kind: 'reject', reason: expect.stringContaining('forbidden ["rm","-rf"] (/h/rules.json:4): never wipe trees') });
  });

  it("a verdict's own question is what the user is asked, and what never says it could not ask", () => {
    const rule = {
      decision: 'prompt' as const,
      description: 'forbidden ["rm"] (/h/rules.json:2)',
      question: 'troupe cannot rule out that this command runs rm',
    };
    const base = { sandboxMode: 'workspace-write' as const, rule, escalationRequested: false, knownSafe: true };
    expect(planExec({ ...base, approvalPolicy: 'on-request' })).toEqual({
      kind: 'ask',
      sandboxedAfterApproval: true,
      reason: 'troupe cannot rule out that this command runs rm',
    });
    expect(planExec({ ...base, approvalPolicy: 'never' })).toEqual({
      kind: 'reject',
      reason: 'Not run: troupe cannot rule out that this command runs rm, and the approval policy "never" forbids asking the user.',
    });
  });

  it('never says escalation is not available under this policy', () => {
    const plan = planExec({ approvalPolicy: 'never', sandboxMode: 'workspace-write', escalationRequested: true, knownSafe: false });
    expect(plan.kind === 'reject' && plan.reason).toMatch(/not available.*"never"/);
  });

  it('an escalation request carries the justification as the reason', () => {
    const plan = planExec({
      approvalPolicy: 'on-request',
      sandboxMode: 'read-only',
      escalationRequested: true,
      justification: 'needs the network',
      knownSafe: false,
    });
    expect(plan).toEqual({ kind: 'ask', sandboxedAfterApproval: false, reason: 'needs the network' });
  });

  it('approvals remembered for the session skip the question, but never a prompt rule', () => {
    const base = { approvalPolicy: 'untrusted' as const, sandboxMode: 'workspace-write' as const, knownSafe: false };
    expect(cellOf(planExec({ ...base, escalationRequested: false, approved: { inside: true, outside: false } }))).toBe('run:sb+esc');
    expect(cellOf(planExec({ ...base, escalationRequested: true, approved: { inside: true, outside: false } }))).toBe('ask:full');
    expect(cellOf(planExec({ ...base, escalationRequested: true, approved: { inside: false, outside: true } }))).toBe('run:full');
    expect(cellOf(planExec({ ...base, escalationRequested: false, rule: rule('prompt'), approved: { inside: true, outside: true } }))).toBe('ask:sb');
  });
});
