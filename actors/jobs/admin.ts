import type { AgentJobStatus } from '../../protocol/index.js';
import { writeJobOutput } from './output.js';
import { countItems, jobStatus, type JobCounts, type JobState } from './state.js';
import { FileJobStore, runnerAlive } from './store.js';
import { TroupeError } from '../../protocol/index.js';

/**
 * Jobs seen from outside the process that runs them (`troupe jobs status`, `troupe jobs cancel`),
 * read from their logs under TROUPE_HOME.
 */
export interface JobOverview extends JobCounts {
  readonly job_id: string;
  readonly status: AgentJobStatus;
  /** For a running job: whether a live process runs it now (false: it goes on when its session is resumed). */
  readonly live: boolean;
  readonly runner_pid: number | null;
  readonly created_at: string;
  readonly finished_at: string | null;
  readonly parent_session_id: string;
  readonly input_path: string;
  readonly output_path: string;
  readonly instruction: string;
  readonly cancel_requested: string | null;
  readonly job_error: string | null;
  readonly failed_item_errors: readonly { readonly item_id: string; readonly last_error: string }[];
}

export function overview(state: JobState): JobOverview {
  const { spec } = state;
  const live = state.finished === null && runnerAlive(state.runner);
  const counts = countItems(state.items.values());
  return {
    job_id: spec.job_id,
    status: jobStatus(state),
    live,
    runner_pid: live ? (state.runner?.pid ?? null) : null,
    // Without a live process, an item that was running lost its agent: it starts afresh when the job goes on.
    ...(live ? counts : { ...counts, pending: counts.pending + counts.running, running: 0 }),
    created_at: spec.created_at,
    finished_at: state.finished?.at ?? null,
    parent_session_id: spec.parent_session_id,
    input_path: spec.input_path,
    output_path: spec.output_path,
    instruction: spec.instruction,
    cancel_requested: state.cancelRequested,
    job_error: state.finished?.error ?? null,
    failed_item_errors: [...state.items.values()]
      .filter((i) => i.status === 'failed')
      .sort((a, b) => a.spec.row_index - b.spec.row_index)
      .slice(0, 5)
      .map((i) => ({ item_id: i.spec.item_id, last_error: i.error ?? 'unknown error' })),
  };
}

export class JobLookupError extends TroupeError {
  override readonly name = 'JobLookupError';
  override readonly code = 'bad_request';
}

/** The jobs under `home`, newest first. */
export async function listJobs(home: string): Promise<JobOverview[]> {
  return (await new FileJobStore(home).list()).map(overview);
}

/** The job whose id is `id` or begins with it (as the progress line shows 8 characters). */
export async function findJob(home: string, id: string): Promise<JobState> {
  const store = new FileJobStore(home);
  const exact = await store.read(id).catch(() => null);
  if (exact) return exact;
  const matches = (await store.list()).filter((s) => s.spec.job_id.startsWith(id));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new JobLookupError(`no job ${id} under ${home}`);
  throw new JobLookupError(`${matches.length} jobs begin with ${id}: ${matches.map((m) => m.spec.job_id).join(', ')}`);
}

export type CancelOutcome =
  /** The job had ended already. */
  | { readonly kind: 'finished'; readonly job: JobOverview }
  /** A live process runs the job: it was asked to stop, and ends it. */
  | { readonly kind: 'requested'; readonly job: JobOverview }
  /** Nobody ran the job: it was ended here, its output written. */
  | { readonly kind: 'cancelled'; readonly job: JobOverview };

/** Cancel job `id` (or a unique prefix of it). */
export async function cancelJob(home: string, id: string, reason = 'cancelled with troupe jobs cancel'): Promise<CancelOutcome> {
  const store = new FileJobStore(home);
  const found = await findJob(home, id);
  const jobId = found.spec.job_id;
  if (found.finished) return { kind: 'finished', job: overview(found) };
  const requested = (await store.requestCancel(jobId, reason)) ?? found;
  if (runnerAlive(requested.runner)) return { kind: 'requested', job: overview(requested) };
  // Nobody runs it: end it here, as its runner would have.
  const handle = await store.open(jobId);
  if (!handle) throw new JobLookupError(`no job ${jobId} under ${home}`);
  try {
    if (!handle.state.finished) {
      for (const item of handle.state.items.values()) if (item.status === 'pending' || item.status === 'running') item.status = 'cancelled';
      let error: string | null = null;
      await writeJobOutput(handle.state).catch(
        (e: unknown) => (error = `could not write the output ${handle.state.spec.output_path}: ${(e as Error).message}`),
      );
      await handle.append({ type: 'job_finished', status: error === null ? 'cancelled' : 'failed', error });
    }
  } finally {
    await handle.close();
  }
  return { kind: 'cancelled', job: overview((await store.read(jobId)) ?? handle.state) };
}
