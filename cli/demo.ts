import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mentions, outputFor, spawnedAgentIds, startFakeModelServer, type RecordedRequest, type ScriptItem, type ScriptStep } from '../testing/index.js';
import { execa } from 'execa';
import { createRuntime, type Runtime, type Session } from '../actors/runtime.js';
import { REVIEW_INSTRUCTIONS } from '../actors/tasks/index.js';
import { MAX_WAIT_MS } from '../actors/agents/tools.js';
import { detectSandbox } from '../lib/sandbox/detect.js';
import { denyingApprover, runOneTurn, terminalApprover, userTurn } from './exec.js';
import { MODEL_FLAGS, parseArgs, wireApiFlag } from './flags.js';
import { TranscriptRenderer } from './render.js';

const PROMPT =
  'Get this project healthy: find out what the tests say, fix what is broken, and record which Node.js version is installed. Split the work between sub-agents.';

const STATS_JS = `// Small statistics helpers.
export function sum(values) {
  return values.reduce((total, v) => total + v, 0);
}

export function mean(values) {
  if (values.length === 0) return 0;
  return sum(values) / (values.length - 1);
}
`;

const TEST_JS = `import assert from 'node:assert/strict';
import { mean, sum } from './stats.js';

assert.equal(sum([1, 2, 3]), 6);
assert.equal(mean([2, 4, 6]), 4);
assert.equal(mean([]), 0);
console.log('all 3 checks passed');
`;

/**
 * A small project with one bug, in a fresh temporary directory, committed to git when git is
 * installed (so the demo can review its own change, and undo could restore it).
 */
