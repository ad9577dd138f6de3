import { errorEvent, TroupeError, type EventMsg, type OpOf } from '../../protocol/index.js';
import { inBackground, log } from '../../lib/log.js';
import { checkInstruction } from './input.js';
import { checkJobOp, preparedFromOp } from './job-op.js';
import { resultCheck } from './schema.js';
import type { SessionJobs } from './session.js';

/**
 * `run_agent_job` in a session: the job the client read is checked again (its items, its output
 * path on this machine, its instruction and schema), stored and run in the background, as
 * `runJob` does in-process. A problem is an `error` event answering the op, and nothing is
 * stored. When the op is applied again on a worker that adopted the session, the job is in the
 * store already and goes on from there: nothing is started twice.
 */
export function startRequestedJob(jobs: SessionJobs | null, op: OpOf<'run_agent_job'>, refuse: (msg: EventMsg) => void): void {
  if (!jobs) {
    refuse(errorEvent(new TroupeError('this session cannot run agent jobs', { code: 'bad_request' })));
    return;
  }
  const start = async () => {
    const prepared = preparedFromOp(op);
    try {
      if (await jobs.store.read(op.job_id)) return;
      await checkJobOp(op);
      resultCheck(op.output_schema ?? null);
      checkInstruction(op.instruction, prepared.input);
      await jobs.start(prepared, { shutdownWhenDone: op.shutdown_when_done });
    } catch (error) {
      if (!(error instanceof TroupeError)) log.error({ err: error, job: op.job_id }, 'a requested job could not run');
      refuse(errorEvent(error));
    }
  };
  inBackground(start(), `running job ${op.job_id}`);
}
