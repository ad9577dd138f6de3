import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SessionActivity } from '../lib/durable/index.js';
import type { JobRecord, JobSpec } from '../actors/jobs/records.js';
import { JobRunner, type JobStrays } from '../actors/jobs/runner.js';
import { FileJobStore, THIS_RUNNER, type JobHandle } from '../actors/jobs/store.js';
import type { AgentControl, AgentReport, ToolContext } from '../actors/tools/tool.js';
import { testJobSpec } from './support/job-spec.js';
import { waitFor } from './support/wait.js';

/**
 * A runner that takes up a job whose earlier runner stopped while items' agents were working
 * (on NATS those agents live on, on other workers). Driven directly, with the agents faked: the
 * end-to-end case is in test/e2e/jobs-nats.test.ts.
 */

let home: string;
let jobId: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'troupe-strays-'));
  jobId = randomUUID();
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

function spec(maxRuntimeSeconds: number): JobSpec {
  return testJobSpec({ jobId, dir: home, rows: ['x', 'y', 'z'], maxConcurrency: 3, maxRuntimeSeconds });
}

/** A job (of `job`, by default with a 60 s limit) an earlier runner left with every item's agent started and none reported. */
async function leftRunning(job: JobSpec = spec(60)): Promise<JobHandle> {
  const store = new FileJobStore(home);
  const first = await store.create(job);
  await first.append(
    { type: 'runner_started', ...THIS_RUNNER },
    ...[1, 2, 3].map((n) => ({ type: 'item_started' as const, item_id: `row-${n}`, agent_id: `old-${n}`, attempt: 1 })),
  );
  await first.close();
  return (await store.open(jobId))!;
}

/** Agents of the new runner: each spawn is recorded, and waits until the runner stops waiting. */
function newAgents(): { control: AgentControl; spawned: string[]; closed: string[] } {
  const spawned: string[] = [];
  const closed: string[] = [];
  const report = (agentId: string): AgentReport => ({ agent_id: agentId, nickname: agentId, status: 'running', message: null });
  const control: AgentControl = {
    spawn: async (request) => {
      const id = `new-${/item_id "row-(\d)"/.exec(request.message)![1]}`;
      spawned.push(id);
      return report(id);
    },
    wait: (_ids, { signal, timeoutMs }) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ agents: [], timed_out: true }), timeoutMs);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve({ agents: [], timed_out: false });
        });
      }),
    close: async (agentId) => {
      closed.push(agentId);
      return report(agentId);
    },
    sendInput: async () => {
      throw new Error('not used');
    },
    list: async () => [],
  };
  return { control, spawned, closed };
}

/** Strays whose activity the test sets; every shutdown is recorded. */
function strays(activity: Record<string, SessionActivity>): JobStrays & { closed: string[]; asked: string[] } {
  const closed: string[] = [];
  const asked: string[] = [];
  return {
    closed,
    asked,
    activity: async (agentId) => {
      asked.push(agentId);
      return activity[agentId] ?? 'ended';
    },
    close: async (agentId) => {
      closed.push(agentId);
    },
  };
}

const runner = (handle: JobHandle, control: AgentControl, watched: JobStrays) =>
  new JobRunner(handle, { agents: control, spawnContext: {} as ToolContext, emit: () => undefined, strays: watched });

