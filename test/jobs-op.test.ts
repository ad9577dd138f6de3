import { mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Op, parseOrThrow, type EventMsg, type OpOf } from '../protocol/index.js';
import { jobOp, preparedFromOp } from '../actors/jobs/job-op.js';
import type { RunJobOptions } from '../actors/jobs/library.js';
import { MAX_JOB_CONCURRENCY, prepareJob, type PreparedJob } from '../actors/jobs/prepare.js';
import { FileJobStore } from '../actors/jobs/store.js';
import { MAX_JOB_ITEMS } from '../actors/jobs/input.js';
import { createRuntime } from '../index.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'troupe-job-op-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The op as a session receives it: through JSON, checked by the protocol's schema. */
function overTheWire(prepared: PreparedJob, shutdownWhenDone?: boolean): OpOf<'run_agent_job'> {
  const op = parseOrThrow(Op, JSON.parse(JSON.stringify(jobOp(prepared, { shutdownWhenDone }))));
  if (op.type !== 'run_agent_job') throw new Error(`not a run_agent_job op: ${op.type}`);
  return op;
}

describe('run_agent_job op', () => {
  it('carries a prepared job with every setting to the session unchanged', async () => {
    await writeFile(join(dir, 'in.csv'), 'id,name\nk1,ann\nk2,bob\n');
    await writeFile(join(dir, 'real.csv'), '');
    // A link named .jsonl to a .csv file: the output is JSON Lines, as the name asked for says.
    await symlink(join(dir, 'real.csv'), join(dir, 'out.jsonl'));
    const prepared = await prepareJob(
      {
        csv_path: 'in.csv',
        instruction: 'Greet {name}',
        id_column: 'id',
        output_schema: { type: 'object', properties: { greeting: { type: 'string' } }, required: ['greeting'] },
        max_concurrency: 3,
        max_runtime_seconds: 60,
        output_csv_path: 'out.jsonl',
        max_attempts: 2,
        agent_type: 'worker',
      },
      dir,
    );
    expect(prepared).toMatchObject({ outputPath: join(dir, 'real.csv'), outputFormat: 'jsonl', concurrency: 3 });
    const op = overTheWire(prepared, true);
    expect(op).toMatchObject({ input_path: join(dir, 'in.csv'), output_csv_path: join(dir, 'real.csv'), output_format: 'jsonl', shutdown_when_done: true });
    expect(preparedFromOp(op)).toStrictEqual(prepared);
  });

  it('carries a job with the defaults, and only the request settings a job keeps', async () => {
    await writeFile(join(dir, 'in.jsonl'), '{"n":1}\n{"n":2}\n');
    // What runJob prepares from: its options beside the request are not the job's.
    const options: RunJobOptions = { csv_path: 'in.jsonl', instruction: 'Double {n}', config: { cwd: dir }, onProgress: () => undefined };
    const prepared = await prepareJob(options, dir);
    expect(prepared.settings).toStrictEqual({ instruction: 'Double {n}' });
    const op = overTheWire(prepared);
    expect(op).not.toHaveProperty('shutdown_when_done');
    expect(preparedFromOp(op)).toStrictEqual(prepared);
  });

  it('reads an op without output_format (an older client) by the output name, and caps its concurrency', async () => {
    await writeFile(join(dir, 'in.csv'), 'a\n1\n');
    const prepared = await prepareJob({ csv_path: 'in.csv', instruction: '{a}', output_csv_path: 'out.jsonl' }, dir);
    const { output_format: _format, ...older } = overTheWire(prepared);
    expect(preparedFromOp(older)).toStrictEqual(prepared);
    expect(preparedFromOp({ ...older, max_concurrency: MAX_JOB_CONCURRENCY + 10 }).concurrency).toBe(MAX_JOB_CONCURRENCY);
  });
});