async function makeWorkspace(): Promise<{ dir: string; git: boolean }> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-demo-'));
  await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name: 'demo', type: 'module', private: true }, null, 2)}\n`);
  await writeFile(join(dir, 'stats.js'), STATS_JS);
  await writeFile(join(dir, 'test.js'), TEST_JS);
  const git = (...args: string[]) =>
    execa('git', args, {
      cwd: dir,
      env: {
        GIT_AUTHOR_NAME: 'troupe demo',
        GIT_AUTHOR_EMAIL: 'demo@troupe.invalid',
        GIT_COMMITTER_NAME: 'troupe demo',
        GIT_COMMITTER_EMAIL: 'demo@troupe.invalid',
      },
    });
  try {
    await git('init', '-q');
    await git('add', '.');
    await git('commit', '-q', '-m', 'The demo project, with its bug');
    return { dir, git: true };
  } catch {
    return { dir, git: false };
  }
}

/** The scripted reviewer's verdict on the fix. */
function reviewVerdict(dir: string): string {
  return JSON.stringify({
    findings: [
      {
        title: 'mean() of an empty list hides the mistake',
        body: 'Returning 0 for an empty list makes a missing input look like a real average of zero. Consider throwing, or returning NaN, and test that case.',
        confidence_score: 0.55,
        priority: 3,
        code_location: { absolute_file_path: join(dir, 'stats.js'), line_range: { start: 7, end: 7 } },
      },
    ],
    overall_correctness: 'patch is correct',
    overall_explanation: 'The divisor is now the number of values, which is what a mean needs; the tests cover it.',
    overall_confidence_score: 0.9,
  });
}

type Status = 'pending' | 'in_progress' | 'completed';

/** What the built-in scripted model does: the moves a capable model would make on this task. */
function script(dir: string): ScriptStep[] {
  const plan = (callId: string, s: [Status, Status, Status]): ScriptItem => ({
    type: 'function_call',
    name: 'update_plan',
    call_id: callId,
    arguments: {
      plan: [
        { step: 'Hand the three jobs to sub-agents', status: s[0] },
        { step: 'Collect their results', status: s[1] },
        { step: 'Run the tests once more', status: s[2] },
      ],
    },
  });
  const call = (callId: string, name: string, args: Record<string, unknown>): ScriptItem => ({ type: 'function_call', name, call_id: callId, arguments: args });
  const say = (text: string): ScriptItem => ({ type: 'message', text });
  const after = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;
  const before = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) === undefined;
  const task = (marker: string) => (r: RecordedRequest) => mentions(r, marker);
  const both =
    (...tests: ((r: RecordedRequest) => boolean)[]) =>
    (r: RecordedRequest) =>
      tests.every((t) => t(r));
  const TESTS = 'Run the test suite';
  const FIX = 'Fix the bug in stats.js';
  const NODE = 'Record which Node.js version';
  const isParent = task('Get this project healthy');
  return [
    // The parent starts the test run and the version check; the fix waits for the test report.
    {
      kind: 'response',
      match: both(isParent, before('spawn-tests')),
      items: [
        { type: 'reasoning', text: 'First find out what the tests say; the version check can run alongside. The fixer then starts from the failure.' },
        plan('plan-1', ['in_progress', 'pending', 'pending']),
        call('spawn-tests', 'spawn_agent', { message: `${TESTS} with \`node test.js\` and report what fails.` }),
        call('spawn-node', 'spawn_agent', { message: `${NODE} is installed on this machine.` }),
      ],
    },
    {
      kind: 'reply',
      match: both(isParent, after('spawn-node'), before('wait-tests')),
      handler: (r) => ({ kind: 'response', items: [call('wait-tests', 'wait_agent', { agent_ids: spawnedAgentIds(r).slice(0, 1), timeout_ms: MAX_WAIT_MS })] }),
    },
    {
      kind: 'reply',
      match: both(isParent, after('wait-tests'), before('spawn-fix')),
      handler: (r) => {
        const report = agentMessages(outputFor(r, 'wait-tests'))[0] ?? 'the test runner did not answer';
        return { kind: 'response', items: [call('spawn-fix', 'spawn_agent', { message: `${FIX}. The test runner reported: ${report}` })] };
      },
    },
    // The test runner reports what the suite printed.
    { kind: 'response', match: both(task(TESTS), before('tests-run')), items: [call('tests-run', 'shell', { command: ['node', 'test.js'] })] },
    {
      kind: 'reply',
      match: both(task(TESTS), after('tests-run')),
      handler: (r) => ({ kind: 'response', items: [say(testReport(outputFor(r, 'tests-run') ?? ''))] }),
    },
    // The fixer.
    { kind: 'response', match: both(task(FIX), before('fix-read')), items: [call('fix-read', 'read_file', { file_path: join(dir, 'stats.js') })] },
    {
      kind: 'response',
      match: both(task(FIX), after('fix-read'), before('fix-patch')),
      items: [
        say('mean() divides by length - 1; it should divide by length.'),
        call('fix-patch', 'apply_patch', {
          input: [
            '*** Begin Patch',
            '*** Update File: stats.js',
            '@@ export function mean(values) {',
            '   if (values.length === 0) return 0;',
            '-  return sum(values) / (values.length - 1);',
            '+  return sum(values) / values.length;',
            ' }',
            '*** End Patch',
          ].join('\n'),
        }),
      ],
    },
    { kind: 'response', match: both(task(FIX), after('fix-patch')), items: [say('Fixed: mean() now divides by values.length.')] },
    // The one that needs the user's approval: it asks to run outside the sandbox.
    {
      kind: 'response',
      match: both(task(NODE), before('node-version')),
      items: [
        call('node-version', 'shell', {
          command: ['node', '--version'],
          with_escalated_permissions: true,
          justification: 'Reading the system-wide Node.js installation',
        }),
      ],
    },
    {
      kind: 'reply',
      match: both(task(NODE), after('node-version')),
      handler: (r) => {
        const output = outputFor(r, 'node-version') ?? '';
        const version = /v\d+\.\d+\.\d+/.exec(output)?.[0];
        return { kind: 'response', items: [say(version ? `Node.js ${version} is installed.` : 'I was not allowed to check the Node.js version.')] };
      },
    },
    // The parent collects the results, checks the fix itself, and reports what it saw.
    {
      kind: 'reply',
      match: both(isParent, after('spawn-fix'), before('wait-all')),
      handler: (r) => ({
        kind: 'response',
        items: [
          plan('plan-2', ['completed', 'in_progress', 'pending']),
          call('wait-all', 'wait_agent', { agent_ids: spawnedAgentIds(r).slice(1), timeout_ms: MAX_WAIT_MS }),
        ],
      }),
    },
    {
      kind: 'response',
      match: both(isParent, after('wait-all'), before('verify')),
      items: [plan('plan-3', ['completed', 'completed', 'in_progress']), call('verify', 'shell', { command: ['node', 'test.js'] })],
    },
    { kind: 'response', match: both(isParent, after('verify'), before('plan-4')), items: [plan('plan-4', ['completed', 'completed', 'completed'])] },
    {
      kind: 'reply',
      match: both(isParent, after('plan-4')),
      handler: (r) => {
        const results = [...agentResults(outputFor(r, 'wait-tests')), ...agentResults(outputFor(r, 'wait-all'))];
        const lines = results.map((a) => `- ${a.nickname}: ${a.message ?? '(no answer)'}`);
        const verdict = testsPassed(outputFor(r, 'verify') ?? '') ? 'The tests pass now.' : `The tests still fail. ${testReport(outputFor(r, 'verify') ?? '')}`;
        return { kind: 'response', items: [say(['Done. My three agents reported:', ...lines, verdict].join('\n'))] };
      },
    },
  ];
}

