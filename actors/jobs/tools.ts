import { ReportAgentJobResultArgs, SpawnAgentsOnCsvArgs } from '../../protocol/index.js';
import { troupeHome } from '../../lib/rollout/index.js';
import { defineTool, type ToolContext, type ToolHandler } from '../tools/tool.js';
import { JobInputError } from './input.js';
import { jobSpec, prepareJob } from './prepare.js';
import { JobRunner, runningJobs } from './runner.js';
import { sessionJobs } from './session.js';
import { FileJobStore, type JobStore } from './store.js';

/** The store of the session the tool runs in (JetStream on NATS), or the files under its home. */
function storeOf(ctx: ToolContext): JobStore {
  return sessionJobs.get(ctx.sessionId)?.store ?? new FileJobStore(ctx.home ?? troupeHome());
}

export const spawnAgentsOnCsvTool: ToolHandler<unknown> = defineTool({
  name: 'spawn_agents_on_csv',
  description:
    "Run an agent job: one new sub-agent per row of a CSV file (or JSON Lines), each given the instruction with its row's values in the {column} placeholders. Every agent must hand in its result with report_agent_job_result (matching output_schema when given); an agent that stops without reporting fails its item. Blocks until every row is done, then writes the results (input columns, status, result, error) to output_csv_path, or next to the input, and returns a summary.",
  args: SpawnAgentsOnCsvArgs,
  run: async (args, ctx) => {
    if (!ctx.agents) return { text: 'sub-agents are not available in this session, so neither are agent jobs', success: false };
    let runner: JobRunner;
    try {
      const prepared = await prepareJob({ ...args, max_concurrency: args.max_concurrency ?? args.max_workers }, ctx.turn.cwd);
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
  run: async (args, ctx) => {
    const runner = runningJobs.get(args.job_id);
    const store = runner ? null : storeOf(ctx);
    // The job runs in another process (its session is on another worker): the result goes there.
    if (!runner && store?.report)
      return store.report(args.job_id, { agent_id: ctx.sessionId, item_id: args.item_id, result: args.result, stop: args.stop ?? false });
    if (!runner)
      return {
        text: JSON.stringify({ accepted: false, reason: `job ${args.job_id} is not running (it ended, or it is not a job of this session tree)` }),
        success: false,
      };
    return runner.report(ctx.sessionId, args.item_id, args.result, args.stop ?? false);
  },
});

/** The agent job tools, registered for regular sessions. */
export const jobTools: readonly ToolHandler<unknown>[] = [spawnAgentsOnCsvTool, reportAgentJobResultTool];
