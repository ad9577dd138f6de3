import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { parse } from 'csv-parse/sync';
import type { Event, EventOf } from '../../protocol/index.js';
import { DurableStore } from '../../lib/durable/store.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import type { RecordedRequest, ScriptStep } from '../../testing/fake-model-server.js';
import { inputItems, inputTexts, mentions } from '../../testing/requests.js';

/** The first words of every job item's task (actors/jobs/runner.ts, workerPrompt). */
export const WORKER = 'You are the agent of one item of an agent job.';

export const isWorker = (r: RecordedRequest): boolean => mentions(r, WORKER);
/** A worker's first request: its task, and no tool output yet. */
export const workerFirst = (r: RecordedRequest): boolean => isWorker(r) && !inputItems(r).some((i) => i.type === 'function_call_output');
/** A worker's request after its report was answered. */
export const workerAfterReport = (r: RecordedRequest): boolean =>
  isWorker(r) && inputItems(r).some((i) => i.type === 'function_call' && i.name === 'report_agent_job_result');

/** The job, item and row a worker's task names. */
export function task(r: RecordedRequest): { jobId: string; itemId: string; row: Record<string, unknown>; text: string } {
  const text = inputTexts(r).find((t) => t.includes(WORKER));
  if (!text) throw new Error('not a job item request');
  const job = /job_id ("(?:[^"\\]|\\.)*")/.exec(text);
  const item = /item_id ("(?:[^"\\]|\\.)*")/.exec(text);
  const row = /^The item's row: (.*)$/m.exec(text);
  if (!job || !item || !row) throw new Error(`cannot read the task: ${text}`);
  return { jobId: JSON.parse(job[1]!) as string, itemId: JSON.parse(item[1]!) as string, row: JSON.parse(row[1]!) as Record<string, unknown>, text };
}

/** A worker's answer: report `result` for the item its task names. */
export function reportStep(
  result: (row: Record<string, unknown>, r: RecordedRequest) => Record<string, unknown>,
  options: { match?: (r: RecordedRequest) => boolean; delayMs?: number; callId?: string; stop?: boolean } = {},
): ScriptStep {
  return {
    kind: 'reply',
    match: options.match ?? workerFirst,
    ...(options.delayMs ? { delayMs: options.delayMs } : {}),
    handler: (r) => {
      const { jobId, itemId, row } = task(r);
      return {
        kind: 'response',
        items: [
          {
            type: 'function_call',
            name: 'report_agent_job_result',
            call_id: options.callId ?? `report-${itemId}`,
            arguments: { job_id: jobId, item_id: itemId, result: result(row, r), ...(options.stop ? { stop: true } : {}) },
          },
        ],
      };
    },
  };
}

/** What a worker says once its report went through, if it gets to say anything. */
export const doneStep = (): ScriptStep => ({ kind: 'response', match: workerAfterReport, items: [{ type: 'message', text: 'reported' }] });

/** The parent's call of spawn_agents_on_csv. */
export function spawnJobStep(match: (r: RecordedRequest) => boolean, args: Record<string, unknown>, callId = 'job'): ScriptStep {
  return { kind: 'response', match, items: [{ type: 'function_call', name: 'spawn_agents_on_csv', call_id: callId, arguments: args }] };
}

export async function writeText(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** A CSV file's records as objects (header row first). */
export function readCsv(path: string): Record<string, string>[] {
  return parse<Record<string, string>>(readFileSync(path, 'utf8'), { columns: true, bom: true });
}

export function readCsvHeader(path: string): string[] {
  return parse(readFileSync(path, 'utf8'), { to_line: 1 })[0] ?? [];
}

export function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The agent_job_progress events on a session's stream. */
export function progressEvents(server: AppServerProcess, sessionId: string): EventOf<'agent_job_progress'>[] {
  return server.events.flatMap((e: Event) => (e.session_id === sessionId && e.msg.type === 'agent_job_progress' ? [e.msg] : []));
}

/** The most item agents a parent had open at once, from its stream (spawned, then shut down). */
export function mostOpenAgents(server: AppServerProcess, sessionId: string): number {
  let open = 0;
  let most = 0;
  for (const e of server.events) {
    if (e.session_id !== sessionId) continue;
    if (e.msg.type === 'agent_spawned') most = Math.max(most, ++open);
    if (e.msg.type === 'agent_status' && e.msg.status === 'shutdown') open--;
  }
  return most;
}

/** The lines of a job's log. */
export function jobLog(home: string, jobId: string): Record<string, unknown>[] {
  return readJsonl(join(home, 'jobs', `${jobId}.jsonl`));
}

/** Item agents' first requests held at the model until `release()`; `held` counts those waiting. */
export function heldReports(result: (row: Record<string, unknown>) => Record<string, unknown>) {
  const held: (() => void)[] = [];
  let released = false;
  const holdStep = (): ScriptStep => ({
    kind: 'reply',
    match: workerFirst,
    handler: async (r) => {
      if (!released) await new Promise<void>((resolve) => held.push(resolve));
      return (reportStep(result) as { handler: (r: RecordedRequest) => ScriptStep }).handler(r);
    },
  });
  const release = () => {
    released = true;
    for (const go of held.splice(0)) go();
  };
  return { holdStep, held, release };
}

/** Whether a worker holds session `sessionId` (its lease is in JetStream): false once the session has shut down. */
export async function sessionHeld(natsUrl: string, namespace: string, sessionId: string): Promise<boolean> {
  const connection = await connect({ servers: natsUrl });
  try {
    const store = await DurableStore.open(connection, namespace);
    const lease = await store.leases.get(sessionId);
    return lease?.operation === 'PUT';
  } finally {
    await connection.close();
  }
}

/** How many outcomes JetStream holds for each item of a job (subject `item.<row>`), in row order. */
export async function outcomesPerItem(natsUrl: string, namespace: string, jobId: string): Promise<number[]> {
  const connection = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(connection);
    const prefix = `troupe.${namespace}.jobs.${jobId}.item.`;
    const info = await jsm.streams.info(`TROUPE_JOBS_${namespace}`, { subjects_filter: `${prefix}*` });
    const subjects = info.state.subjects ?? {};
    return Object.keys(subjects)
      .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)))
      .map((subject) => subjects[subject]!);
  } finally {
    await connection.close();
  }
}

/** How many agents were started for each item of a job (its `item_started` records in JetStream), by item id. */
export async function startsPerItem(natsUrl: string, namespace: string, jobId: string): Promise<Map<string, number>> {
  const connection = await connect({ servers: natsUrl });
  try {
    const consumer = await jetstream(connection).consumers.get(`TROUPE_JOBS_${namespace}`, { filter_subjects: `troupe.${namespace}.jobs.${jobId}.log` });
    const starts = new Map<string, number>();
    let pending = (await consumer.info(true)).num_pending;
    while (pending > 0) {
      const message = await consumer.next({ expires: 5_000 });
      if (message === null) throw new Error(`the log of job ${jobId} stalled with ${pending} records left`);
      pending = message.info.pending;
      const record = message.json<{ type: string; item_id?: string }>();
      if (record.type === 'item_started') starts.set(record.item_id!, (starts.get(record.item_id!) ?? 0) + 1);
    }
    return starts;
  } finally {
    await connection.close();
  }
}
