import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobSpec, NewJobRecord } from '../actors/jobs/records.js';
import { NatsJobStore } from '../actors/jobs/nats-store.js';
import { JobRunner, type JobStrays } from '../actors/jobs/runner.js';
import { THIS_RUNNER, type JobHandle, type ReportRequest } from '../actors/jobs/store.js';
import { ABORTED_OUTPUT } from '../lib/history/conversation-history.js';
import type { AgentControl, ToolContext } from '../actors/tools/tool.js';
import { natsServerWithConnection } from './support/nats-connection.js';
import { testJobSpec } from './support/job-spec.js';
import { waitFor } from './support/wait.js';

/**
 * An item's result passed on through the NATS job store (NatsJobStore.report) while the job's
 * runner dies or changes: the result is sent again, and a runner answers a copy of a result it
 * logged as it answered the first. The runner is real; the agents are not (none is spawned).
 * A report whose call is aborted stops waiting at once; one to a job that has ended is answered
 * from the item's recorded outcome.
 */

const nats = natsServerWithConnection();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'troupe-report-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spec(jobId: string): JobSpec {
  return testJobSpec({ jobId, dir, rows: ['x', 'y'] });
}

const noAgents = {
  spawn: async () => {
    throw new Error('no item should start again');
  },
} as unknown as AgentControl;

/** The earlier runner's agents, working until told otherwise. */
const working: JobStrays = { activity: async () => 'working', close: async () => undefined };

const runner = (handle: JobHandle) => new JobRunner(handle, { agents: noAgents, spawnContext: {} as ToolContext, emit: () => undefined, strays: working });

const answer = (output: { text: string }) => JSON.parse(output.text) as { accepted: boolean; reason?: string };

/** The signal of a call that is never aborted. */
const going = new AbortController().signal;

const item = (agentId: string, itemId: string, result: Record<string, unknown>): ReportRequest => ({ agent_id: agentId, item_id: itemId, result, stop: false });

/** A job in a fresh namespace whose earlier runner started agent-1 on row-1 and agent-2 on row-2, then `more`. */
async function leftByEarlierRunner(...more: NewJobRecord[]) {
  const store = await NatsJobStore.open(nats.connection, `r${randomUUID().slice(0, 8)}`);
  const jobId = randomUUID();
  const first = await store.create(spec(jobId));
  await first.append(
    { type: 'runner_started', ...THIS_RUNNER },
    { type: 'item_started', item_id: 'row-1', agent_id: 'agent-1', attempt: 1 },
    { type: 'item_started', item_id: 'row-2', agent_id: 'agent-2', attempt: 1 },
    ...more,
  );
  return { store, jobId, first };
}

