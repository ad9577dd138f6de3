import type { AgentJobStatus, EventMsg } from '../../protocol/index.js';
import type { ToolOutput } from '../../machines/tool-plan.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionActivity } from '../../lib/durable/host-durability.js';
import { log } from '../../lib/log.js';
import type { AgentControl, AgentReport, ToolContext } from '../tools/tool.js';
import { renderInstruction } from './input.js';
import { writeJobOutput } from './output.js';
import { ProgressThrottle, type JobProgress } from './progress.js';
import type { JobRecord, NewJobRecord } from './records.js';
import { resultCheck, type ResultCheck } from './schema.js';
import { countItems, type ItemState, type JobState } from './state.js';
import { ACCEPTED_REPORT, isRecordedResult, refusedReport, sameJson, THIS_RUNNER, unfitResult, type JobHandle } from './store.js';

/** What a job's tool call answers, and `runJob` resolves to (the names are Codex's). */
export interface JobSummary {
  readonly job_id: string;
  readonly status: AgentJobStatus;
  readonly output_csv_path: string;
  readonly total_items: number;
  readonly completed_items: number;
  readonly failed_items: number;
  readonly cancelled_items: number;
  readonly job_error: string | null;
  /** The first few items that failed, with why. */
  readonly failed_item_errors: readonly { readonly item_id: string; readonly source_id: string | null; readonly last_error: string }[];
}

/** What a runner needs of the parent session. */
export interface JobParent {
  /** The session's sub-agents: every item's agent is one, within the tree's limits. */
  readonly agents: AgentControl;
  /** The context agents are spawned in (its call id and turn configure them). */
  readonly spawnContext: ToolContext;
  /** Put an event on the parent's stream. */
  emit(msg: EventMsg): void;
  /** The agents an earlier runner of the job started; absent where agents end with their process. */
  readonly strays?: JobStrays;
}

/**
 * On NATS an item's agent lives on, on some worker, after the process that ran the job stopped:
 * a runner that takes the job up cannot wait for it as for its own agents, so it asks its log.
 */
export interface JobStrays {
  /** `working` while the agent is in a turn (it may still report), `ended` when it is idle or gone. */
  activity(agentId: string): Promise<SessionActivity>;
  /** Shut the agent down, wherever it runs. */
  close(agentId: string): Promise<void>;
}

const FAILED_ITEMS_SHOWN = 5;

/**
 * When an earlier runner's agent that is still in its turn is looked at again: after a second,
 * then less often (each look reads its whole log), at most every ten seconds.
 */
const STRAY_CHECK_MS = { first: 1_000, most: 10_000 } as const;
/** Waiting for room when the tree's agent_max_threads is taken by agents that are not the job's. */
const LIMIT_RETRY_MS = [250, 500, 1000, 2000, 5000] as const;

/** The item being worked on now, in this process. */
interface Live {
  agentId: string | null;
  /** Resolves once `item_started` is in the log (a result is logged after it). */
  started: Promise<void>;
  /** Aborted to stop waiting for the agent: its item was settled, or the job stops. */
  wake: AbortController;
  /** Set (synchronously) when the item's outcome is decided, so only one outcome is logged. */
  settled: boolean;
  /** The logging of that outcome: the item's state is final once it resolves. */
  settling: Promise<unknown> | null;
  /** The first result that did not match output_schema, and why: the agent is told, once. */
  invalid: { readonly result: Record<string, unknown>; readonly problems: string } | null;
  readonly startedAt: number;
}

/** An item's agent that an earlier runner started, watched until it reports, ends or runs out of time. */
interface Stray {
  readonly agentId: string;
  /** Aborted to stop waiting: it reported, or the job stops. */
  readonly wake: AbortController;
  /** The logging of the result it reported (or of the item's failure), once it has. */
  settling: Promise<void> | null;
  /** The result it reported that did not match the output schema, as for a live agent. */
  invalid: { result: Record<string, unknown> } | null;
}

/** Jobs running in this process, by id: where `report_agent_job_result` finds its job. */
export const runningJobs = new Map<string, JobRunner>();

