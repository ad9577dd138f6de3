import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { TroupeError, type SessionConfig } from '../protocol/index.js';
import { JobLookupError, type JobOverview } from '../actors/jobs/admin.js';
import { JobInputError, readJobFile } from '../actors/jobs/input.js';
import { cancelJob, checkJob, jobStatus, listJobs, runJob, type CheckedJob } from '../actors/jobs/library.js';
import { commandGateway } from '../actors/gateway-options.js';
import { NATS_FLAGS } from '../lib/nats/settings.js';
import { createRuntime, SessionError, type RuntimeOptions } from '../actors/runtime.js';
import { checkedProfile, configFromFlags, MODEL_FLAGS, parseArgs, PROFILE_FLAG, runsOnNats, UsageError, wireApiFlag } from './flags.js';
import { TranscriptRenderer } from './render.js';
import { closeRuntime, ShutdownBound, shutdownTimeoutMs } from './shutdown.js';

/** `troupe jobs run | status | cancel`. */
export async function runJobs(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'run':
      return jobsRun(rest, runtimeOptions);
    case 'status':
      return jobsStatus(rest);
    case 'cancel':
      return jobsCancel(rest);
    case undefined:
      throw new UsageError('jobs needs a subcommand: run, status or cancel');
    default:
      throw new UsageError(`unknown jobs subcommand "${sub}" (run, status or cancel)`);
  }
}

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a whole number of at least 1, got "${value}"`);
  return n;
}

/**
 * `troupe jobs run --csv FILE --instruction TEXT …`: a job without a parent agent. A progress
 * bar on stderr, the summary as one JSON line on stdout. Exits 0 when every item completed, 1
 * when some failed or the job was cancelled (Ctrl-C cancels it), 2 on bad arguments or input.
 * With --nats (or TROUPE_NATS_URL) the job runs on the workers and goes on if this process dies.
 */
async function jobsRun(argv: readonly string[], runtimeOptions: RuntimeOptions): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      ...MODEL_FLAGS,
      ...PROFILE_FLAG,
      ...NATS_FLAGS,
      csv: { type: 'string' },
      instruction: { type: 'string' },
      concurrency: { type: 'string' },
      output: { type: 'string' },
      'id-column': { type: 'string' },
      'output-schema': { type: 'string' },
      'max-runtime-seconds': { type: 'string' },
      'max-attempts': { type: 'string' },
      'agent-type': { type: 'string' },
      'approval-policy': { type: 'string' },
      sandbox: { type: 'string' },
      cd: { type: 'string', short: 'C' },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.csv === undefined) throw new UsageError('jobs run needs --csv FILE (a CSV with a header row, or a .jsonl file)');
  if (values.instruction === undefined) throw new UsageError('jobs run needs --instruction TEXT');
  const config: SessionConfig = { cwd: process.cwd(), ...configFromFlags(values) };
  const cwd = config.cwd ?? process.cwd();
  let outputSchema: Record<string, unknown> | undefined;
  if (values['output-schema'] !== undefined) {
    let parsed: unknown;
    // Read as the input is: a FIFO or /dev/zero named here must not hang or fill memory.
    let text: string;
    try {
      text = await readJobFile(resolve(cwd, values['output-schema']), '--output-schema');
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new UsageError(`--output-schema ${values['output-schema']}: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new UsageError(`--output-schema ${values['output-schema']}: not a JSON object`);
    outputSchema = parsed as Record<string, unknown>;
  }

  const bound = new ShutdownBound(shutdownTimeoutMs(process.env));
  // With --nats the job's session runs on a worker, under the worker's config.
  const profile = checkedProfile(values, process.env, runtimeOptions.home, runsOnNats(values));
  const wireApi = wireApiFlag(values['wire-api']);
  const stop = new AbortController();
  let sessionId: string | null = null;
  let checked: CheckedJob;
  try {
    // The input is read and checked before anything starts: bad input touches nothing.
    checked = await checkJob({
      csv_path: values.csv,
      instruction: values.instruction,
      id_column: values['id-column'],
      output_schema: outputSchema,
      max_concurrency: count(values.concurrency, '--concurrency'),
      max_runtime_seconds: count(values['max-runtime-seconds'], '--max-runtime-seconds'),
      max_attempts: count(values['max-attempts'], '--max-attempts'),
      output_csv_path: values.output,
      agent_type: values['agent-type'],
      config,
      signal: stop.signal,
      onStart: (job) => {
        sessionId = job.sessionId;
        if (!values.json) process.stderr.write(`troupe job ${job.jobId} (session ${job.sessionId})\n`);
      },
    });
  } catch (error) {
    if (!(error instanceof JobInputError)) throw error;
    process.stderr.write(`troupe jobs: ${error.message}\n`);
    return 2;
  }
  const { options: nats, lost } = await commandGateway(values, process.env, 'troupe jobs run');
  const runtime = createRuntime({ ...runtimeOptions, ...nats, model: values.model, wireApi, profile });
  const renderer = values.json ? null : new TranscriptRenderer(process.stderr);
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(130);
    process.stderr.write('troupe jobs: cancelling the job (Ctrl-C again to quit at once)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  const stopEvents = runtime.onEvent((event) => {
    if (sessionId === null || event.session_id !== sessionId) return;
    const type = event.msg.type;
    if (values.json) process.stdout.write(`${JSON.stringify(event)}\n`);
    else if (type === 'agent_job_progress' || type === 'background_event' || type === 'warning' || type === 'error') renderer?.render(event);
  });
  let code = 1;
  try {
    // A gateway without NATS for too long gives up; the job goes on on the workers.
    const summary = await Promise.race([runJob(runtime, checked), lost.then((error) => Promise.reject(error))]);
    renderer?.close();
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    code = summary.status === 'completed' && summary.failed_items === 0 ? 0 : 1;
  } catch (error) {
    renderer?.close();
    if (error instanceof JobInputError) {
      // Only the worker knows its roles: an unknown --agent-type is refused there.
      process.stderr.write(`troupe jobs: ${error.message}\n`);
      code = 2;
    } else if (error instanceof SessionError || (error instanceof TroupeError && error.name.startsWith('Nats'))) {
      process.stderr.write(`troupe jobs: ${error.message}\n`);
    } else throw error;
  } finally {
    process.off('SIGINT', onSigint);
    stopEvents();
    const closed = await closeRuntime(runtime, bound);
    code = Math.max(code, closed.code);
  }
  return code;
}

