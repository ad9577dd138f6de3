import type { EventMsg, SessionConfig } from '../../protocol/index.js';
import { inBackground } from '../../lib/log.js';
import { natsSettingsFrom } from '../../lib/nats/settings.js';
import { troupeHome } from '../../lib/rollout/index.js';
import { SessionError, type ClusterOptions, type Runtime, type Session } from '../runtime.js';
import { DEFAULT_AGENT_MAX_THREADS } from '../agents/supervisor.js';
import {
  cancelJobIn,
  findJob,
  homeJobs,
  jobSummary,
  listJobsIn,
  natsJobs,
  overview,
  writeOutputHere,
  type CancelOutcome,
  type JobOverview,
  type JobPlace,
} from './admin.js';
import { JobInputError } from './input.js';
import { jobOp } from './job-op.js';
import { prepareJob, type JobRequest, type PreparedJob } from './prepare.js';
import type { JobProgress } from './progress.js';
import type { JobSummary } from './runner.js';
import { sessionJobs } from './session.js';

export interface RunJobOptions extends JobRequest {
  /**
   * The job's session, whose sub-agents the items' agents are: working directory (relative
   * paths resolve against it; default the process's), model, policies. Its approval policy is
   * `never` unless set here (nobody is there to answer), and its `agent_max_threads` is raised to
   * the job's concurrency.
   */
  readonly config?: SessionConfig | undefined;
  /** Each `agent_job_progress` of the job. */
  readonly onProgress?: ((progress: JobProgress) => void) | undefined;
  /** Called once the job is stored, with its id and its session's. */
  readonly onStart?: ((job: { readonly jobId: string; readonly sessionId: string }) => void) | undefined;
  /** Aborting cancels the job: items not done are cancelled, the output is written. */
  readonly signal?: AbortSignal | undefined;
}

/** A job whose input was read and checked (`checkJob`), ready for `runJob`. */
export class CheckedJob {
  constructor(
    readonly options: RunJobOptions,
    readonly prepared: PreparedJob,
    readonly cwd: string,
  ) {}
}

/**
 * What `runJob` does first, without a runtime: read and check the input, the instruction and
 * the paths. Rejects with a JobInputError naming what is wrong; writes nothing.
 */
export async function checkJob(options: RunJobOptions): Promise<CheckedJob> {
  const cwd = options.config?.cwd ?? process.cwd();
  return new CheckedJob(options, await prepareJob(options, cwd), cwd);
}

/**
 * Run an agent job without a model of its own, as `spawn_agents_on_csv` would: a session is
 * opened whose only work is the job, the job runs in it, and the session is shut down. Resolves
 * to the job's summary; rejects with a JobInputError (nothing written) when the input, the
 * instruction or the paths are wrong, and with a SessionError when the session cannot open.
 *
 * The input is read here. On NATS (a gateway runtime) the session runs on a worker, which
 * stores the job in JetStream and runs it, so the job goes on if this process dies; when it
 * ends, its output is written here too, from the stored records.
 */
export async function runJob(runtime: Runtime, job: RunJobOptions | CheckedJob): Promise<JobSummary> {
  const { options, prepared, cwd } = job instanceof CheckedJob ? job : await checkJob(job);
  const config: SessionConfig = {
    approval_policy: 'never',
    ...options.config,
    cwd,
    agent_max_threads: Math.max(options.config?.agent_max_threads ?? DEFAULT_AGENT_MAX_THREADS, prepared.concurrency),
  };
  if (!runtime.host) return runOnWorkers(runtime, prepared, config, options);
  const session = await runtime.newSession(config);
  const stopListening = runtime.onEvent((event) => {
    if (event.session_id === session.id && event.msg.type === 'agent_job_progress') options.onProgress?.(progressOf(event.msg));
  });
  try {
    const jobs = sessionJobs.get(session.id);
    if (!jobs) throw new Error(`session ${session.id} is not hosted in this process`);
    return await jobs.start(prepared, { signal: options.signal, onStored: () => options.onStart?.({ jobId: prepared.jobId, sessionId: session.id }) });
  } finally {
    stopListening();
    await session.shutdown();
  }
}

function progressOf(msg: Extract<EventMsg, { type: 'agent_job_progress' }>): JobProgress {
  const { type: _type, ...progress } = msg;
  return progress;
}

/**
 * The job on a worker: its session is placed through the gateway and sent `run_agent_job`;
 * progress comes on the session's stream, a cancellation goes to the job's records (the runner
 * follows them), and the summary is read from the records once the job has ended.
 */
