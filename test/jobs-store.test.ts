import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { JobSpec } from '../actors/jobs/records.js';
import { JobRunner } from '../actors/jobs/runner.js';
import { FileJobStore, jobLogPath, runnerAlive, THIS_RUNNER } from '../actors/jobs/store.js';
import { reportAgentJobResultTool } from '../actors/jobs/tools.js';
import type { AgentControl, AgentReport, ToolContext } from '../actors/tools/tool.js';
import { log } from '../lib/log.js';
import { testJobSpec } from './support/job-spec.js';
import { makeToolContext } from './support/tool-context.js';
import { waitFor } from './support/wait.js';

let home: string;
const [JOB_A, JOB_B, JOB_C, JOB_D, JOB_R] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

function spec(jobId: string, createdAt?: string): JobSpec {
  return testJobSpec({ jobId, dir: home, rows: ['x', 'y', 'z'], ...(createdAt ? { createdAt } : {}) });
}

describe('FileJobStore', () => {
  it('appends records durably and replays them into the same state', async () => {
    const store = new FileJobStore(home);
    const handle = await store.create(spec(JOB_A));
    expect(await store.unfinishedOf('parent')).toEqual([JOB_A]);
    await handle.append({ type: 'runner_started', ...THIS_RUNNER }, { type: 'item_started', item_id: 'row-1', agent_id: 'agent-1', attempt: 1 });
    await handle.append({ type: 'item_result', item_id: 'row-1', agent_id: 'agent-1', result: { ok: true } });
    await handle.append({ type: 'item_started', item_id: 'row-2', agent_id: 'agent-2', attempt: 1 }, { type: 'item_retry', item_id: 'row-2', error: 'boom' });
    await handle.append({ type: 'item_started', item_id: 'row-3', agent_id: 'agent-3', attempt: 1 });
    expect([...handle.state.items.values()].map((i) => [i.spec.item_id, i.status])).toEqual([
      ['row-1', 'completed'],
      ['row-2', 'pending'],
      ['row-3', 'running'],
    ]);
    await handle.close();
    const read = (await store.read(JOB_A))!;
    expect([...read.items.values()].map((i) => [i.status, i.result, i.errored, i.attempts])).toEqual([
      ['completed', { ok: true }, 0, 1],
      ['pending', null, 1, 1],
      ['running', null, 0, 1],
    ]);
    expect(read.runner).toMatchObject(THIS_RUNNER);
  });

  it('a result recorded once is final: later records for that item change nothing', async () => {
    const store = new FileJobStore(home);
    const handle = await store.create(spec(JOB_B));
    await handle.append({ type: 'item_result', item_id: 'row-1', agent_id: 'a', result: { n: 1 } });
    await handle.append({ type: 'item_failed', item_id: 'row-1', error: 'late' }, { type: 'item_result', item_id: 'row-1', agent_id: 'b', result: { n: 2 } });
    expect(handle.state.items.get('row-1')).toMatchObject({ status: 'completed', result: { n: 1 }, error: null });
    await handle.close();
  });

  it('skips a torn last line, as a crash in the middle of a write leaves it', async () => {
    const store = new FileJobStore(home);
    const handle = await store.create(spec(JOB_C));
    await handle.append({ type: 'item_result', item_id: 'row-1', agent_id: 'a', result: { n: 1 } });
    await handle.close();
    await appendFile(jobLogPath(home, JOB_C), '{"type":"item_result","at":"x","item_id":"row-2","agent_i');
    const warn = vi.spyOn(log, 'warn').mockImplementation(() => undefined);
    try {
      const read = (await store.read(JOB_C))!;
      expect([...read.items.values()].map((i) => i.status)).toEqual(['completed', 'pending', 'pending']);
      expect(warn).toHaveBeenCalledWith(expect.objectContaining({ line: 3 }), 'skipping a line of a job log that is torn or invalid');
    } finally {
      warn.mockRestore();
    }
  });

  it('hears a cancellation another process appends; a finished job leaves the open list', async () => {
    const store = new FileJobStore(home);
    const handle = await store.create(spec(JOB_D));
    const heard: string[] = [];
    handle.onCancel((reason) => heard.push(reason));
    await new FileJobStore(home).requestCancel(JOB_D, 'from elsewhere');
    await waitFor(() => heard.length > 0, 'the cancellation');
    expect(heard).toEqual(['from elsewhere']);
    expect(handle.state.cancelRequested).toBe('from elsewhere');
    await handle.append({ type: 'job_finished', status: 'cancelled', error: null });
    expect(await store.unfinishedOf('parent')).toEqual([]);
    expect([...handle.state.items.values()].every((i) => i.status === 'cancelled')).toBe(true);
    await handle.close();
    const lines = (await readFile(jobLogPath(home, JOB_D), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['job_created', 'cancel_requested', 'job_finished']);
    expect((await readdir(join(home, 'jobs'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('lists jobs newest first, and knows whether a runner is alive', async () => {
    const store = new FileJobStore(home);
    const [older, newer] = [randomUUID(), randomUUID()];
    for (const [id, at] of [
      [older, '2026-01-01T00:00:00.000Z'],
      [newer, '2026-02-01T00:00:00.000Z'],
    ] as const) {
      await (await store.create(spec(id, at))).close();
    }
    expect((await store.list()).map((s) => s.spec.job_id)).toEqual([newer, older]);
    expect(runnerAlive(THIS_RUNNER)).toBe(true);
    expect(runnerAlive({ ...THIS_RUNNER, host: 'elsewhere' })).toBe(false);
    expect(runnerAlive(null)).toBe(false);
  });
});

describe('report_agent_job_result in process', () => {
  /** Sub-agents that only wait: each item's result comes from the test, through the tool. */
  function quietAgents(): { agents: AgentControl; spawned: string[] } {
    const spawned: string[] = [];
    const report = (agentId: string): AgentReport => ({ agent_id: agentId, nickname: agentId, status: 'running', message: null });
    const agents = {
      spawn: async () => {
        spawned.push(`agent-${spawned.length + 1}`);
        return report(spawned.at(-1)!);
      },
      wait: (ids: readonly string[], options: { signal: AbortSignal }) =>
        new Promise((resolve) => options.signal.addEventListener('abort', () => resolve({ agents: ids.map(report), timed_out: false }), { once: true })),
      close: async (agentId: string) => ({ ...report(agentId), status: 'shutdown' }),
    } as unknown as AgentControl;
    return { agents, spawned };
  }

  it('once the job has ended, answers a copy of a recorded result as accepted and anything else as refused', async () => {
    const store = new FileJobStore(home);
    const { agents, spawned } = quietAgents();
    const runner = new JobRunner(await store.create(spec(JOB_R)), { agents, spawnContext: {} as ToolContext, emit: () => undefined });
    const done = runner.run();
    const { ctx } = makeToolContext(home, { home });
    const report = async (agentId: string, itemId: string, result: Record<string, unknown>) => {
      const args = reportAgentJobResultTool.args.parse({ job_id: JOB_R, item_id: itemId, result });
      const output = await reportAgentJobResultTool.run(args, { ...ctx, sessionId: agentId }, { sandboxed: true, userApproved: false });
      return JSON.parse(output.text) as { accepted: boolean };
    };
    await waitFor(() => spawned.length === 2, 'the first two agents');
    expect(await report('agent-1', 'row-1', { n: 1, z: -0 })).toMatchObject({ accepted: true });
    expect(await report('agent-2', 'row-2', { n: 2 })).toMatchObject({ accepted: true });
    await waitFor(() => spawned.length === 3, 'the third agent');
    expect(await report('agent-3', 'row-3', { n: 3 })).toMatchObject({ accepted: true });
    expect(await done).toMatchObject({ status: 'completed', completed_items: 3 });

    // No runner has the job now: its log answers.
    expect(await report('agent-1', 'row-1', { z: 0, n: 1 })).toMatchObject({ accepted: true });
    expect(await report('agent-1', 'row-1', { n: 9 })).toMatchObject({ accepted: false });
    expect(await report('agent-2', 'row-1', { n: 1, z: 0 })).toMatchObject({ accepted: false });
    expect(await report('agent-3', 'row-4', { n: 3 })).toMatchObject({ accepted: false });
    expect((await store.read(JOB_R))!.items.get('row-1')).toMatchObject({ agentId: 'agent-1', result: { n: 1, z: 0 } });
  });
});
