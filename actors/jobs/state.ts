import type { AgentJobStatus } from '../../protocol/index.js';
import type { JobItemSpec, JobRecord, JobSpec } from './records.js';

/** Where an item stands. `cancelled`: the job ended before the item had a result or an error. */
export type ItemStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface ItemState {
  readonly spec: JobItemSpec;
  status: ItemStatus;
  /** The agent of the current (or last) attempt; of a completed item, the one whose result it has. */
  agentId: string | null;
  /** When the current (or last) attempt started (ISO 8601). */
  startedAt: string | null;
  /** Attempts started, across restarts. */
  attempts: number;
  /** Attempts whose agent errored. */
  errored: number;
  result: Record<string, unknown> | null;
  error: string | null;
}

/** A job as its log says it is. */
export interface JobState {
  readonly spec: JobSpec;
  readonly items: Map<string, ItemState>;
  cancelRequested: string | null;
  finished: { status: Exclude<AgentJobStatus, 'running'>; error: string | null; at: string } | null;
  /** The process running the job now, as the last runner record says (null: none). */
  runner: { pid: number; host: string; start?: string | undefined; at: string } | null;
}

export interface JobCounts {
  readonly total: number;
  readonly pending: number;
  readonly running: number;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
}

/** The state after `records` (the first must be `job_created`). */
export function replay(records: readonly JobRecord[]): JobState {
  const first = records[0];
  if (first?.type !== 'job_created') throw new Error('a job log must begin with job_created');
  const state: JobState = {
    spec: first.job,
    items: new Map(
      first.job.items.map((spec) => [
        spec.item_id,
        { spec, status: 'pending', agentId: null, startedAt: null, attempts: 0, errored: 0, result: null, error: null },
      ]),
    ),
    cancelRequested: null,
    finished: null,
    runner: null,
  };
  for (const record of records.slice(1)) apply(state, record);
  return state;
}

/** Apply one record; records for unknown items are ignored (a log is only ever appended by troupe). */
export function apply(state: JobState, record: JobRecord): void {
  switch (record.type) {
    case 'job_created':
      break;
    case 'runner_started':
      state.runner = { pid: record.pid, host: record.host, start: record.start, at: record.at };
      break;
    case 'runner_stopped':
      state.runner = null;
      break;
    case 'cancel_requested':
      state.cancelRequested ??= record.reason;
      break;
    case 'job_finished':
      state.finished = { status: record.status, error: record.error, at: record.at };
      state.runner = null;
      for (const item of state.items.values()) if (item.status === 'pending' || item.status === 'running') item.status = 'cancelled';
      break;
    default: {
      const item = state.items.get(record.item_id);
      if (!item || item.status === 'completed' || item.status === 'failed') return;
      if (record.type === 'item_started') {
        item.status = 'running';
        item.agentId = record.agent_id;
        item.startedAt = record.at;
        item.attempts = Math.max(item.attempts, record.attempt);
      } else if (record.type === 'item_result') {
        item.status = 'completed';
        item.agentId = record.agent_id;
        item.result = record.result;
        item.error = null;
      } else if (record.type === 'item_retry') {
        item.status = 'pending';
        item.errored++;
        item.error = record.error;
      } else {
        item.status = 'failed';
        item.error = record.error;
      }
    }
  }
}

export function countItems(items: Iterable<ItemState>): JobCounts {
  const counts = { total: 0, pending: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const item of items) {
    counts.total++;
    counts[item.status]++;
  }
  return counts;
}

/** The job's status as its log says: finished, or running (whether or not a process runs it now). */
export function jobStatus(state: JobState): AgentJobStatus {
  return state.finished?.status ?? 'running';
}
