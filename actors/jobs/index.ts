/**
 * Agent jobs: one sub-agent per row of a CSV or JSON Lines file, run with a concurrency limit,
 * each handing its result in with `report_agent_job_result`, the results written to a file.
 * State lives in an append-only log per job under TROUPE_HOME (in JetStream on NATS), so a job
 * survives a restart of its process (docs/DESIGN.md, "Agent jobs").
 */
export {
  cancelJob,
  checkJob,
  CheckedJob,
  jobStatus,
  listJobs,
  runJob,
  type CancelJobOptions,
  type JobsOptions,
  type JobStatusOptions,
  type RunJobOptions,
} from './library.js';
export { JobInputError } from './input.js';
export type { JobRequest } from './prepare.js';
export type { JobProgress } from './progress.js';
export type { JobSummary } from './runner.js';
export { findJob, homeJobs, jobSummary, natsJobs, writeOutputHere, JobLookupError, type CancelOutcome, type JobOverview, type JobPlace } from './admin.js';
export { jobTools, reportAgentJobResultTool, spawnAgentsOnCsvTool } from './tools.js';
export { attachJobs, type JobSession } from './session.js';
export { FileJobStore, type JobHandle, type JobStore } from './store.js';