describe('a result passed on through the NATS job store', { timeout: 30_000 }, () => {
  it('is sent again when the runner that held it died without answering, and the next runner takes it', async () => {
    const { store, jobId, first } = await leftByEarlierRunner();
    // The earlier runner takes the request and dies with it.
    const held: string[] = [];
    const dying = nats.connection.subscribe(store.subjects.jobReport(jobId), { callback: (_error, message) => void held.push(message.string()) });
    const reported = store.report(jobId, item('agent-1', 'row-1', { v: 1 }), going);
    await waitFor(() => held.length === 1, 'the earlier runner to take the request');
    dying.unsubscribe();
    await first.close();

    const job = runner((await store.open(jobId))!);
    const done = job.run();
    expect(answer(await reported)).toMatchObject({ accepted: true });
    expect(answer(await store.report(jobId, item('agent-2', 'row-2', { v: 2 }), going))).toMatchObject({ accepted: true });
    expect(await done).toMatchObject({ status: 'completed', completed_items: 2 });
  });

  it('is answered as the first by a runner that logged it; a different result from the same agent is refused', async () => {
    // The earlier runner logged agent-1's result and died before its answer went out.
    const { store, jobId, first } = await leftByEarlierRunner({
      type: 'item_result',
      item_id: 'row-1',
      agent_id: 'agent-1',
      result: { v: 1, nested: { a: [1, 2] }, z: -0 },
    });
    await first.close();
    const handle = (await store.open(jobId))!;
    const job = runner(handle);
    const done = job.run();
    const report = (agentId: string, itemId: string, result: Record<string, unknown>) => store.report(jobId, item(agentId, itemId, result), going);
    expect(answer(await report('agent-1', 'row-1', { nested: { a: [1, 2] }, v: 1, z: 0 }))).toMatchObject({ accepted: true });
    // From an agent on the runner's worker, not through JSON: the same value as logged.
    expect(answer(await job.report('agent-1', 'row-1', { z: -0, nested: { a: [1, 2] }, v: 1 }, false))).toMatchObject({ accepted: true });
    expect(answer(await report('agent-1', 'row-1', { v: 9 }))).toMatchObject({ accepted: false });
    expect(answer(await report('agent-2', 'row-1', { v: 1, nested: { a: [1, 2] }, z: 0 }))).toMatchObject({ accepted: false });
    expect(answer(await report('agent-1', 'row-2', { v: 2 }))).toMatchObject({ accepted: false });
    expect(answer(await report('agent-2', 'row-2', { v: 2 }))).toMatchObject({ accepted: true });
    expect(await done).toMatchObject({ status: 'completed', completed_items: 2 });
    expect(handle.state.items.get('row-1')!.result).toEqual({ v: 1, nested: { a: [1, 2] }, z: 0 });
  });

  it('answers a copy of a recorded result as accepted once the job has ended, and anything else as refused', async () => {
    const { store, jobId, first } = await leftByEarlierRunner(
      { type: 'item_result', item_id: 'row-1', agent_id: 'agent-1', result: { v: 1, nested: { a: [1, 2] }, z: -0 } },
      { type: 'item_failed', item_id: 'row-2', error: 'its agent was lost' },
      { type: 'job_finished', status: 'completed', error: null },
    );
    await first.close();
    // No runner answers any of these: the job's records do.
    const report = async (agentId: string, itemId: string, result: Record<string, unknown>) =>
      answer(await store.report(jobId, item(agentId, itemId, result), going));
    expect(await report('agent-1', 'row-1', { nested: { a: [1, 2] }, v: 1, z: 0 })).toMatchObject({ accepted: true });
    const ended = { accepted: false, reason: `job ${jobId} has ended` };
    expect(await report('agent-1', 'row-1', { v: 9 })).toEqual(ended);
    expect(await report('agent-2', 'row-1', { v: 1, nested: { a: [1, 2] }, z: 0 })).toEqual(ended);
    expect(await report('agent-2', 'row-2', { v: 2 })).toEqual(ended);
    expect(await report('agent-1', 'row-9', { v: 1 })).toEqual(ended);
  });

  it('stops at once when its call is aborted, waiting for an answer or between tries, and sends nothing more', async () => {
    const sent = vi.spyOn(nats.connection, 'request');
    const sends = (store: NatsJobStore, jobId: string) => sent.mock.calls.filter(([subject]) => subject === store.subjects.jobReport(jobId)).length;
    try {
      // A runner that took the request and never answers: the request is in flight when the call is aborted.
      const holding = await leftByEarlierRunner();
      const held: string[] = [];
      const taker = nats.connection.subscribe(holding.store.subjects.jobReport(holding.jobId), {
        callback: (_error, message) => void held.push(message.string()),
      });
      const first = new AbortController();
      const inFlight = holding.store.report(holding.jobId, item('agent-1', 'row-1', { v: 1 }), first.signal);
      await waitFor(() => held.length === 1, 'the request to reach the silent runner');
      // The request waits for an answer that never comes (until its own timeout): the call must not.
      let requestSettled = false;
      void (sent.mock.results.at(-1)!.value as Promise<unknown>).then(
        () => (requestSettled = true),
        () => (requestSettled = true),
      );
      first.abort();
      expect(await inFlight).toEqual({ text: ABORTED_OUTPUT, success: false });
      expect(requestSettled).toBe(false);

      // No runner at all: the report is sent again every half second.
      const unserved = await leftByEarlierRunner();
      const second = new AbortController();
      const between = unserved.store.report(unserved.jobId, item('agent-1', 'row-1', { v: 1 }), second.signal);
      await waitFor(() => sends(unserved.store, unserved.jobId) >= 2, 'the report to be sent again');
      second.abort();
      expect(await between).toEqual({ text: ABORTED_OUTPUT, success: false });

      // Neither sends again: a report left going meanwhile is sent three more times.
      const afterwards = [sends(holding.store, holding.jobId), sends(unserved.store, unserved.jobId)];
      const control = await leftByEarlierRunner();
      const third = new AbortController();
      const unaborted = control.store.report(control.jobId, item('agent-1', 'row-1', { v: 1 }), third.signal);
      await waitFor(() => sends(control.store, control.jobId) >= 3, 'a report nobody aborted to be sent three times');
      third.abort();
      await unaborted;
      expect([sends(holding.store, holding.jobId), sends(unserved.store, unserved.jobId)]).toEqual(afterwards);
      expect(held).toHaveLength(1);
      taker.unsubscribe();
    } finally {
      sent.mockRestore();
    }
  });
});