/** The agents of a wait_agent result, in the order they were asked for. */
function agentResults(output: string | undefined): { nickname: string; message: string | null }[] {
  return (JSON.parse(output ?? '{"agents":[]}') as { agents: { nickname: string; message: string | null }[] }).agents;
}

function agentMessages(output: string | undefined): string[] {
  return agentResults(output).flatMap((a) => (a.message ? [a.message] : []));
}

function testsPassed(output: string): boolean {
  return output.includes('Exit code: 0');
}

/** What the scripted test runner says about a run of the suite: pass, or the assertion that failed. */
function testReport(output: string): string {
  if (testsPassed(output)) return 'The suite passes: all 3 checks.';
  const mismatch = /^(.+) !== (.+)$/m.exec(output);
  const where = /test\.js:(\d+)/.exec(output);
  if (!mismatch) return 'The suite fails, and its output names no assertion.';
  return `The suite fails${where ? ` at test.js line ${where[1]}` : ''}: a check got ${mismatch[1]!.trim()} where ${mismatch[2]!.trim()} was expected.`;
}

/** Review the session's uncommitted changes and wait for the review to finish. */
async function reviewChanges(runtime: Runtime, session: Session): Promise<void> {
  const id = 'demo-review';
  const done = new Promise<void>((resolve) => {
    const stop = runtime.onEvent((event) => {
      if (
        event.session_id === session.id &&
        event.id === id &&
        (event.msg.type === 'task_complete' || event.msg.type === 'turn_aborted' || event.msg.type === 'error')
      ) {
        stop();
        resolve();
      }
    });
  });
  await session.submit({ type: 'review', review_request: { target: { type: 'uncommitted_changes' }, user_facing_hint: 'the fix to stats.js' } }, id);
  await done;
}

/** `troupe demo` (and `npm start`): a real task with real tools, on a scripted model unless a key is set. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { ...MODEL_FLAGS, keep: { type: 'boolean', default: false } }, strict: true });
  const { dir, git } = await makeWorkspace();
  const scripted = !process.env.OPENAI_API_KEY;
  const server = scripted
    ? await startFakeModelServer({
        steps: [
          ...script(dir),
          { kind: 'response', match: (r) => r.body.instructions === REVIEW_INSTRUCTIONS, items: [{ type: 'message', text: reviewVerdict(dir) }] },
        ],
      })
    : null;
  // Rollouts of a scripted run are thrown away with it, outside the reviewed workspace.
  const home = scripted ? await mkdtemp(join(tmpdir(), 'troupe-demo-home-')) : undefined;
  const runtime = createRuntime({
    model: values.model ?? (scripted ? 'troupe-scripted-demo' : undefined),
    wireApi: wireApiFlag(values['wire-api']),
    ...(server ? { baseURL: server.url, apiKey: 'not-needed' } : {}),
    ...(home ? { home } : {}),
  });
  const renderer = new TranscriptRenderer(process.stderr);
  // The demo's workspace is a throwaway directory: without a sandbox backend it runs
  // unconfined rather than not at all, and says so.
  const sandbox = await detectSandbox();
  const sandboxPolicy = sandbox.ok ? 'workspace-write' : 'danger-full-access';
  if (!sandbox.ok) {
    process.stderr.write(`troupe demo: no sandbox available (${sandbox.reason}); running unsandboxed in the temporary workspace.\n`);
  }
  process.stderr.write(
    scripted ? `troupe demo: a scripted model (no OPENAI_API_KEY set) drives real tools in ${dir}\n\n` : `troupe demo: the model works in ${dir}\n\n`,
  );
  try {
    const { lastMessage, failed } = await runOneTurn({
      runtime,
      open: (rt) => rt.newSession({ cwd: dir, approval_policy: 'on-request', sandbox_policy: sandboxPolicy }),
      op: userTurn(PROMPT),
      approver: process.stdin.isTTY ? terminalApprover(() => renderer.hold()) : denyingApprover(),
      onEvent: (event) => renderer.render(event),
      // Then a review thread, isolated from the work it reviews, looks at the change.
      after: git ? (session) => reviewChanges(runtime, session) : undefined,
    });
    renderer.close();
    if (lastMessage) process.stdout.write(`\n${lastMessage}\n`);
    return failed ? 1 : 0;
  } finally {
    await runtime.close();
    await server?.close();
    if (home) await rm(home, { recursive: true, force: true });
    if (values.keep) process.stderr.write(`workspace kept: ${dir}\n`);
    else await rm(dir, { recursive: true, force: true });
  }
}
