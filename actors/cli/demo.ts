import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeModelServer, type ScriptStep } from '../../test/support/index.js';
import { createRuntime } from '../runtime.js';
import { denyingApprover, runOneTurn, terminalApprover } from './exec.js';
import { MODEL_FLAGS, parseArgs, wireApiFlag } from './main.js';
import { TranscriptRenderer } from './render.js';

const PROMPT = 'The tests of this project fail. Find the bug, fix it, and show that the tests pass.';

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

/** A small project with one bug, in a fresh temporary directory. */
async function makeWorkspace(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-demo-'));
  await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name: 'demo', type: 'module', private: true }, null, 2)}\n`);
  await writeFile(join(dir, 'stats.js'), STATS_JS);
  await writeFile(join(dir, 'test.js'), TEST_JS);
  return dir;
}

/** What the built-in scripted model does: the moves a capable model would make on this task. */
function script(dir: string): ScriptStep[] {
  const plan = (statuses: ['pending' | 'in_progress' | 'completed', 'pending' | 'in_progress' | 'completed', 'pending' | 'in_progress' | 'completed']) => ({
    type: 'function_call' as const,
    name: 'update_plan',
    arguments: {
      plan: [
        { step: 'Reproduce the failure', status: statuses[0] },
        { step: 'Find and fix the bug', status: statuses[1] },
        { step: 'Run the tests again', status: statuses[2] },
      ],
    },
  });
  return [
    {
      kind: 'response',
      items: [
        { type: 'reasoning', text: 'Run the tests first to see what fails.' },
        plan(['in_progress', 'pending', 'pending']),
        { type: 'function_call', name: 'shell', arguments: { command: ['node', 'test.js'] } },
      ],
    },
    {
      kind: 'response',
      items: [
        { type: 'message', text: 'The mean is wrong. Let me read stats.js.' },
        { type: 'function_call', name: 'read_file', arguments: { file_path: join(dir, 'stats.js') } },
      ],
    },
    {
      kind: 'response',
      items: [
        plan(['completed', 'in_progress', 'pending']),
        {
          type: 'function_call',
          name: 'apply_patch',
          arguments: {
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
          },
        },
      ],
    },
    {
      kind: 'response',
      items: [plan(['completed', 'completed', 'in_progress']), { type: 'function_call', name: 'shell', arguments: { command: ['node', 'test.js'] } }],
    },
    { kind: 'response', items: [plan(['completed', 'completed', 'completed'])] },
    {
      kind: 'response',
      items: [
        { type: 'message', text: '`mean` divided by `length - 1` instead of `length`. I fixed the divisor in stats.js, and `node test.js` now passes all 3 checks.' },
      ],
    },
  ];
}

/** `troupe demo` (and `npm start`): a real task with real tools, on a scripted model unless a key is set. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { ...MODEL_FLAGS, keep: { type: 'boolean', default: false } }, strict: true });
  const dir = await makeWorkspace();
  const scripted = !process.env.OPENAI_API_KEY;
  const server = scripted ? await startFakeModelServer({ steps: script(dir) }) : null;
  const home = scripted ? join(dir, '.troupe-home') : undefined;
  const runtime = createRuntime({
    model: values.model ?? (scripted ? 'troupe-scripted-demo' : undefined),
    wireApi: wireApiFlag(values['wire-api']),
    ...(server ? { baseURL: server.url, apiKey: 'not-needed' } : {}),
    ...(home ? { home } : {}),
  });
  const renderer = new TranscriptRenderer(process.stderr);
  process.stderr.write(
    scripted
      ? `troupe demo: a scripted model (no OPENAI_API_KEY set) drives real tools in ${dir}\n\n`
      : `troupe demo: the model works in ${dir}\n\n`,
  );
  try {
    const { lastMessage, failed } = await runOneTurn({
      runtime,
      config: { cwd: dir, approval_policy: 'on-request', sandbox_policy: 'workspace-write' },
      prompt: PROMPT,
      approver: process.stdin.isTTY ? terminalApprover() : denyingApprover(),
      onEvent: (event) => renderer.render(event),
    });
    renderer.close();
    if (lastMessage) process.stdout.write(`\n${lastMessage}\n`);
    return failed ? 1 : 0;
  } finally {
    await runtime.close();
    await server?.close();
    if (values.keep) process.stderr.write(`workspace kept: ${dir}\n`);
    else await rm(dir, { recursive: true, force: true });
  }
}
