/**
 * A typed-result pipeline: each stage is one run whose answer is validated by a zod schema, so
 * the next stage gets typed data, not text to parse.
 *
 *   npm run example -- typed
 *
 * In your own project, import from 'troupe' instead of '../index.js'.
 */
import { z } from 'zod';
import { createRuntime } from '../index.js';
import type { RecordedRequest, ScriptStep } from '../testing/index.js';
import { exampleModel } from './support.js';

const Triage = z.object({
  severity: z.enum(['low', 'medium', 'high']),
  component: z.string(),
  summary: z.string(),
});

const Plan = z.object({
  steps: z.array(z.string()).min(1),
  risky: z.boolean(),
});

const REPORTS = ['Checkout charges customers twice when they double-click Pay.', 'The settings page has a typo: "Preferances".'];

/** The scripted model: a triage for each report, then a plan for the high-severity one. */
function script(): ScriptStep[] {
  const asked = (text: string) => (r: RecordedRequest) => JSON.stringify(r.body.input).includes(text);
  const answer = (text: string, value: unknown): ScriptStep => ({
    kind: 'response',
    match: asked(text),
    items: [{ type: 'message', text: JSON.stringify(value) }],
  });
  return [
    answer('double-click', { severity: 'high', component: 'checkout', summary: 'Duplicate charges on double submit.' }),
    answer('Preferances', { severity: 'low', component: 'settings', summary: 'Typo in a heading.' }),
    answer('Plan a fix', {
      steps: ['Disable the Pay button after the first click', 'Make the charge request idempotent with a key', 'Add a test that submits twice'],
      risky: true,
    }),
  ];
}

const model = await exampleModel(script);
const runtime = createRuntime({ ...model.options });
try {
  for (const report of REPORTS) {
    const triage = await runtime.run({ prompt: `Triage this bug report: ${report}`, output: Triage, approval_policy: 'never', sandbox_policy: 'read-only' });
    // triage.output is typed: { severity: 'low' | 'medium' | 'high'; component: string; summary: string }
    console.log(`[${triage.output.severity}] ${triage.output.component}: ${triage.output.summary}`);
    if (triage.output.severity !== 'high') continue;
    const plan = await runtime.run({
      prompt: `Plan a fix for this ${triage.output.component} bug: ${triage.output.summary}`,
      output: Plan,
      approval_policy: 'never',
      sandbox_policy: 'read-only',
    });
    plan.output.steps.forEach((step, i) => console.log(`  ${i + 1}. ${step}`));
    if (plan.output.risky) console.log('  (risky: review before merging)');
  }
} finally {
  await runtime.close();
  await model.close();
}
