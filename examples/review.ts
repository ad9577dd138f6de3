/**
 * A review thread: the change is reviewed in a child session of its own, which sees the diff
 * but none of the parent's conversation; its findings come back as typed data.
 *
 *   npm run example -- review
 *
 * In your own project, import from 'troupe' instead of '../index.js'.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRuntime } from '../index.js';
import type { ReviewOutput } from '../protocol/index.js';
import type { ScriptStep } from '../testing/index.js';
import { exampleModel, workspace } from './support.js';

const BEFORE = 'export function average(values) {\n  return values.reduce((a, b) => a + b, 0) / values.length;\n}\n';
const AFTER = 'export function average(values) {\n  if (values.length === 0) return 0;\n  return values.reduce((a, b) => a + b, 0) / (values.length + 1);\n}\n';

const project = await workspace({ 'average.js': BEFORE });
const git = (...args: string[]) =>
  execFileSync('git', args, {
    cwd: project.dir,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'example',
      GIT_AUTHOR_EMAIL: 'example@troupe.invalid',
      GIT_COMMITTER_NAME: 'example',
      GIT_COMMITTER_EMAIL: 'example@troupe.invalid',
    },
  });
git('init', '-q');
git('add', '.');
git('commit', '-q', '-m', 'average()');
await writeFile(join(project.dir, 'average.js'), AFTER);

/** The scripted reviewer: it finds the off-by-one the change brings in. */
function script(): ScriptStep[] {
  const verdict: ReviewOutput = {
    findings: [
      {
        title: 'average() divides by one too many',
        body: 'The divisor became values.length + 1, so every average is too small. It should stay values.length.',
        confidence_score: 0.95,
        priority: 1,
        code_location: { absolute_file_path: join(project.dir, 'average.js'), line_range: { start: 3, end: 3 } },
      },
    ],
    overall_correctness: 'patch is incorrect',
    overall_explanation: 'The empty-list guard is fine; the new divisor is wrong.',
    overall_confidence_score: 0.9,
  };
  return [{ kind: 'response', items: [{ type: 'message', text: JSON.stringify(verdict) }] }];
}

const model = await exampleModel(script);
const runtime = createRuntime({ ...model.options });
try {
  const session = await runtime.newSession({ cwd: project.dir, approval_policy: 'never', sandbox_policy: 'read-only' });
  const reviewers = new Set<string>();
  const done = new Promise<ReviewOutput | null>((resolve) => {
    runtime.onEvent((event) => {
      if (event.msg.type === 'session_configured' && event.msg.parent_session_id === session.id) reviewers.add(event.msg.session_id);
      if (event.session_id === session.id && event.msg.type === 'exited_review_mode') resolve(event.msg.review_output);
    });
  });
  await session.submit({ type: 'review', review_request: { target: { type: 'uncommitted_changes' } } });
  const review = await done;
  console.log(`reviewed in ${reviewers.size} thread(s) of its own, apart from session ${session.id}`);
  console.log(`verdict: ${review?.overall_correctness ?? 'none'}: ${review?.overall_explanation ?? ''}`);
  for (const finding of review?.findings ?? []) {
    console.log(`[P${finding.priority}] ${finding.title} (${finding.code_location.absolute_file_path}:${finding.code_location.line_range.start})`);
  }
  await session.shutdown();
} finally {
  await runtime.close();
  await project.dispose();
  await model.close();
}