/**
 * Runs one job to its end: each pending item gets a fresh sub-agent of the parent session (at
 * most `max_concurrency` at once, and never past the tree's `agent_max_threads`), whose result
 * comes back through `report`. Every change is logged before it counts, so a runner started on
 * the same log after a crash goes on where this one stopped: an item with a result is never run
 * again, one that was running starts afresh.
 */
export class JobRunner {
  readonly #handle: JobHandle;
  readonly #parent: JobParent;
  readonly #state: JobState;
  readonly #check: ResultCheck;
  readonly #live = new Map<string, Live>();
  /** Items waiting for an agent, in input order. */
  readonly #queue: ItemState[] = [];
  /** Items an earlier runner had started whose agent may still report, by item id. */
  readonly #strays = new Map<string, Stray>();
  /** Items whose agent is not closed yet (launched here, or strays): what the concurrency limit counts. */
  #active = 0;
  /** The tree had no room for another agent: wait for one of ours to close (or a while). */
  #blocked = false;
  #limitRetries = 0;
  #limitTimer: NodeJS.Timeout | null = null;
  #stopping: 'cancel' | 'pause' | 'fail' | null = null;
  #jobError: string | null = null;
  #finishing = false;
  readonly #startedAt = Date.now();
  /** Items finished in this run (the pace the ETA is computed from). */
  #finishedHere = 0;
  readonly #progress: ProgressThrottle;
  readonly #done: Promise<JobSummary>;
  #resolve!: (summary: JobSummary) => void;
  /**
   * Until `run` has sorted the items (which wait, which an earlier runner's agent holds), reports
   * wait and the job does not end (a cancel or pause meanwhile ends it once they are sorted).
   */
  #takingUp = true;
  readonly #takenUp: Promise<void>;
  #markTakenUp!: () => void;

