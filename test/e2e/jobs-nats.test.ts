import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { waitFor } from '../support/wait.js';
import type { RecordedRequest, ScriptStep } from '../../testing/index.js';
import { mentions, outputFor } from '../../testing/requests.js';
import {
  doneStep,
  heldReports,
  isWorker,
  outcomesPerItem,
  readCsv,
  reportStep,
  spawnJobStep,
  startsPerItem,
  task,
  workerFirst,
  writeText,
} from './jobs-support.js';

/**
 * Agent jobs on NATS: real nats-server with JetStream, `troupe worker` processes, the client
 * through `troupe app-server --nats`. A job's items are sub-agents placed on any worker; their
 * results reach the job's runner wherever it runs, and the job's records live in JetStream.
 */

const cluster = new NatsCluster({ name: 'jobsnats', settleMs: 200 });
const LEASE_MS = '3000';

function startWorker(id: string, capacity: number) {
  return cluster.startWorker(id, capacity, { env: { TROUPE_LEASE_MS: LEASE_MS, TROUPE_LOG: process.env.JOBS_NATS_LOG ?? 'warn' } });
}

const isParent = (marker: string) => (r: RecordedRequest) => mentions(r, marker) && !isWorker(r);
const lastCallIs = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;

async function openSession(gateway: AppServerProcess): Promise<{ sessionId: string; workerId: string }> {
  const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir, approval_policy: 'never', sandbox_policy: 'danger-full-access' } });
  const event = await gateway.waitFor((e) => e.id === id && (e.msg.type === 'session_configured' || e.msg.type === 'error'), 'the session');
  if (event.msg.type !== 'session_configured') throw new Error(`no session: ${JSON.stringify(event.msg)}`);
  return { sessionId: event.msg.session_id, workerId: event.msg.worker_id };
}