async function runOnWorkers(runtime: Runtime, prepared: PreparedJob, config: SessionConfig, options: RunJobOptions): Promise<JobSummary> {
  const [{ NatsBus }, { NatsJobStore, checkFits }] = await Promise.all([import('../../lib/bus/nats.js'), import('./nats-store.js')]);
  if (!(runtime.bus instanceof NatsBus)) throw new Error('runJob needs a runtime with sessions in this process or on NATS');
  // Its session is opened for it: when the caller is gone, nobody else would close it.
  const op = jobOp(prepared, { shutdownWhenDone: true });
  // Refused before that session is opened (the message that carries the op adds a little more).
  checkFits(runtime.bus.connection, Buffer.byteLength(JSON.stringify(op)));
  const store = await NatsJobStore.open(runtime.bus.connection, runtime.namespace);
  const jobId = prepared.jobId;
  const submissionId = `job-${jobId}`;
  const session: Session = await runtime.newSession(config);
  let stored = false;
  const cancel = () => {
    if (stored) inBackground(store.requestCancel(jobId, 'the caller cancelled the job'), `cancelling job ${jobId}`);
  };
  let stopListening = () => {};
  const ended = new Promise<void>((resolve, reject) => {
    stopListening = runtime.onEvent((event) => {
      if (event.session_id !== session.id) return;
      const { msg } = event;
      if (msg.type === 'agent_job_progress' && msg.job_id === jobId) {
        if (!stored) {
          stored = true;
          options.onStart?.({ jobId, sessionId: session.id });
          if (options.signal?.aborted) cancel();
        }
        options.onProgress?.(progressOf(msg));
        if (msg.status !== 'running') resolve();
      } else if (msg.type === 'error' && event.id === submissionId) {
        // The worker refused the job (an agent_type its roles do not have): bad input too.
        reject(msg.code === 'bad_request' ? new JobInputError(msg.message) : new SessionError(msg.message, msg.code));
      } else if (msg.type === 'shutdown_complete') {
        reject(new SessionError(`session ${session.id} shut down before job ${jobId} ended`, 'internal'));
      }
    });
  });
  // Settled in the try below; a rejection before then is not unhandled.
  ended.catch(() => undefined);
  options.signal?.addEventListener('abort', cancel, { once: true });
  try {
    await session.submit(op, submissionId);
    await ended;
    const state = await store.read(jobId);
    if (!state) throw new Error(`job ${jobId} ended but is not in the store`);
    const summary = jobSummary(state);
    try {
      await writeOutputHere(state);
    } catch (error) {
      return { ...summary, status: 'failed', job_error: `could not write the output ${state.spec.output_path} here: ${(error as Error).message}` };
    }
    return summary;
  } finally {
    options.signal?.removeEventListener('abort', cancel);
    stopListening();
    await session.shutdown();
  }
}

/**
 * Where `jobStatus`, `listJobs` and `cancelJob` find jobs: on NATS when `nats` (or
 * TROUPE_NATS_URL) names a server, in the namespace's JetStream store, where a gateway
 * runtime's jobs are (the other NATS fields as for `connectRuntime`); else in the job logs
 * under `home`, where an in-process runtime with that home keeps them.
 */
export interface JobsOptions extends ClusterOptions {
  /** The TROUPE_HOME whose jobs are read when no NATS server is named (default: TROUPE_HOME, then ~/.troupe). */
  readonly home?: string | undefined;
}

export interface JobStatusOptions extends JobsOptions {
  /**
   * Also write the job's output file on this machine from its records (on NATS the worker that
   * ended the job wrote it on its own disk): for a job whose `runJob` did not live to write it.
   * Rejects with a JobLookupError for a job that has not ended.
   */
  readonly writeOutput?: boolean | undefined;
}

export interface CancelJobOptions extends JobsOptions {
  /** Why, kept in the job's records (default: `cancelled with cancelJob`). */
  readonly reason?: string | undefined;
}

/** Run `work` on the jobs `options` name; a NATS connection is opened for it and closed after. */
async function withJobPlace<T>(options: JobsOptions, work: (place: JobPlace) => Promise<T>): Promise<T> {
  const settings = natsSettingsFrom(options, process.env);
  if (settings === null) return work(homeJobs(options.home ?? troupeHome(process.env)));
  const [{ connectNats }, { NatsJobStore }] = await Promise.all([import('../../lib/nats/connect.js'), import('./nats-store.js')]);
  const connection = await connectNats(settings, { name: 'troupe jobs' });
  try {
    return await work(natsJobs(await NatsJobStore.open(connection, settings.namespace), settings.namespace));
  } finally {
    await connection.close();
  }
}

/**
 * Job `jobId` (or the one job whose id begins with it) as its records say now: its status,
 * its items' counts, whether a live process runs it. Rejects with a JobLookupError when no
 * job, or more than one, has that id.
 */
export async function jobStatus(jobId: string, options: JobStatusOptions = {}): Promise<JobOverview> {
  return withJobPlace(options, async (place) => {
    const state = await findJob(place, jobId);
    if (options.writeOutput) await writeOutputHere(state);
    return overview(state, place.runs);
  });
}

/** Every job `options` name, newest first. */
export async function listJobs(options: JobsOptions = {}): Promise<JobOverview[]> {
  return withJobPlace(options, listJobsIn);
}

/**
 * Cancel job `jobId` (or the one job whose id begins with it). A job a live process runs is
 * asked to stop (`requested`): its runner cancels the items not done and writes the output,
 * and a `runJob` waiting for it resolves to a `cancelled` summary. A job nobody runs is ended
 * here (`cancelled`), its output written. A job that had ended is left as it was (`finished`).
 * Rejects with a JobLookupError when no job, or more than one, has that id.
 */
export async function cancelJob(jobId: string, options: CancelJobOptions = {}): Promise<CancelOutcome> {
  return withJobPlace(options, (place) => cancelJobIn(place, jobId, options.reason ?? 'cancelled with cancelJob'));
}
