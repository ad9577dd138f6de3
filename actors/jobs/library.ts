import type { SessionConfig } from '../../protocol/index.js';
import type { Runtime } from '../runtime.js';
import { DEFAULT_AGENT_MAX_THREADS } from '../agents/supervisor.js';
import { prepareJob, type JobRequest } from './prepare.js';
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

/**
 * Run an agent job without a model of its own, as `spawn_agents_on_csv` would: a session is
 * opened whose only work is the job, the job runs in it, and the session is shut down. Resolves
 * to the job's summary; rejects with a JobInputError (nothing written) when the input, the
 * instruction or the paths are wrong, and with a SessionError when the session cannot open.
 * In-process runtimes only, for now.
 */
export async function runJob(runtime: Runtime, options: RunJobOptions): Promise<JobSummary> {
  if (!runtime.host) throw new Error('runJob needs an in-process Runtime: agent jobs on NATS are not supported yet');
  const cwd = options.config?.cwd ?? process.cwd();
  const prepared = await prepareJob(options, cwd);
  const session = await runtime.newSession({
    approval_policy: 'never',
    ...options.config,
    cwd,
    agent_max_threads: Math.max(options.config?.agent_max_threads ?? DEFAULT_AGENT_MAX_THREADS, prepared.concurrency),
  });
  const stopListening = runtime.onEvent((event) => {
    if (event.session_id === session.id && event.msg.type === 'agent_job_progress') {
      const { type: _type, ...progress } = event.msg;
      options.onProgress?.(progress);
    }
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
