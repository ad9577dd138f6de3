import { ReportAgentJobResultArgs, SpawnAgentsOnCsvArgs } from '../../protocol/index.js';
import { rulesHome } from '../../lib/approval/index.js';
import { troupeHome } from '../../lib/rollout/index.js';
import { checkWritable, realPathOf, type WriteVerdict } from '../../lib/sandbox/index.js';
import { planApproval, type ApprovalNeed } from '../tools/orchestrator.js';
import { snapshotDirectories } from '../tools/shell-snapshot.js';
import { defineTool, type ApprovalMemory, type ToolContext, type ToolHandler, type ToolPlan } from '../tools/tool.js';
import { JobInputError } from './input.js';
import { jobSpec, plannedOutputPath, prepareJob } from './prepare.js';
import { JobRunner, runningJobs } from './runner.js';
import { sessionJobs } from './session.js';
import { ACCEPTED_REPORT, FileJobStore, isJobId, isRecordedResult, refusedReport, unfitResult, type JobStore } from './store.js';

/** The store of the session the tool runs in (JetStream on NATS), or the files under its home. */
function storeOf(ctx: ToolContext): JobStore {
  return sessionJobs.get(ctx.sessionId)?.store ?? new FileJobStore(ctx.home ?? troupeHome());
}

/**
 * troupe's own process writes a job's output, so the sandbox cannot hold that write: it is
 * decided here as apply_patch decides its writes (lib/sandbox checkWritable: the writable
 * roots, symlinks resolved, .git, .troupe and TROUPE_HOME kept read-only). Outside them the
 * job asks first, or is refused under `never`; under `untrusted` it always asks, as every
 * patch does. The items' agents get the parent's approval and sandbox policies (their role's
 * only when narrower), never more.
 */
function planJob(args: SpawnAgentsOnCsvArgs, ctx: ToolContext, approvals: ApprovalMemory): ToolPlan {
  const turn = ctx.turn;
  const target = plannedOutputPath(args, turn.cwd);
  const verdict = outputVerdict(args, ctx);
  const ask = (reason: string): ApprovalNeed => ({
    kind: 'ask',
    request: { type: 'tool', tool: 'spawn_agents_on_csv', arguments: args, reason },
    // Where the output really goes: an approval for the session does not follow a link retargeted since.
    approvalKey: `agent-job-output:${realPathOf(target)}`,
  });
  const mode = turn.sandbox_policy.mode;
  let need: ApprovalNeed = { kind: 'none' };
  if (turn.approval_policy === 'untrusted') need = ask(`the job writes its results to ${target}, and the approval policy asks before every file write`);
  else if (!verdict.ok) {
    need =
      turn.approval_policy === 'never'
        ? {
            kind: 'reject',
            reason: `spawn_agents_on_csv refused: the job would write its results to ${target}, but ${verdict.why}, and the approval policy "never" forbids asking the user. Choose an output_csv_path inside the writable roots.`,
          }
        : ask(`the job writes its results to ${target}, but ${verdict.why}`);
  }
  return planApproval(need, approvals, mode !== 'danger-full-access');
}

/** Whether the sandbox lets the job write its output (at `path`, default where it was asked to go). */
function outputVerdict(args: SpawnAgentsOnCsvArgs, ctx: ToolContext, path = plannedOutputPath(args, ctx.turn.cwd)): WriteVerdict {
  return checkWritable(ctx.turn, path, { home: rulesHome(ctx), readOnly: snapshotDirectories() });
}

export const spawnAgentsOnCsvTool: ToolHandler<unknown> = defineTool({
  name: 'spawn_agents_on_csv',
  description:
    "Run an agent job: one new sub-agent per row of a CSV file (or JSON Lines), each given the instruction with its row's values in the {column} placeholders. Every agent must hand in its result with report_agent_job_result (matching output_schema when given); an agent that stops without reporting fails its item. Blocks until every row is done, then writes the results (input columns, status, result, error) to output_csv_path, or next to the input, and returns a summary.",
  args: SpawnAgentsOnCsvArgs,
  plan: planJob,
  run: async (args, ctx, plan) => {
    if (!ctx.agents) return { text: 'sub-agents are not available in this session, so neither are agent jobs', success: false };
    let runner: JobRunner;
    try {
      const prepared = await prepareJob({ ...args, max_concurrency: args.max_concurrency ?? args.max_workers }, ctx.turn.cwd);
      // The plan judged the path as it was named; where it resolves now (the default's real
      // name, a link made since) must be as writable, unless the user was asked about it.
      if (!plan.userApproved && outputVerdict(args, ctx).ok) {
        const now = outputVerdict(args, ctx, prepared.outputPath);
        if (!now.ok) return { text: `spawn_agents_on_csv refused: the job would write its results to ${prepared.outputPath}, but ${now.why}`, success: false };
      }
      const store = storeOf(ctx);
      const handle = await store.create(jobSpec(prepared, { sessionId: ctx.sessionId, callId: ctx.callId, turn: ctx.turn }));
      runner = new JobRunner(handle, { agents: ctx.agents, spawnContext: ctx, emit: (msg) => ctx.emit(msg) });
    } catch (error) {
      if (error instanceof JobInputError) return { text: error.message, success: false };
      throw error;
    }
    const interrupt = () => runner.cancel('the turn that started the job was interrupted');
    ctx.signal.addEventListener('abort', interrupt, { once: true });
    try {
      const done = runner.run();
      if (ctx.signal.aborted) interrupt();
      const summary = await done;
      return { text: JSON.stringify(summary), success: summary.status !== 'failed' };
    } finally {
      ctx.signal.removeEventListener('abort', interrupt);
    }
  },
});

export const reportAgentJobResultTool: ToolHandler<unknown> = defineTool({
  name: 'report_agent_job_result',
  description:
    'For the agent of an agent job item only: hand in the result of your item, once, with the job_id and item_id your task names. The result must be a JSON object (matching the output schema your task shows, if any). Set stop to true to cancel the rest of the job.',
  args: ReportAgentJobResultArgs,
  // The runner answers a result sent again as it answered the first (JobRunner.report).
  repeatable: true,
  run: async (args, ctx) => {
    if (!isJobId(args.job_id)) return refusedReport(`${JSON.stringify(args.job_id)} is not a job id: use the job_id your task names`);
    const unfit = unfitResult(args.result);
    if (unfit !== null) return unfit;
    const runner = runningJobs.get(args.job_id);
    if (runner) return runner.report(ctx.sessionId, args.item_id, args.result, args.stop ?? false);
    const store = storeOf(ctx);
    // The job runs in another process (its session is on another worker): the result goes there.
    if (store.report)
      return store.report(args.job_id, { agent_id: ctx.sessionId, item_id: args.item_id, result: args.result, stop: args.stop ?? false }, ctx.signal);
    // Nobody runs the job here (it has ended): its log answers. A copy of the result it recorded
    // from this agent, sent again after the job ended, gets the answer the first got.
    const item = (await store.read(args.job_id))?.items.get(args.item_id);
    if (isRecordedResult(item?.status === 'completed' ? item : null, ctx.sessionId, args.result)) return ACCEPTED_REPORT;
    return refusedReport(`job ${args.job_id} is not running (it ended, or it is not a job of this session tree)`);
  },
});

/** The agent job tools, registered for regular sessions. */
export const jobTools: readonly ToolHandler<unknown>[] = [spawnAgentsOnCsvTool, reportAgentJobResultTool];