/** The most task requests (an item agent's first) the model had open at once. */
function mostConcurrentTasks(requests: readonly RecordedRequest[]): number {
  const edges = requests.filter(workerFirst).flatMap((r) => [
    { at: r.startedAt, step: 1 },
    { at: r.endedAt ?? Number.POSITIVE_INFINITY, step: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.step - b.step);
  let open = 0;
  let most = 0;
  for (const edge of edges) most = Math.max(most, (open += edge.step));
  return most;
}

function rows(n: number): string {
  return `name\n${Array.from({ length: n }, (_, i) => `item${i + 1}`).join('\n')}\n`;
}

const upper = (row: Record<string, unknown>) => ({ upper: String(row.name).toUpperCase() });

describe('agent jobs on NATS', { timeout: 90_000 }, () => {
  it('runs items on every worker, never more at once than max_concurrency, one result each', async () => {
    await Promise.all([startWorker('a', 3), startWorker('b', 3)]);
    const gateway = await cluster.startGateway();
    const { sessionId } = await openSession(gateway);
    await writeText(cluster.dir, 'items.csv', rows(8));
    const output = join(cluster.dir, 'out.csv');
    cluster.model.enqueue(
      spawnJobStep(isParent('run the job'), { csv_path: 'items.csv', instruction: 'Shout {name}.', max_concurrency: 4, output_csv_path: output }, 'job'),
      { kind: 'response', match: lastCallIs('job'), items: [{ type: 'message', text: 'job over' }] },
      ...Array.from({ length: 8 }, (): ScriptStep => reportStep(upper, { delayMs: 300 })),
      ...Array.from({ length: 8 }, doneStep),
    );
    await gateway.turn(sessionId, 'run the job');
    const call = cluster.model.requests.find((r) => outputFor(r, 'job') !== undefined);
    const summary = JSON.parse(outputFor(call!, 'job')!) as Record<string, unknown>;
    expect(summary).toMatchObject({ status: 'completed', total_items: 8, completed_items: 8, failed_items: 0 });

    // The items' agents ran on both workers.
    const children = gateway.events.filter((e) => e.msg.type === 'session_configured' && e.msg.parent_session_id === sessionId);
    expect(children).toHaveLength(8);
    expect(new Set(children.map((e) => (e.msg.type === 'session_configured' ? e.msg.worker_id : '')))).toEqual(new Set(['a', 'b']));
    // Never more than four tasks at the model at once, across the workers.
    expect(mostConcurrentTasks(cluster.model.requests)).toBeLessThanOrEqual(4);
    expect(cluster.model.requests.filter(workerFirst)).toHaveLength(8);

    expect(readCsv(output).map((r) => [r.name, r.status, JSON.parse(r.result!).upper])).toEqual(
      Array.from({ length: 8 }, (_, i) => [`item${i + 1}`, 'completed', `ITEM${i + 1}`]),
    );
    expect(await outcomesPerItem(cluster.nats.url, cluster.namespace, String(summary.job_id))).toEqual(Array.from({ length: 8 }, () => 1));
  });

  it('loses no item when a worker running items is killed with -9: every item ends with exactly one result', async () => {
    await Promise.all([startWorker('a', 8), startWorker('b', 8)]);
    const gateway = await cluster.startGateway();
    const { sessionId, workerId } = await openSession(gateway);
    const other = workerId === 'a' ? 'b' : 'a';
    await writeText(cluster.dir, 'items.csv', rows(6));
    const output = join(cluster.dir, 'out.csv');
    // Tasks are held until the test lets them go: the other worker is killed with tasks open on it.
    const { holdStep, held, release } = heldReports(upper);
    cluster.model.enqueue(
      spawnJobStep(isParent('run the job'), { csv_path: 'items.csv', instruction: 'Shout {name}.', max_concurrency: 6, output_csv_path: output }, 'job'),
      { kind: 'response', match: lastCallIs('job'), items: [{ type: 'message', text: 'job over' }] },
      ...Array.from({ length: 12 }, holdStep),
      ...Array.from({ length: 12 }, doneStep),
    );
    const turn = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'run the job' }] }, sessionId);
    const onOther = () =>
      gateway.events.filter((e) => e.msg.type === 'session_configured' && e.msg.parent_session_id === sessionId && e.msg.worker_id === other).length;
    await waitFor(() => held.length === 6 && onOther() > 0, 'six tasks open, some on the other worker');
    await cluster.workers.find((w) => w.id === other)!.kill();
    await startWorker('c', 8);
    release();

    await gateway.waitFor((e) => e.id === turn && e.msg.type === 'task_complete', 'the job turn to end', 60_000);
    const call = cluster.model.requests.find((r) => outputFor(r, 'job') !== undefined);
    const summary = JSON.parse(outputFor(call!, 'job')!) as Record<string, unknown>;
    expect(summary).toMatchObject({ status: 'completed', total_items: 6, completed_items: 6, failed_items: 0 });
    expect(readCsv(output).map((r) => [r.name, r.status, JSON.parse(r.result!).upper])).toEqual(
      Array.from({ length: 6 }, (_, i) => [`item${i + 1}`, 'completed', `ITEM${i + 1}`]),
    );
    expect(await outcomesPerItem(cluster.nats.url, cluster.namespace, String(summary.job_id))).toEqual(Array.from({ length: 6 }, () => 1));
    // The killed worker's tasks were asked again where their agents were adopted; the others once.
    const perItem = new Map<string, number>();
    for (const r of cluster.model.requests.filter(workerFirst)) perItem.set(task(r).itemId, (perItem.get(task(r).itemId) ?? 0) + 1);
    expect(perItem.size).toBe(6);
  });

  it("goes on after kill -9 of its parent's worker: the adopted session takes the job up, no item runs again, and the agents that lived on hand in their results", async () => {
    await Promise.all([startWorker('a', 8), startWorker('b', 8)]);
    const gateway = await cluster.startGateway();
    const { sessionId, workerId } = await openSession(gateway);
    await writeText(cluster.dir, 'items.csv', rows(6));
    const output = join(cluster.dir, 'out.csv');
    const { holdStep, held, release } = heldReports(upper);
    cluster.model.enqueue(
      spawnJobStep(isParent('run the job'), { csv_path: 'items.csv', instruction: 'Shout {name}.', max_concurrency: 3, output_csv_path: output }, 'job'),
      { kind: 'response', match: lastCallIs('job'), items: [{ type: 'message', text: 'the job goes on' }] },
      ...Array.from({ length: 3 }, () => reportStep(upper)),
      ...Array.from({ length: 12 }, holdStep),
      ...Array.from({ length: 16 }, doneStep),
    );
    gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: 'run the job' }] }, sessionId);
    // Three items reported (the first three tasks to reach the model, whichever rows); the other
    // three are with the model, held, when the parent's worker dies.
    const { msg: progress } = await gateway.waitForMsg('agent_job_progress', { session: sessionId, where: (m) => m.completed === 3 });
    const jobId = progress.job_id;
    const tasks = () => cluster.model.requests.filter((r) => workerFirst(r) && task(r).jobId === jobId);
    await waitFor(() => held.length === 3, 'the other three tasks at the model');
    await waitFor(async () => (await startsPerItem(cluster.nats.url, cluster.namespace, jobId)).size === 6, 'every item started in the log');
    const reportedBefore = new Set(tasks().flatMap((r) => (r.endedAt !== null ? [task(r).itemId] : [])));
    expect(reportedBefore.size).toBe(3);
    await cluster.workers.find((w) => w.id === workerId)!.kill();
    await startWorker('c', 8);
    release();

    const ended = await gateway.waitFor(
      (e) => e.session_id === sessionId && e.msg.type === 'background_event' && e.msg.message.startsWith(`agent job ${jobId} completed`),
      'the job to end on the adopting worker',
      60_000,
    );
    expect(ended.msg).toMatchObject({ message: expect.stringMatching(/6 of 6 items completed, 0 failed/) });
    expect(readCsv(output).map((r) => [r.name, r.status, JSON.parse(r.result!).upper])).toEqual(
      Array.from({ length: 6 }, (_, i) => [`item${i + 1}`, 'completed', `ITEM${i + 1}`]),
    );
    expect(await outcomesPerItem(cluster.nats.url, cluster.namespace, jobId)).toEqual(Array.from({ length: 6 }, () => 1));
    // No item got a second agent: those that were working when the runner died were watched by
    // the one that took the job up, and their results taken, wherever their agents ran on.
    const starts = await startsPerItem(cluster.nats.url, cluster.namespace, jobId);
    expect([...starts.values()]).toEqual(Array.from({ length: 6 }, () => 1));
    // The items that had reported were not asked again; the held ones at least once (twice if
    // their agent was on the dead worker, and its adopted session asked again).
    const asked = (itemId: string) => tasks().filter((r) => task(r).itemId === itemId).length;
    expect([...reportedBefore].map(asked)).toEqual([1, 1, 1]);
    expect([...starts.keys()].filter((id) => !reportedBefore.has(id)).every((id) => asked(id) >= 1)).toBe(true);
  });
});
