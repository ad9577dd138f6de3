import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { detectSandbox } from '../../lib/sandbox/index.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { inputItems, mentions, outputFor } from '../../testing/requests.js';
import { doneStep, isWorker, readCsv, reportStep, spawnJobStep, task, workerAfterReport, workerFirst, writeText } from './jobs-support.js';

// An agent job whose model and repository work against it: what reaches the disk.

const availability = await detectSandbox();

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
/** Outside every writable root of the workspace-write sandbox. */
let outside: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
  await mkdir('/var/tmp', { recursive: true });
  outside = realpathSync(await mkdtemp('/var/tmp/troupe-jobs-outside-'));
});

afterEach(async () => {
  await rm(outside, { recursive: true, force: true });
  await finishE2E({ model, server, workspace });
});

const isParent = (r: RecordedRequest) => mentions(r, 'run the job') && !isWorker(r);
const answered = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;
const say = (text: string, match: (r: RecordedRequest) => boolean): ScriptStep => ({ kind: 'response', match, items: [{ type: 'message', text }] });

/** The output the parent's model got for its spawn_agents_on_csv call. */
function jobOutput(): string {
  const request = model.requests.find(answered('job'));
  return request ? outputFor(request, 'job')! : '';
}

describe('agent jobs against a hostile model and repository', () => {
  it('refuses a job under a read-only sandbox and approval policy never, before any agent starts', async () => {
    await writeText(workspace, 'in.csv', 'name\na\nb\n');
    const parent = await server.newSession({ cwd: workspace, sandbox_policy: 'read-only', approval_policy: 'never' });
    model.enqueue(spawnJobStep(isParent, { csv_path: 'in.csv', instruction: 'Do {name}' }), say('over', answered('job')));
    await server.turn(parent, 'run the job');
    expect(jobOutput()).toMatch(
      /spawn_agents_on_csv refused: .* the read-only sandbox does not let .* be written, and the approval policy "never" forbids asking/,
    );
    expect(model.requests.filter(isWorker)).toEqual([]);
    expect(existsSync(join(server.home, 'jobs'))).toBe(false);
    expect(readdirSync(workspace)).toEqual(['in.csv']);
  });

  it('asks before writing the output outside the writable roots: denied, nothing runs; approved, it is written there', async () => {
    await writeText(workspace, 'in.csv', 'name\na\n');
    const parent = await server.newSession({ cwd: workspace, sandbox_policy: 'workspace-write', approval_policy: 'on-request' });
    const target = join(outside, 'out.csv');
    const args = { csv_path: 'in.csv', instruction: 'Say {name}', output_csv_path: target };
    const ask = async (callId: string, decision: 'denied' | 'approved') => {
      const from = server.events.length;
      const turn = server.turn(parent, `run the job ${callId}`);
      const request = await server.waitForMsg('tool_approval_request', { session: parent, from, where: (m) => m.call_id === callId });
      expect(request.msg).toMatchObject({
        tool: 'spawn_agents_on_csv',
        reason: expect.stringContaining(`the job writes its results to ${target}, but ${target} is outside the writable roots`),
      });
      server.submit({ type: 'tool_approval', id: callId, decision }, parent);
      await turn;
    };
    model.enqueue(spawnJobStep(isParent, args, 'no'), say('refused', answered('no')));
    await ask('no', 'denied');
    expect(model.requests.filter(isWorker)).toEqual([]);
    expect(readdirSync(outside)).toEqual([]);
    model.enqueue(
      spawnJobStep(isParent, args, 'yes'),
      reportStep((row) => ({ said: row.name })),
      doneStep(),
      say('over', answered('yes')),
    );
    await ask('yes', 'approved');
    expect(readCsv(target)).toEqual([{ name: 'a', status: 'completed', result: '{"said":"a"}', error: '' }]);
  });

  it.skipIf(!availability.ok)("writes nothing through a link an item's agent put in place of the output directory", async () => {
    await writeText(workspace, 'in.csv', 'name\na\n');
    await mkdir(join(workspace, 'results'));
    const parent = await server.newSession({ cwd: workspace, sandbox_policy: 'workspace-write', approval_policy: 'never' });
    // The item's agent may write the workspace: it swaps results/ for a link out of it, then reports.
    const swapped = (r: RecordedRequest) => isWorker(r) && inputItems(r).some((i) => i.type === 'function_call_output' && i.call_id === 'swap');
    model.enqueue(
      spawnJobStep(isParent, { csv_path: 'in.csv', instruction: 'Do {name}', output_csv_path: 'results/out.csv' }),
      {
        kind: 'response',
        match: workerFirst,
        items: [{ type: 'function_call', name: 'shell', call_id: 'swap', arguments: { command: ['sh', '-c', `rmdir results && ln -s ${outside} results`] } }],
      },
      reportStep(() => ({ done: true }), { match: (r) => swapped(r) && !workerAfterReport(r) }),
      doneStep(),
      say('over', answered('job')),
    );
    await server.turn(parent, 'run the job');
    const summary = JSON.parse(jobOutput()) as Record<string, unknown>;
    expect(summary).toMatchObject({
      status: 'failed',
      completed_items: 1,
      job_error: expect.stringContaining(
        `now resolves to ${join(outside, 'out.csv')}: a symbolic link was put in its way while the job ran, so nothing was written`,
      ),
    });
    expect(readdirSync(outside)).toEqual([]);
  });

  it("accepts an item's result only from its own agent: not another item's, another session's or for a job that is not there", async () => {
    await writeText(workspace, 'in.csv', 'name\na\nb\n');
    const parent = await server.newSession({ cwd: workspace, approval_policy: 'never' });
    const outsider = await server.newSession({ cwd: workspace, approval_policy: 'never' });
    const report = (callId: string, jobId: string, itemId: string, result: Record<string, unknown>) => ({
      type: 'function_call' as const,
      name: 'report_agent_job_result',
      call_id: callId,
      arguments: { job_id: jobId, item_id: itemId, result },
    });
    // row-1's agent waits until an unrelated session has tried to report for it, then forges row-2's result.
    let jobId = '';
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const forged = (r: RecordedRequest) => isWorker(r) && outputFor(r, 'forge') !== undefined && outputFor(r, 'report-row-1') === undefined;
    model.enqueue(
      spawnJobStep(isParent, { csv_path: 'in.csv', instruction: 'Say {name}', max_concurrency: 1, output_csv_path: 'out.csv' }),
      {
        kind: 'reply',
        match: workerFirst,
        handler: async (r) => {
          ({ jobId } = task(r));
          await released;
          return { kind: 'response', items: [report('forge', jobId, 'row-2', { said: 'forged' }), report('elsewhere', 'no-such-job', 'row-1', { said: 'x' })] };
        },
      },
      reportStep((row) => ({ said: row.name }), { match: forged }),
      doneStep(),
      reportStep((row) => ({ said: row.name }), { match: (r) => workerFirst(r) && task(r).itemId === 'row-2' }),
      doneStep(),
      say('over', answered('job')),
    );
    const done = server.turn(parent, 'run the job');
    await waitFor(() => jobId !== '', 'the first item to start');
    model.enqueue(
      { kind: 'response', match: (r) => mentions(r, 'intrude'), items: [report('intrude', jobId, 'row-1', { said: 'intruder' })] },
      say('tried', answered('intrude')),
    );
    await server.turn(outsider, 'intrude');
    release();
    await done;
    const refusal = (callId: string) => outputFor(model.requests.find(answered(callId))!, callId);
    expect(refusal('intrude')).toContain(`item row-1 of job ${jobId} is not this agent's to report`);
    expect(refusal('forge')).toContain(`item row-2 of job ${jobId} is not this agent's to report`);
    expect(refusal('elsewhere')).toMatch(/"accepted":false/);
    expect(readCsv(join(workspace, 'out.csv'))).toEqual([
      { name: 'a', status: 'completed', result: '{"said":"a"}', error: '' },
      { name: 'b', status: 'completed', result: '{"said":"b"}', error: '' },
    ]);
  });
});
