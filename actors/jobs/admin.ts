import type { AgentJobStatus } from '../../protocol/index.js';
import { writeJobOutput } from './output.js';
import type { JobSummary } from './runner.js';
import { countItems, jobStatus, type JobCounts, type JobState } from './state.js';
import { FileJobStore, runnerAlive, type JobStore } from './store.js';
import { TroupeError } from '../../protocol/index.js';

/**
 * Jobs seen from outside the process that runs them (`jobStatus`, `cancelJob` and `troupe jobs
 * status | cancel`, which go through them): read from their logs under TROUPE_HOME, or from
 * JetStream on NATS.
 */
export interface JobOverview extends JobCounts {
  readonly job_id: string;
  readonly status: AgentJobStatus;
  /** For a running job: whether a live process runs it now (false: it goes on when its session is resumed). */
  readonly live: boolean;
  readonly runner_pid: number | null;
  /** The machine of that process (on NATS, a worker's). */
  readonly runner_host: string | null;
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

/**
 * Where jobs are looked up: a store, what to call it in messages, and how to tell whether a
 * job's runner still runs. Under TROUPE_HOME that is a process of this machine; on NATS it is
 * a worker's, which the runner records say (a worker that dies has its sessions adopted, and
 * the job's new runner records itself).
 */
export interface JobPlace {
  readonly store: JobStore;
  /** Where that is, for messages: `under HOME`, `in namespace NS`. */
  readonly name: string;
  runs(state: JobState): boolean;
}

/** The jobs under TROUPE_HOME `home`. */
export function homeJobs(home: string): JobPlace {
  return { store: new FileJobStore(home), name: `under ${home}`, runs: (state) => runnerAlive(state.runner) };
}

/** The jobs of a NATS namespace, in its JetStream store. */
export function natsJobs(store: JobStore, namespace: string): JobPlace {
  return { store, name: `in namespace ${namespace}`, runs: (state) => state.runner !== null };
}

export function overview(state: JobState, runs: (state: JobState) => boolean): JobOverview {
  const { spec } = state;
  const live = state.finished === null && runs(state);
  const counts = countItems(state.items.values());
  return {
    job_id: spec.job_id,
    status: jobStatus(state),
    live,
    runner_pid: live ? (state.runner?.pid ?? null) : null,
    runner_host: live ? (state.runner?.host ?? null) : null,
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
    failed_item_errors: failedItems(state).map((i) => ({ item_id: i.spec.item_id, last_error: i.error ?? 'unknown error' })),
  };
}

const FAILED_ITEMS_SHOWN = 5;

function failedItems(state: JobState) {
  return [...state.items.values()]
    .filter((i) => i.status === 'failed')
    .sort((a, b) => a.spec.row_index - b.spec.row_index)
    .slice(0, FAILED_ITEMS_SHOWN);
}

/** The summary of a job as its records say (what its runner answered, for a job that has ended). */
export function jobSummary(state: JobState): JobSummary {
  const counts = countItems(state.items.values());
  return {
    job_id: state.spec.job_id,
    status: jobStatus(state),
    output_csv_path: state.spec.output_path,
    total_items: counts.total,
    completed_items: counts.completed,
    failed_items: counts.failed,
    cancelled_items: counts.cancelled,
    job_error: state.finished?.error ?? null,
    failed_item_errors: failedItems(state).map((i) => ({ item_id: i.spec.item_id, source_id: i.spec.source_id, last_error: i.error ?? 'unknown error' })),
  };
}

export class JobLookupError extends TroupeError {
  override readonly name = 'JobLookupError';
  override readonly code = 'bad_request';
}

/** The jobs of `place`, newest first. */
export async function listJobsIn(place: JobPlace): Promise<JobOverview[]> {
  return (await place.store.list()).map((state) => overview(state, place.runs));
}

/** The job whose id is `id` or begins with it (as the progress line shows 8 characters). */
export async function findJob(place: JobPlace, id: string): Promise<JobState> {
  const { store, name } = place;
  if (id.trim() === '') throw new JobLookupError('the job id is empty: give a job id, or the first characters of one');
  // A job id is a UUID: anything else (a path, a subject) is looked up nowhere.
  if (!/^[0-9a-f-]{1,36}$/i.test(id)) throw new JobLookupError(`${JSON.stringify(id)} is not a job id: job ids are UUIDs (give one, or its first characters)`);
  const exact = await store.read(id).catch(() => null);
  if (exact) return exact;
  const matches = (await store.list()).filter((s) => s.spec.job_id.startsWith(id));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new JobLookupError(`no job ${id} ${name}`);
  throw new JobLookupError(`${matches.length} jobs begin with ${id}: ${matches.map((m) => m.spec.job_id).join(', ')}`);
}

export type CancelOutcome =
  /** The job had ended already. */
  | { readonly kind: 'finished'; readonly job: JobOverview }
  /** A live process runs the job: it was asked to stop, and ends it. */
  | { readonly kind: 'requested'; readonly job: JobOverview }
  /** Nobody ran the job: it was ended here, its output written. */
  | { readonly kind: 'cancelled'; readonly job: JobOverview };

/** Cancel job `id` (or a unique prefix of it) of `place`; `reason` goes to its records. */
export async function cancelJobIn(place: JobPlace, id: string, reason: string): Promise<CancelOutcome> {
  const { store } = place;
  const found = await findJob(place, id);
  const jobId = found.spec.job_id;
  if (found.finished) return { kind: 'finished', job: overview(found, place.runs) };
  const requested = (await store.requestCancel(jobId, reason)) ?? found;
  if (place.runs(requested)) return { kind: 'requested', job: overview(requested, place.runs) };
  // Nobody runs it: end it here, as its runner would have.
  const handle = await store.open(jobId);
  if (!handle) throw new JobLookupError(`no job ${jobId} ${place.name}`);
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
  return { kind: 'cancelled', job: overview((await store.read(jobId)) ?? handle.state, place.runs) };
}

/**
 * Write an ended job's output on this machine from its records (on NATS the worker that ended
 * the job wrote it on its own disk). Atomic: a reader sees the old file or the whole new one.
 */
export async function writeOutputHere(state: JobState): Promise<string> {
  if (!state.finished) throw new JobLookupError(`job ${state.spec.job_id} has not ended: its output is written when it ends`);
  return writeJobOutput(state);
}