/**
 * `troupe jobs status [JOB_ID] [--json] [--write-output]`: every job, newest first, or one job in
 * full. `--write-output` writes an ended job's output file on this machine from its records (on
 * NATS: for a job whose `troupe jobs run` died, the file is otherwise only where its worker wrote it).
 */
async function jobsStatus(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: { ...NATS_FLAGS, json: { type: 'boolean', default: false }, 'write-output': { type: 'boolean', default: false } },
  });
  if (positionals.length > 1) throw new UsageError('jobs status takes at most one job id');
  const id = positionals[0];
  if (values['write-output'] && id === undefined) throw new UsageError('--write-output needs a job id');
  // The jobs of NATS when --nats (or TROUPE_NATS_URL) names a server, else those under TROUPE_HOME.
  if (id === undefined) {
    for (const job of await listJobs(values)) process.stdout.write(`${values.json ? JSON.stringify(job) : line(job)}\n`);
    return 0;
  }
  try {
    const job = await jobStatus(id, { ...values, writeOutput: values['write-output'] });
    if (values['write-output']) process.stderr.write(`troupe jobs: wrote ${job.output_path}\n`);
    process.stdout.write(values.json ? `${JSON.stringify(job)}\n` : details(job));
    return 0;
  } catch (error) {
    if (!(error instanceof JobLookupError)) throw error;
    process.stderr.write(`troupe jobs: ${error.message}\n`);
    return 1;
  }
}

/** `troupe jobs cancel JOB_ID`: stop a job; its output is written with what was done. */
async function jobsCancel(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], strict: true, allowPositionals: true, options: { ...NATS_FLAGS } });
  if (positionals.length !== 1) throw new UsageError('jobs cancel needs one job id');
  try {
    const outcome = await cancelJob(positionals[0]!, { ...values, reason: 'cancelled with troupe jobs cancel' });
    const { job } = outcome;
    if (outcome.kind === 'finished') {
      process.stderr.write(`troupe jobs: job ${job.job_id} has already ended (${job.status})\n`);
      return 1;
    }
    if (outcome.kind === 'cancelled') {
      process.stdout.write(`job ${job.job_id} cancelled: ${job.completed} of ${job.total} items completed; results in ${job.output_path}\n`);
      return 0;
    }
    process.stdout.write(`job ${job.job_id}: cancel requested; ${runnerOf(job)} stops its items and writes ${job.output_path}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof JobLookupError)) throw error;
    process.stderr.write(`troupe jobs: ${error.message}\n`);
    return 1;
  }
}

/** The process running a job: `process 123`, or `process 123 on HOST` when that is another machine. */
function runnerOf(job: JobOverview): string {
  const here = job.runner_host === null || job.runner_host === hostname();
  return `process ${job.runner_pid ?? '?'}${here ? '' : ` on ${job.runner_host}`}`;
}

function stateOf(job: JobOverview): string {
  if (job.status !== 'running') return job.status;
  if (job.live) return job.cancel_requested !== null ? 'cancelling' : 'running';
  return 'stopped';
}

function line(job: JobOverview): string {
  return [
    job.job_id,
    stateOf(job).padEnd(10),
    `${job.completed + job.failed}/${job.total}`,
    job.failed > 0 ? `${job.failed} failed` : '',
    job.created_at,
    job.input_path,
  ]
    .filter((p) => p !== '')
    .join('  ');
}

function details(job: JobOverview): string {
  const lines = [
    `job ${job.job_id}`,
    `  status     ${stateOf(job)}${job.live ? ` (${runnerOf(job)})` : job.status === 'running' ? ' (no process runs it: resume its session to go on)' : ''}`,
    `  items      ${job.total}: ${job.completed} completed, ${job.failed} failed, ${job.running} running, ${job.pending} pending${job.cancelled > 0 ? `, ${job.cancelled} cancelled` : ''}`,
    `  session    ${job.parent_session_id}`,
    `  input      ${job.input_path}`,
    `  output     ${job.output_path}`,
    `  created    ${job.created_at}${job.finished_at ? `, ended ${job.finished_at}` : ''}`,
    ...(job.cancel_requested !== null ? [`  cancel     ${job.cancel_requested}`] : []),
    ...(job.job_error !== null ? [`  error      ${job.job_error}`] : []),
    ...job.failed_item_errors.map((e) => `  failed     ${e.item_id}: ${e.last_error}`),
  ];
  return `${lines.join('\n')}\n`;
}