  constructor(handle: JobHandle, parent: JobParent) {
    this.#handle = handle;
    this.#parent = parent;
    this.#state = handle.state;
    this.#check = resultCheck(handle.state.spec.output_schema);
    this.#progress = new ProgressThrottle(
      () => this.progress(),
      (progress) => parent.emit({ type: 'agent_job_progress', ...progress }),
    );
    this.#done = new Promise((resolve) => (this.#resolve = resolve));
    this.#takenUp = new Promise((resolve) => (this.#markTakenUp = resolve));
  }

  get jobId(): string {
    return this.#state.spec.job_id;
  }

  /** Run the job until it ends (or is paused); resolves to its summary. */
  async run(): Promise<JobSummary> {
    const { spec } = this.#state;
    if (runningJobs.has(spec.job_id)) throw new Error(`job ${spec.job_id} is already running in this process`);
    runningJobs.set(spec.job_id, this);
    try {
      await this.#handle.append({ type: 'runner_started', ...THIS_RUNNER });
    } catch (error) {
      runningJobs.delete(spec.job_id);
      this.#tookUp();
      // Stopped meanwhile: it ends (pause and cancel wait for that) as it would have at once.
      if (this.#stopping) this.#pump();
      throw error;
    }
    // Agents on other workers hand their results in through the store (NATS).
    this.#handle.serveReports?.((request) => this.report(request.agent_id, request.item_id, request.result, request.stop));
    // Items that were running when an earlier process stopped: in-process their agent stopped
    // with it, and the item starts afresh. On NATS the agent lives on and may still report: it
    // is watched until it does, ends its turn without a result, or runs out of time.
    const strays: ItemState[] = [];
    for (const item of [...this.#state.items.values()].sort((a, b) => a.spec.row_index - b.spec.row_index)) {
      if (item.status === 'running') {
        if (item.agentId !== null && this.#parent.strays) {
          strays.push(item);
          continue;
        }
        item.status = 'pending';
      }
      if (item.status === 'pending') this.#queue.push(item);
    }
    this.#handle.onCancel((reason) => this.cancel(reason, false));
    this.#progress.flush();
    for (const item of strays) this.#watchStray(item, this.#parent.strays!).catch((error: unknown) => this.#logFailure(error));
    this.#tookUp();
    if (this.#state.cancelRequested !== null) this.cancel(this.#state.cancelRequested, false);
    // Also when a cancel or pause came meanwhile: the job ends once nothing is active.
    this.#pump();
    return this.#done;
  }

  #tookUp(): void {
    this.#takingUp = false;
    this.#markTakenUp();
  }

  /** Stop: no item starts any more, the running ones are stopped, and the job ends as cancelled. */
  cancel(reason: string, record = true): void {
    if (this.#stopping === 'cancel' || this.#stopping === 'fail' || this.#finishing) return;
    this.#stopping = 'cancel';
    if (record && this.#state.cancelRequested === null) {
      this.#handle.append({ type: 'cancel_requested', reason }).catch((error: unknown) => this.#logFailure(error));
    }
    this.#stopAll();
  }

  /**
   * Stop running the job here without ending it (its session is closing): the running items'
   * agents are closed and the job stays as its log says, to go on when the session is resumed.
   */
  async pause(): Promise<void> {
    if (this.#stopping || this.#finishing) {
      await this.#done;
      return;
    }
    this.#stopping = 'pause';
    this.#stopAll();
    await this.#done;
  }

  /** What the job looks like now. */
  progress(): JobProgress {
    const counts = countItems(this.#state.items.values());
    const left = counts.pending + counts.running;
    const elapsed = Date.now() - this.#startedAt;
    const status: AgentJobStatus = this.#state.finished?.status ?? 'running';
    return {
      job_id: this.jobId,
      status,
      total: counts.total,
      pending: counts.pending,
      running: counts.running,
      completed: counts.completed,
      failed: counts.failed,
      eta_ms: status !== 'running' ? 0 : this.#finishedHere === 0 ? null : Math.round((left * elapsed) / this.#finishedHere),
    };
  }

  /** `report_agent_job_result` from agent `agentId`. */
  async report(agentId: string, itemId: string, result: Record<string, unknown>, stop: boolean): Promise<ToolOutput> {
    const item = this.#state.items.get(itemId);
    if (!item) return refusedReport(`job ${this.jobId} has no item "${itemId}"`);
    // Checked where the result is sent too; here as well, for a report that came over NATS.
    const unfit = unfitResult(result);
    if (unfit !== null) return unfit;
    // An agent on this worker can report while the runner is still taking the job up.
    await this.#takenUp;
    const live = this.#live.get(itemId);
    // A fast agent can report before its spawn has returned here.
    if (live && live.agentId === null) await live.started;
    // An outcome on its way to the log (perhaps this agent's own result, sent twice): answer from it.
    const settling = live?.settling ?? this.#strays.get(itemId)?.settling;
    if (settling) await settling.catch(() => undefined);
    if (tookResultOf(item, agentId, result)) return ACCEPTED_REPORT;
    if (item.status === 'completed') return refusedReport(`item ${itemId} already has a result; stop now`);
    if (item.status === 'failed') return refusedReport(`item ${itemId} has failed already (${item.error ?? 'no reason'}); stop now`);
    const stray = this.#strays.get(itemId);
    if (!live && stray?.agentId === agentId) return this.#reportOfEarlierRunner(item, stray, result, stop);
    if (!live || live.agentId !== agentId) return refusedReport(`item ${itemId} of job ${this.jobId} is not this agent's to report`);
    if (live.settled) return refusedReport(`item ${itemId} is over (${item.error ?? 'already settled'}); stop now`);
    const problems = this.#check.problems(result);
    if (problems !== null) {
      // The same result sent again (its answer was lost) is answered as the first, not counted twice.
      if (live.invalid === null || sameJson(live.invalid.result, result)) {
        live.invalid = { result, problems };
        return schemaRefusal(problems);
      }
      await this.#settle(live, { type: 'item_failed', item_id: itemId, error: `the result does not match output_schema: ${problems}` });
      return schemaFailure(itemId, problems);
    }
    if (!(await this.#settle(live, { type: 'item_result', item_id: itemId, agent_id: agentId, result }))) {
      await live.settling?.catch(() => undefined);
      return tookResultOf(item, agentId, result) ? ACCEPTED_REPORT : refusedReport(`item ${itemId} is over (${item.error ?? 'already settled'}); stop now`);
    }
    if (stop) this.cancel("an item's agent asked to stop the job");
    return ACCEPTED_REPORT;
  }

  /**
   * A result from the agent an earlier runner of this job started (its process stopped while
   * the agent, on another worker, went on): the item has not started again here, so the
   * result counts and the item does not run again.
   */
  async #reportOfEarlierRunner(item: ItemState, stray: Stray, result: Record<string, unknown>, stop: boolean): Promise<ToolOutput> {
    if (stray.settling) {
      // The same result sent twice at once: answer as the first is answered.
      await stray.settling.catch(() => undefined);
      return tookResultOf(item, stray.agentId, result) ? ACCEPTED_REPORT : refusedReport(`item ${item.spec.item_id} is over; stop now`);
    }
    const problems = this.#check.problems(result);
    if (problems !== null) {
      // As for an agent of this runner: one chance to send a result that matches.
      if (stray.invalid === null || sameJson(stray.invalid.result, result)) {
        stray.invalid = { result };
        return schemaRefusal(problems);
      }
      stray.settling = this.#logOutcome({ type: 'item_failed', item_id: item.spec.item_id, error: `the result does not match output_schema: ${problems}` });
      stray.wake.abort();
      await stray.settling;
      return schemaFailure(item.spec.item_id, problems);
    }
    stray.settling = this.#logOutcome({ type: 'item_result', item_id: item.spec.item_id, agent_id: stray.agentId, result });
    stray.wake.abort();
    await stray.settling;
    if (stop) this.cancel("an item's agent asked to stop the job");
    return ACCEPTED_REPORT;
  }

  /**
   * Watch an agent an earlier runner started. It holds a place under max_concurrency while it
   * works; once it reports, the item is done; once it is idle or gone without a result, the
   * item starts afresh, first in line; past the item's max_runtime_seconds (counted from when
   * the earlier runner started it) the item fails as one of this runner's would.
   */
  async #watchStray(item: ItemState, strays: JobStrays): Promise<void> {
    const stray: Stray = { agentId: item.agentId!, wake: new AbortController(), settling: null, invalid: null };
    this.#strays.set(item.spec.item_id, stray);
    this.#active++;
    const runtimeMs = this.#state.spec.max_runtime_seconds * 1000;
    const deadline = (item.startedAt !== null ? Date.parse(item.startedAt) : Date.now()) + runtimeMs;
    let timedOut = false;
    let pause: number = STRAY_CHECK_MS.first;
    while (!this.#stopping && stray.settling === null) {
      const activity = await strays.activity(stray.agentId).catch((error: unknown) => {
        log.warn({ err: error, job: this.jobId, agent: stray.agentId }, 'cannot read the log of a job agent started by an earlier runner');
        return 'working' as const;
      });
      if (activity === 'ended' || this.#stopping || stray.settling !== null) break;
      // Only an agent still at work runs out of time (one gone since a pause long ago does not).
      if (Date.now() >= deadline) {
        timedOut = true;
        break;
      }
      await sleep(Math.min(pause, deadline - Date.now()), undefined, { signal: stray.wake.signal }).catch(() => undefined);
      pause = Math.min(pause * 2, STRAY_CHECK_MS.most);
    }
    // The result it reported is logged before the stray goes: the same result sent again finds it.
    if (stray.settling !== null) await stray.settling.catch((error: unknown) => this.#logFailure(error));
    // From here on a report of this agent is refused: the item is settled, or starts afresh.
    this.#strays.delete(item.spec.item_id);
    if (stray.settling === null && timedOut && !this.#stopping) {
      await this.#logOutcome({
        type: 'item_failed',
        item_id: item.spec.item_id,
        error: `the item ran past max_runtime_seconds (${runtimeMs / 1000} s) without reporting a result`,
      }).catch((error: unknown) => this.#logFailure(error));
    }
    this.#closeStray(stray.agentId);
    if (item.status === 'running') item.status = 'pending';
    if (item.status === 'pending' && !this.#stopping) this.#queue.unshift(item);
    this.#active--;
    this.#progress.changed();
    this.#pump();
  }

  /** Decide an item's outcome once: log it, then stop waiting for its agent. False if it was decided already. */
  async #settle(live: Live, record: NewJobRecord): Promise<boolean> {
    if (live.settled) return false;
    live.settled = true;
    live.settling = (async () => {
      await live.started;
      await this.#logOutcome(record);
    })();
    try {
      await live.settling;
    } finally {
      live.wake.abort();
    }
    return true;
  }

  /** Log an item's outcome; it counts towards the pace the ETA is computed from. */
  async #logOutcome(record: NewJobRecord): Promise<void> {
    await this.#handle.append(record);
    this.#finishedHere++;
    this.#progress.changed();
  }

  #pump(): void {
    if (this.#finishing || this.#takingUp) return;
    if (!this.#stopping) {
      while (this.#active < this.#state.spec.max_concurrency && !this.#blocked && this.#queue.length > 0) {
        this.#launch(this.#queue.shift()!).catch((error: unknown) => this.#logFailure(error));
      }
    }
    if (this.#active === 0 && (this.#stopping || this.#queue.length === 0) && this.#limitTimer === null)
      this.#finish().catch((error: unknown) => this.#logFailure(error));
  }

  /** Shut an earlier runner's agent down, in the background (it may be gone already). */
  #closeStray(agentId: string): void {
    this.#parent.strays
      ?.close(agentId)
      .catch((error: unknown) => log.debug({ err: error, job: this.jobId, agent: agentId }, 'could not close a stray job agent'));
  }

  async #launch(item: ItemState): Promise<void> {
    const { spec } = this.#state;
    this.#active++;
    item.status = 'running';
    let markStarted!: () => void;
    const live: Live = {
      agentId: null,
      started: new Promise<void>((resolve) => (markStarted = resolve)),
      wake: new AbortController(),
      settled: false,
      settling: null,
      invalid: null,
      startedAt: Date.now(),
    };
    this.#live.set(item.spec.item_id, live);
    this.#progress.changed();
    const attempt = item.attempts + 1;
    let agent: AgentReport;
    try {
      agent = await this.#parent.agents.spawn(
        { message: workerPrompt(this.#state, item), agentType: spec.agent_type ?? undefined, forkContext: false },
        this.#parent.spawnContext,
      );
    } catch (error) {
      this.#live.delete(item.spec.item_id);
      markStarted();
      const message = error instanceof Error ? error.message : String(error);
      if (/agent_max_threads|no host is available|no worker can take/.test(message)) {
        // The tree (or every worker) is full: this item waits for room (Codex does the same).
        item.status = 'pending';
        this.#queue.unshift(item);
        this.#blocked = true;
        this.#active--;
        if (this.#active === 0) this.#retryLater();
      } else if (/agent_max_depth/.test(message)) {
        item.status = 'pending';
        this.#queue.unshift(item);
        this.#active--;
        this.#fail(`cannot run the job's agents: ${message}`);
      } else {
        this.#active--;
        await this.#erroredAttempt(item, `its agent could not start: ${message}`).catch((e: unknown) => this.#logFailure(e));
        if (item.status === 'running') item.status = 'pending';
        if (item.status === 'pending' && !this.#stopping) this.#queue.push(item);
      }
      this.#progress.changed();
      this.#pump();
      return;
    }
    this.#limitRetries = 0;
    live.agentId = agent.agent_id;
    try {
      await this.#handle.append({ type: 'item_started', item_id: item.spec.item_id, agent_id: agent.agent_id, attempt });
    } catch (error) {
      this.#logFailure(error);
    }
    markStarted();
    // Settling the item rejects when its outcome cannot be logged: the item is then taken as
    // not done (it runs again), and the agent is still closed and its slot given back below.
    await this.#watch(item, live, agent.agent_id, spec.max_runtime_seconds * 1000).catch((error: unknown) => this.#logFailure(error));
    // The item's outcome may still be on its way to the log (a report that came in meanwhile).
    await live.settling?.catch((error: unknown) => this.#logFailure(error));
    await this.#parent.agents
      .close(agent.agent_id)
      .catch((error: unknown) => log.warn({ err: error, job: this.jobId, agent: agent.agent_id }, 'could not close a job item agent'));
    this.#live.delete(item.spec.item_id);
    if (item.status === 'running') item.status = 'pending';
    if (item.status === 'pending' && !this.#stopping) this.#queue.push(item);
    this.#active--;
    this.#blocked = false;
    this.#progress.changed();
    this.#pump();
  }

  /** Wait for the item's agent to finish, report, or run out of time; log what that means for the item. */
  async #watch(item: ItemState, live: Live, agentId: string, runtimeMs: number): Promise<void> {
    const deadline = live.startedAt + runtimeMs;
    for (;;) {
      if (live.settled || this.#stopping) return;
      let outcome: { agents: AgentReport[]; timed_out: boolean };
      try {
        outcome = await this.#parent.agents.wait([agentId], { returnWhen: 'all', timeoutMs: Math.max(1, deadline - Date.now()), signal: live.wake.signal });
      } catch (error) {
        await this.#settleErrored(item, live, `its agent was lost: ${(error as Error).message}`);
        return;
      }
      if (live.settled || this.#stopping) return;
      if (outcome.timed_out) {
        if (Date.now() < deadline) continue;
        await this.#settle(live, {
          type: 'item_failed',
          item_id: item.spec.item_id,
          error: `the item ran past max_runtime_seconds (${runtimeMs / 1000} s) without reporting a result`,
        });
        return;
      }
      const agent = outcome.agents[0];
      if (!agent) return;
      switch (agent.status) {
        case 'completed':
          await this.#settle(live, {
            type: 'item_failed',
            item_id: item.spec.item_id,
            error:
              live.invalid !== null
                ? `the result does not match output_schema: ${live.invalid.problems}`
                : `the agent finished without calling report_agent_job_result${agent.message ? ` (its last message: ${excerpt(agent.message)})` : ''}`,
          });
          return;
        case 'errored':
        case 'interrupted':
        case 'shutdown':
          await this.#settleErrored(
            item,
            live,
            `its agent ${agent.status === 'errored' ? 'failed' : `was ${agent.status === 'shutdown' ? 'closed' : 'interrupted'}`}${agent.message ? `: ${agent.message}` : ''}`,
          );
          return;
        default:
          // Still working (woken early): wait on.
          if (live.wake.signal.aborted) live.wake = new AbortController();
      }
    }
  }

  async #settleErrored(item: ItemState, live: Live, error: string): Promise<void> {
    if (live.settled) return;
    live.settled = true;
    live.settling = (async () => {
      await live.started;
      await this.#erroredAttempt(item, error);
    })();
    try {
      await live.settling;
    } finally {
      live.wake.abort();
    }
  }

  /** An attempt whose agent errored: the item runs again, unless it has had all its attempts. */
  async #erroredAttempt(item: ItemState, error: string): Promise<void> {
    const max = this.#state.spec.max_attempts;
    const attempt = item.errored + 1;
    if (attempt < max) {
      await this.#handle.append({ type: 'item_retry', item_id: item.spec.item_id, error: `attempt ${attempt} of ${max}: ${error}` });
    } else {
      await this.#handle.append({ type: 'item_failed', item_id: item.spec.item_id, error: `${error} (attempt ${attempt} of ${max})` });
      this.#finishedHere++;
    }
    this.#progress.changed();
  }

  #retryLater(): void {
    const delay = LIMIT_RETRY_MS[Math.min(this.#limitRetries++, LIMIT_RETRY_MS.length - 1)]!;
    this.#limitTimer = setTimeout(() => {
      this.#limitTimer = null;
      this.#blocked = false;
      this.#pump();
    }, delay);
  }

  #fail(error: string): void {
    if (this.#stopping === 'fail' || this.#finishing) return;
    this.#jobError = error;
    this.#stopping = 'fail';
    this.#stopAll();
  }

  #stopAll(): void {
    if (this.#limitTimer) clearTimeout(this.#limitTimer);
    this.#limitTimer = null;
    for (const live of this.#live.values()) live.wake.abort();
    for (const stray of this.#strays.values()) stray.wake.abort();
    this.#pump();
  }

  async #finish(): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    runningJobs.delete(this.jobId);
    this.#progress.stop();
    if (this.#stopping === 'pause') {
      await this.#handle.append({ type: 'runner_stopped', ...THIS_RUNNER }).catch((error: unknown) => this.#logFailure(error));
      await this.#handle.close().catch(() => undefined);
      this.#resolve(this.summary());
      return;
    }
    let status: Exclude<AgentJobStatus, 'running'> = this.#stopping === 'cancel' ? 'cancelled' : this.#stopping === 'fail' ? 'failed' : 'completed';
    // The output shows what the log will say once the job is over: items that never ran are cancelled.
    for (const item of this.#state.items.values()) if (item.status === 'pending' || item.status === 'running') item.status = 'cancelled';
    try {
      await writeJobOutput(this.#state);
    } catch (error) {
      status = 'failed';
      this.#jobError = `could not write the output ${this.#state.spec.output_path}: ${(error as Error).message}`;
    }
    try {
      await this.#handle.append({ type: 'job_finished', status, error: this.#jobError });
    } catch (error) {
      this.#logFailure(error);
    }
    this.#progress.flush();
    await this.#handle.close().catch(() => undefined);
    this.#resolve(this.summary());
  }

  summary(): JobSummary {
    const { spec } = this.#state;
    const counts = countItems(this.#state.items.values());
    const failed = [...this.#state.items.values()].filter((i) => i.status === 'failed').sort((a, b) => a.spec.row_index - b.spec.row_index);
    return {
      job_id: spec.job_id,
      status: this.#state.finished?.status ?? 'running',
      output_csv_path: spec.output_path,
      total_items: counts.total,
      completed_items: counts.completed,
      failed_items: counts.failed,
      cancelled_items: counts.cancelled,
      job_error: this.#jobError ?? this.#state.finished?.error ?? null,
      failed_item_errors: failed
        .slice(0, FAILED_ITEMS_SHOWN)
        .map((i) => ({ item_id: i.spec.item_id, source_id: i.spec.source_id, last_error: i.error ?? 'unknown error' })),
    };
  }

  #logFailure(error: unknown): void {
    log.error({ err: error, job: this.jobId }, 'could not write to the job log');
  }
}

/** What an item's agent is asked: the rendered instruction, its row, and how to hand in the result. */
export function workerPrompt(state: JobState, item: ItemState): string {
  const { spec } = state;
  const schema = spec.output_schema
    ? `a JSON object matching this JSON Schema:\n${JSON.stringify(spec.output_schema, null, 2)}`
    : 'a JSON object with your result';
  return [
    `You are the agent of one item of an agent job.`,
    '',
    renderInstruction(spec.instruction, item.spec.row),
    '',
    `The item's row: ${JSON.stringify(item.spec.row)}`,
    '',
    `When you have the result, call report_agent_job_result once, with job_id ${JSON.stringify(spec.job_id)}, item_id ${JSON.stringify(item.spec.item_id)} and result: ${schema}`,
    'Once it is accepted your work is done; an agent that stops without reporting fails its item.',
  ].join('\n');
}

/** Whether the item's recorded result is `result`, from `agentId` (isRecordedResult): a copy gets the first's answer. */
function tookResultOf(item: ItemState, agentId: string, result: Record<string, unknown>): boolean {
  return isRecordedResult(item.status === 'completed' ? item : null, agentId, result);
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}

export type { JobRecord };

/** The answer to a first result that does not match the output schema: one more chance. */
function schemaRefusal(problems: string): ToolOutput {
  return refusedReport(
    `The result does not match the job's output_schema (${problems}). Call report_agent_job_result again with a result that matches; a second result that does not match fails the item.`,
  );
}

/** The answer to a second result that does not match: the item has failed. */
function schemaFailure(itemId: string, problems: string): ToolOutput {
  return refusedReport(`The result was refused again (${problems}), so item ${itemId} has failed. Stop now.`);
}