describe('a runner taking up a job whose earlier runner stopped', () => {
  it('takes the result of an agent that works on, starts afresh only the item whose agent ended its turn, and shuts the old agents down', async () => {
    const handle = await leftRunning();
    const agents = newAgents();
    const activity: Record<string, SessionActivity> = { 'old-1': 'working', 'old-2': 'ended', 'old-3': 'working' };
    const watched = strays(activity);
    const job = runner(handle, agents.control, watched);
    const done = job.run();

    // old-2 ended its turn without a result: its item starts again at once, the others wait.
    await waitFor(() => agents.spawned.length === 1, 'the item whose agent ended to start again');
    expect(agents.spawned).toEqual(['new-2']);
    expect(JSON.parse((await job.report('old-1', 'row-1', { v: 1 }, false)).text)).toMatchObject({ accepted: true });
    expect(JSON.parse((await job.report('new-2', 'row-2', { v: 2 }, false)).text)).toMatchObject({ accepted: true });
    // The same result sent again (its answer lost with a process, or repeated after a failover)
    // is answered as the first was; another agent's result for a done item is refused.
    expect(JSON.parse((await job.report('old-1', 'row-1', { v: 1 }, false)).text)).toMatchObject({ accepted: true });
    expect(JSON.parse((await job.report('new-2', 'row-2', { v: 2 }, false)).text)).toMatchObject({ accepted: true });
    expect(JSON.parse((await job.report('new-2', 'row-1', { v: 9 }, false)).text)).toMatchObject({ accepted: false });
    // An agent of the earlier runner reports for an item that is not its own: refused.
    expect(JSON.parse((await job.report('old-1', 'row-3', { v: 0 }, false)).text)).toMatchObject({ accepted: false });
    // old-3 was looked at again while it worked, then reports.
    await waitFor(() => watched.asked.filter((a) => a === 'old-3').length >= 2, 'old-3 to be looked at again');
    expect(JSON.parse((await job.report('old-3', 'row-3', { v: 3 }, false)).text)).toMatchObject({ accepted: true });

    const summary = await done;
    expect(summary).toMatchObject({ status: 'completed', completed_items: 3, failed_items: 0 });
    expect(agents.spawned).toEqual(['new-2']);
    expect([...handle.state.items.values()].map((i) => [i.spec.item_id, i.result])).toEqual([
      ['row-1', { v: 1 }],
      ['row-2', { v: 2 }],
      ['row-3', { v: 3 }],
    ]);
    expect(watched.closed.sort()).toEqual(['old-1', 'old-2', 'old-3']);
  });

  it("gives an earlier runner's agent one chance to correct a result that does not match output_schema, as its own agents get", async () => {
    const handle = await leftRunning({ ...spec(60), output_schema: { type: 'object', required: ['v'], properties: { v: { type: 'number' } } } });
    const agents = newAgents();
    const watched = strays({ 'old-1': 'working', 'old-2': 'working', 'old-3': 'working' });
    const job = runner(handle, agents.control, watched);
    const done = job.run();
    const reply = async (agentId: string, itemId: string, result: Record<string, unknown>) =>
      JSON.parse((await job.report(agentId, itemId, result, false)).text) as { accepted: boolean; reason?: string };

    const told = await reply('old-1', 'row-1', { v: 'one' });
    expect(told).toMatchObject({ accepted: false });
    expect(told.reason).toMatch(/does not match the job's output_schema .*a second result that does not match fails the item/);
    // Sent again (its answer was lost): the same answer, and it may still correct it.
    expect(await reply('old-1', 'row-1', { v: 'one' })).toEqual(told);
    expect(await reply('old-1', 'row-1', { v: 1 })).toMatchObject({ accepted: true });
    // A second, different result that does not match fails the item; the agent is shut down.
    await reply('old-2', 'row-2', { v: 'two' });
    expect((await reply('old-2', 'row-2', { v: 'still two' })).reason).toMatch(/refused again .* row-2 has failed/);
    expect(await reply('old-2', 'row-2', { v: 2 })).toMatchObject({ accepted: false });
    await waitFor(() => watched.closed.includes('old-2'), "the failed item's agent to be shut down");
    expect(await reply('old-3', 'row-3', { v: 3 })).toMatchObject({ accepted: true });

    expect(await done).toMatchObject({ status: 'completed', completed_items: 2, failed_items: 1 });
    expect(agents.spawned).toEqual([]);
    expect(handle.state.items.get('row-2')).toMatchObject({ status: 'failed', error: expect.stringMatching(/does not match output_schema: .*v/) });
  });

  it('fails an item whose old agent is still working past max_runtime_seconds, counted from when it started; one whose agent ended starts afresh', async () => {
    const handle = await leftRunning(spec(2));
    const agents = newAgents();
    const watched = strays({ 'old-1': 'ended', 'old-2': 'working', 'old-3': 'working' });
    const job = runner(handle, agents.control, watched);
    const done = job.run();
    await waitFor(() => agents.spawned.length === 1, 'the item whose agent ended to start again');
    expect(JSON.parse((await job.report('new-1', 'row-1', { v: 1 }, false)).text)).toMatchObject({ accepted: true });
    const summary = await done;
    expect(summary).toMatchObject({ status: 'completed', completed_items: 1, failed_items: 2 });
    expect(summary.failed_item_errors.map((e) => [e.item_id, e.last_error])).toEqual([
      ['row-2', expect.stringMatching(/max_runtime_seconds \(2 s\)/)],
      ['row-3', expect.stringMatching(/max_runtime_seconds \(2 s\)/)],
    ]);
    expect(agents.spawned).toEqual(['new-1']);
    expect(watched.closed.sort()).toEqual(['old-1', 'old-2', 'old-3']);
  });

  it('cancelled while it watches: the old agents are shut down, nothing starts, and their late results are refused', async () => {
    const handle = await leftRunning();
    const agents = newAgents();
    const watched = strays({ 'old-1': 'working', 'old-2': 'working', 'old-3': 'working' });
    const job = runner(handle, agents.control, watched);
    const done = job.run();
    await waitFor(() => watched.asked.length >= 3, 'the old agents to be looked at');
    job.cancel('enough');
    const summary = await done;
    expect(summary).toMatchObject({ status: 'cancelled', completed_items: 0, cancelled_items: 3 });
    expect(agents.spawned).toEqual([]);
    expect(watched.closed.sort()).toEqual(['old-1', 'old-2', 'old-3']);
    expect(JSON.parse((await job.report('old-1', 'row-1', { v: 1 }, false)).text)).toMatchObject({ accepted: false });
  });
});

/**
 * `handle` whose appends of a record of `type` wait until `release` (a slow log); `calls` notes
 * those appends, the report service being started and the handle being closed, in order.
 */
function gated(handle: JobHandle, type: JobRecord['type']) {
  const calls: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const slow: JobHandle = {
    get state() {
      return handle.state;
    },
    append: async (...records) => {
      if (records.some((r) => r.type === type)) {
        calls.push(type);
        await gate;
      }
      return handle.append(...records);
    },
    onCancel: (listener) => handle.onCancel(listener),
    serveReports: () => void calls.push('serve'),
    close: async () => {
      calls.push('close');
      await handle.close();
    },
  };
  return { handle: slow, calls, held: () => calls.filter((c) => c === type).length, release: open };
}

const answer = async (output: Promise<{ text: string }>) => JSON.parse((await output).text) as { accepted: boolean; reason?: string };

describe('a result sent again by the agent that sent it', () => {
  it("is taken from an earlier runner's agent that reports while the runner is still taking the job up", async () => {
    const handle = await leftRunning();
    const agents = newAgents();
    const job = runner(handle, agents.control, strays({ 'old-1': 'working', 'old-2': 'working', 'old-3': 'working' }));
    const done = job.run();
    // An agent on the runner's own worker finds it in runningJobs at once.
    const reports = [1, 2, 3].map((n) => answer(job.report(`old-${n}`, `row-${n}`, { v: n }, false)));
    for (const report of reports) expect(await report).toMatchObject({ accepted: true });
    expect(await done).toMatchObject({ status: 'completed', completed_items: 3 });
    expect(agents.spawned).toEqual([]);
  });

  it("is accepted while the first copy is still on its way to the log (an earlier runner's agent)", async () => {
    const slow = gated(await leftRunning(), 'item_result');
    const agents = newAgents();
    const watched = strays({ 'old-1': 'working', 'old-2': 'ended', 'old-3': 'ended' });
    const job = runner(slow.handle, agents.control, watched);
    const done = job.run();
    await waitFor(() => watched.asked.includes('old-1'), 'old-1 to be watched');
    const first = answer(job.report('old-1', 'row-1', { v: 1 }, false));
    await waitFor(() => slow.held() === 1, 'the first copy to be logging');
    // The watch of old-1 wakes (it reported); the first copy's answer is late, and the agent's
    // store sends the result again.
    await new Promise((resolve) => setImmediate(resolve));
    const again = answer(job.report('old-1', 'row-1', { v: 1 }, false));
    slow.release();
    expect(await first).toMatchObject({ accepted: true });
    expect(await again).toMatchObject({ accepted: true });
    await waitFor(() => agents.spawned.length === 2, 'the two ended items to start again');
    await job.report('new-2', 'row-2', { v: 2 }, false);
    await job.report('new-3', 'row-3', { v: 3 }, false);
    expect(await done).toMatchObject({ status: 'completed', completed_items: 3 });
    expect(agents.spawned.sort()).toEqual(['new-2', 'new-3']);
  });

  it('is refused when it is not the result recorded, which stays', async () => {
    const handle = await leftRunning();
    const agents = newAgents();
    const watched = strays({ 'old-1': 'working', 'old-2': 'ended', 'old-3': 'ended' });
    const job = runner(handle, agents.control, watched);
    const done = job.run();
    await waitFor(() => watched.asked.includes('old-1'), 'old-1 to be watched');
    expect(await answer(job.report('old-1', 'row-1', { v: 1 }, false))).toMatchObject({ accepted: true });
    expect(await answer(job.report('old-1', 'row-1', { v: 'other' }, false))).toMatchObject({ accepted: false });
    await waitFor(() => agents.spawned.length === 2, 'the two ended items to start again');
    expect(await answer(job.report('new-2', 'row-2', { v: 2, w: -0 }, false))).toMatchObject({ accepted: true });
    expect(await answer(job.report('new-2', 'row-2', { v: 'changed', w: 0 }, false))).toMatchObject({ accepted: false });
    // The same JSON value: key order and the sign of a zero (the log stores -0 as 0) do not count.
    expect(await answer(job.report('new-2', 'row-2', { w: -0, v: 2 }, false))).toMatchObject({ accepted: true });
    await job.report('new-3', 'row-3', { v: 3 }, false);
    await done;
    expect([...handle.state.items.values()].map((i) => JSON.stringify(i.result))).toEqual(['{"v":1}', '{"v":2,"w":0}', '{"v":3}']);
  });

  it('that does not match output_schema is answered as the first was, without failing the item', async () => {
    const store = new FileJobStore(home);
    const handle = await store.create({ ...spec(60), output_schema: { type: 'object', required: ['v'], properties: { v: { type: 'number' } } } });
    const agents = newAgents();
    const job = runner(handle, agents.control, strays({}));
    const done = job.run();
    await waitFor(() => agents.spawned.length === 3, 'the items to start');
    const first = await job.report('new-1', 'row-1', { v: 'x' }, false);
    expect(first.text).toMatch(/does not match/);
    // Sent again (the answer was lost): the same answer, and the agent may still correct it.
    expect(await job.report('new-1', 'row-1', { v: 'x' }, false)).toEqual(first);
    expect(await answer(job.report('new-1', 'row-1', { v: 1 }, false))).toMatchObject({ accepted: true });
    // A second result that differs and does not match fails the item, as before.
    await job.report('new-2', 'row-2', { v: 'x' }, false);
    expect((await job.report('new-2', 'row-2', { v: 'y' }, false)).text).toMatch(/has failed/);
    await job.report('new-3', 'row-3', { v: 3 }, false);
    expect(await done).toMatchObject({ status: 'completed', completed_items: 2, failed_items: 1 });
  });
});

describe('a runner stopped while it takes the job up', () => {
  it('(cancel, a new job: its turn interrupted at once) ends cancelled without starting an item', async () => {
    const slow = gated(await new FileJobStore(home).create(spec(60)), 'runner_started');
    const agents = newAgents();
    const job = runner(slow.handle, agents.control, strays({}));
    const done = job.run();
    job.cancel('the turn that started the job was interrupted');
    await waitFor(() => slow.calls.includes('runner_started'), 'the runner to start logging');
    slow.release();
    expect(await done).toMatchObject({ status: 'cancelled', cancelled_items: 3 });
    expect(slow.calls).toEqual(['runner_started', 'serve', 'close']);
    expect(agents.spawned).toEqual([]);
  });

  for (const stop of ['cancel', 'pause'] as const) {
    it(`(${stop}) shuts the earlier runner's agents down and serves no reports after it closed the job`, async () => {
      const slow = gated(await leftRunning(), 'runner_started');
      const agents = newAgents();
      const watched = strays({ 'old-1': 'working', 'old-2': 'working', 'old-3': 'working' });
      const job = runner(slow.handle, agents.control, watched);
      const done = job.run();
      await waitFor(() => slow.calls.includes('runner_started'), 'the runner to start logging');
      const stopped = stop === 'cancel' ? (job.cancel('the turn was interrupted'), done) : job.pause();
      slow.release();
      await stopped;
      expect((await done).status).toBe(stop === 'cancel' ? 'cancelled' : 'running');
      expect(slow.calls.filter((c) => c !== 'runner_started')).toEqual(['serve', 'close']);
      await waitFor(() => watched.closed.length === 3, "the earlier runner's agents to be shut down");
      expect(agents.spawned).toEqual([]);
    });
  }
});
