/**
 * troupe: an actor-model runtime for coding agents. The library surface: start a runtime in
 * this process, open sessions, submit ops, read events. The wire types are in `troupe/protocol`.
 */
export {
  connectRuntime,
  createRuntime,
  DEFAULT_MODEL,
  Runtime,
  runtimeOptionsFromEnv,
  SessionError,
  type ClusterOptions,
  type OneShotRun,
  type OpenOptions,
  type OutputOf,
  type RuntimeOptions,
  type Session,
} from './actors/runtime.js';
export { OutputValidationError, RunError, type RunApprovalRequest, type RunItem, type RunOptions, type RunResult } from './actors/run.js';
export {
  tool,
  ToolDefinitionError,
  type JsonValue,
  type NeedsApproval,
  type Tool,
  type ToolDefinition,
  type ToolParameters,
  type ToolRunContext,
} from './actors/tools/user-tool.js';
export { createModelClient, ModelError, type ModelClient, type ModelClientOptions, type ModelStreamEvent, type Prompt } from './lib/model/index.js';
export { coreTools, defineTool, ToolRegistry, type ToolContext, type ToolHandler } from './actors/tools/index.js';
export type { Bus } from './lib/bus/bus.js';
export { InProcessBus, InProcessBroker } from './lib/bus/in-process.js';
export type * from './protocol/index.js';
export {
  cancelJob,
  checkJob,
  CheckedJob,
  jobStatus,
  JobInputError,
  JobLookupError,
  listJobs,
  runJob,
  type CancelJobOptions,
  type CancelOutcome,
  type JobOverview,
  type JobProgress,
  type JobRequest,
  type JobsOptions,
  type JobStatusOptions,
  type JobSummary,
  type RunJobOptions,
} from './actors/jobs/index.js';