describe('a run_agent_job op from a client', () => {
  /** A session of an in-process runtime is sent `op`; resolves to the error event answering it, if any, once the op has been handled. */
  async function submitted(op: OpOf<'run_agent_job'>): Promise<{ error: Extract<EventMsg, { type: 'error' }> | null; stored: boolean }> {
    const home = join(dir, 'home');
    // No model is reached: a refused op starts nothing, and the control case is shut down at once.
    const runtime = createRuntime({ baseURL: 'http://127.0.0.1:9/v1', apiKey: 'k', home, cwd: dir });
    try {
      const session = await runtime.newSession({ cwd: dir });
      const id = `job-${op.job_id}`;
      const error = new Promise<Extract<EventMsg, { type: 'error' }>>((resolve) => {
        const stop = runtime.onEvent((event) => {
          if (event.id === id && event.msg.type === 'error') {
            stop();
            resolve(event.msg);
          }
        });
      });
      await session.submit(op, id);
      const store = new FileJobStore(home);
      // Either the error answers the op, or the job is stored: whichever comes first.
      let answered = false;
      const outcome = await Promise.race([
        error.finally(() => (answered = true)),
        (async () => {
          while (!answered && !(await store.read(op.job_id))) await new Promise((resolve) => setTimeout(resolve, 20));
          return null;
        })(),
      ]);
      answered = true;
      const stored = (await store.read(op.job_id)) !== null;
      await session.shutdown();
      return { error: outcome, stored };
    } finally {
      await runtime.close();
    }
  }

  async function validOp(): Promise<OpOf<'run_agent_job'>> {
    await writeFile(join(dir, 'in.csv'), 'id,name\nk1,ann\nk2,bob\n');
    return overTheWire(await prepareJob({ csv_path: 'in.csv', instruction: 'Greet {name}', id_column: 'id', output_csv_path: 'out.csv' }, dir));
  }

  it('is stored and started when it is what reading an input gives', async () => {
    const outcome = await submitted(await validOp());
    expect(outcome).toEqual({ error: null, stored: true });
  });

  it('is refused, with nothing stored or written, when its items are not what reading an input gives', async () => {
    const op = await validOp();
    const [first, second] = op.items;
    const cases: [Partial<OpOf<'run_agent_job'>>, RegExp][] = [
      [{ items: [first!, { ...second!, item_id: first!.item_id }] }, /repeat the item id "k1"/],
      [{ items: [first!, { ...second!, row_index: first!.row_index }] }, /repeat the row index 0/],
      [{ items: [first!, { ...second!, row: { ...second!.row, secret: 'x' } }] }, /item k2 has a value for "secret", which is not one of the job's columns/],
      [{ columns: ['id', 'name', 'name'] }, /columns name "name" more than once/],
      [{ id_column: 'ident' }, /id_column "ident" is not one of the job's columns/],
      [
        { items: Array.from({ length: MAX_JOB_ITEMS + 1 }, (_, i) => ({ ...first!, item_id: `i${i}`, row_index: i })) },
        /10001 items; an agent job takes at most 10000/,
      ],
    ];
    for (const [change, message] of cases) {
      const refused = await submitted({ ...op, job_id: crypto.randomUUID(), ...change });
      expect(refused.stored).toBe(false);
      expect(refused.error).toMatchObject({ code: 'bad_request' });
      expect(refused.error!.message).toMatch(message);
    }
    expect((await readdir(dir)).sort()).toEqual(['home', 'in.csv']);
  });

  it('is refused when its output cannot be written on the machine that runs it', async () => {
    const op = await validOp();
    const elsewhere = join(dir, 'not-here', 'out.csv');
    const refused = await submitted({ ...op, output_csv_path: elsewhere });
    expect(refused).toMatchObject({ stored: false, error: { code: 'bad_request' } });
    expect(refused.error!.message).toContain(`output_csv_path ${elsewhere}: the directory ${join(dir, 'not-here')} does not exist`);
  });
});
