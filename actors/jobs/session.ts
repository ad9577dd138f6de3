import type { ResponseItem } from '../../protocol/index.js';
import { buildTurnContext, type SessionSettings, type TurnContext } from '../../machines/turn-context.js';
import { inBackground, log } from '../../lib/log.js';
import type { SessionResource, ToolContext } from '../tools/tool.js';
import { narrowerApproval, narrowerSandbox } from '../agents/roles.js';
import { jobSpec, type PreparedJob } from './prepare.js';
import { JobRunner, runningJobs, type JobStrays, type JobSummary } from './runner.js';
import { FileJobStore, type JobHandle, type JobStore } from './store.js';

/** What a session gives its jobs: built by the host for each regular session as it starts. */
export interface JobSession {
  readonly sessionId: string;
  /** TROUPE_HOME of the host: the jobs' logs live under it. */
  readonly home: string;
  /** Where the jobs live: JetStream on NATS; absent, files under `home`. */
  readonly store?: JobStore | undefined;
  /** A brand-new session has no jobs to take up again. */
  readonly fresh: boolean;
  readonly settings: SessionSettings;
  /** A tool context of the session (its sub-agents, its event stream) for call `callId` of `turn`. */
  toolContext(callId: string, turn: TurnContext, signal: AbortSignal): ToolContext;
  /** Add an item to the session's history (the note that a job it started ended). */
  record(item: ResponseItem): void;
  /** True when no task runs in the session. */
  idle(): boolean;
  /** On NATS: the agents an earlier runner of a job started, which live on after it (see JobParent). */
  readonly strays?: JobStrays | undefined;
  /** Shut this session down, as a client's `shutdown` op would (its job opened it and has ended). */
  shutdown(): Promise<void>;
}

/** The jobs side of a live session, while it lives. */
export class SessionJobs implements SessionResource {
  readonly #session: JobSession;
  readonly #store: JobStore;
  readonly #runners = new Set<JobRunner>();
  readonly #stop = new AbortController();
  #disposed = false;

  constructor(session: JobSession) {
    this.#session = session;
    this.#store = session.store ?? new FileJobStore(session.home);
  }

  get sessionId(): string {
    return this.#session.sessionId;
  }

  /** Where this session's jobs live (and its agents' results go when their runner is elsewhere). */
  get store(): JobStore {
    return this.#store;
  }

  /** Take up the jobs this session had not finished when its last process stopped. */
  async resume(): Promise<void> {
    for (const jobId of await this.#store.unfinishedOf(this.sessionId)) {
      if (this.#disposed || runningJobs.has(jobId)) continue;
      const handle = await this.#store.open(jobId).catch((error: unknown) => {
        log.warn({ err: error, job: jobId }, 'cannot open an unfinished job');
        return null;
      });
      if (!handle) continue;
      if (handle.state.finished || this.#disposed) {
        await handle.close();
        continue;
      }
      void this.#run(handle).catch((error: unknown) => log.error({ err: error, job: jobId }, 'a resumed job failed'));
    }
  }

  /** Start a prepared job in this session, without a model turn (`runJob`, `troupe jobs run`). */
  async start(
    prepared: PreparedJob,
    options: { signal?: AbortSignal | undefined; onStored?: (() => void) | undefined; shutdownWhenDone?: boolean | undefined } = {},
  ): Promise<JobSummary> {
    if (this.#disposed) throw new Error(`session ${this.sessionId} is closing`);
    const callId = `job-${prepared.jobId}`;
    const turn = buildTurnContext(this.#session.settings, callId, {});
    const handle = await this.#store.create(jobSpec(prepared, { sessionId: this.sessionId, callId, turn, shutdownWhenDone: options.shutdownWhenDone }));
    options.onStored?.();
    return this.#run(handle, options.signal);
  }

  async #run(handle: JobHandle, signal?: AbortSignal): Promise<JobSummary> {
    const { spec } = handle.state;
    const ctx = this.#session.toolContext(spec.call_id, this.#narrowed(spec.turn as unknown as TurnContext), this.#stop.signal);
    if (!ctx.agents) {
      await handle.close();
      throw new Error(`session ${this.sessionId} cannot have sub-agents, so it cannot run job ${spec.job_id}`);
    }
    if (this.#disposed) {
      await handle.close();
      throw new Error(`session ${this.sessionId} closed before job ${spec.job_id} could go on`);
    }
    const strays = this.#session.strays;
    const runner = new JobRunner(handle, { agents: ctx.agents, spawnContext: ctx, emit: (msg) => ctx.emit(msg), ...(strays ? { strays } : {}) });
    this.#runners.add(runner);
    const cancel = () => runner.cancel('the caller cancelled the job');
    try {
      const done = runner.run();
      signal?.addEventListener('abort', cancel, { once: true });
      if (signal?.aborted) cancel();
      const summary = await done;
      if (summary.status !== 'running') {
        this.#announce(summary, ctx);
        // Whichever process ends the job (the first, or one that adopted the session).
        if (spec.shutdown_when_done) inBackground(this.#session.shutdown(), `shutting down the session of job ${spec.job_id}`);
      }
      return summary;
    } finally {
      signal?.removeEventListener('abort', cancel);
      this.#runners.delete(runner);
    }
  }

  /**
   * The turn a job's agents are spawned from: the one stored with the job, held to the
   * session's policies as they are now. A job taken up by a session resumed with a narrower
   * sandbox or approval policy runs its remaining items under that, never under the wider
   * one it was started with.
   */
  #narrowed(stored: TurnContext): TurnContext {
    const { settings } = this.#session;
    return {
      ...stored,
      approval_policy: narrowerApproval(settings.approval_policy, stored.approval_policy),
      sandbox_policy: narrowerSandbox(settings.sandbox_policy, stored.sandbox_policy, { parent: settings.cwd, wanted: stored.cwd }),
    };
  }

  /** A job that no tool call waits for ended: say so on the stream, and in the history when the session is idle. */
  #announce(summary: JobSummary, ctx: ToolContext): void {
    const text = `agent job ${summary.job_id} ${summary.status}: ${summary.completed_items} of ${summary.total_items} items completed, ${summary.failed_items} failed${summary.cancelled_items > 0 ? `, ${summary.cancelled_items} cancelled` : ''}; results in ${summary.output_csv_path}`;
    ctx.emit({ type: 'background_event', message: text });
    if (this.#session.idle()) {
      this.#session.record({
        type: 'message',
        role: 'user',
        content: [{ type: 'input_text', text: `<agent_job_notification>\n${JSON.stringify(summary)}\n</agent_job_notification>` }],
      });
    }
  }

  /** The session is closing: its running jobs stop here, to go on when it is resumed. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    sessionJobs.delete(this.sessionId);
    await Promise.all([...this.#runners].map((r) => r.pause()));
    this.#stop.abort();
  }
}

/** The live sessions of this process, by id: where `runJob` starts a job in the session it opened. */
export const sessionJobs = new Map<string, SessionJobs>();

/**
 * Called by the host as a regular session starts: the jobs the session had not finished go on.
 * The host disposes the result when the session closes, before it closes the sub-agents: the
 * running jobs stop there, to go on when the session is resumed.
 */
export function attachJobs(session: JobSession): SessionJobs {
  const jobs = new SessionJobs(session);
  sessionJobs.set(session.sessionId, jobs);
  if (!session.fresh)
    void jobs.resume().catch((error: unknown) => log.error({ err: error, session: session.sessionId }, 'could not take up the jobs of a resumed session'));
  return jobs;
}
