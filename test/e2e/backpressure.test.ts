/**
 * A client that stops reading stdout must not run troupe out of memory: past a bounded amount
 * of unread output, troupe stops reading stdin and its sessions stop making events (model
 * streams wait, command output deltas are skipped), and once the client reads again everything
 * it was owed arrives, in order.
 *
 * Each test measures the server's resident memory (VmRSS) while the client is stuck, against a
 * baseline taken after a first, smaller turn of the same kind with the client reading: what is
 * measured is what the stuck client costs, not what loading the code and sizing the heap for
 * such a turn costs. The point where the server is stuck is read from its own debug log ("the
 * reader is behind"), together with an outside sign that the producer really waits (the fake
 * model's writes back up, the command has finished): never a fixed delay.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppServerProcess, seqProblems, troupeBin } from '../support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer, type ScriptStep } from '../../testing/fake-model-server.js';
import { DELTAS_PER_MESSAGE, flood, HOLDING, MESSAGES, mib, MemoryWatch, STREAMS, until } from '../support/memory-watch.js';
import { residentBytes } from '../support/processes.js';
import { inputTexts, outputFor } from '../../testing/requests.js';

/** Baseline memory: after a first turn (answered by `steps`) with the client reading. */
async function warmUp(
  server: AppServerProcess,
  model: FakeModelServer,
  config: Record<string, unknown>,
  ...steps: ScriptStep[]
): Promise<{ session: string; baseline: number }> {
  model.enqueue(...steps);
  const session = await server.newSession(config);
  const end = await server.turn(session, 'warm up');
  expect(end.msg.type).toBe('task_complete');
  const baseline = residentBytes(server.pid);
  if (baseline === null) throw new Error('the server is gone');
  return { session, baseline };
}

describe('troupe app-server with a client that stops reading stdout', () => {
  let model: FakeModelServer;
  let server: AppServerProcess;
  let workspace: string;
  let watch: MemoryWatch | null = null;

  beforeEach(async () => {
    model = await startFakeModelServer();
    server = await AppServerProcess.start({ modelUrl: model.url, env: { TROUPE_LOG: 'debug' } });
    workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
  });

  afterEach(async () => {
    watch?.stop();
    watch = null;
    await server.dispose();
    await model.close();
    await rm(workspace, { recursive: true, force: true });
  });

  it('lets the model streams wait, stays within the memory bound, and delivers everything after', async () => {
    const { baseline } = await warmUp(server, model, { cwd: workspace }, flood(MESSAGES / STREAMS, 'warm').step);
    // Several sessions stream at once, each its own share of the flood.
    const sessions: string[] = [];
    const floods: string[][] = [];
    for (let s = 0; s < STREAMS; s++) {
      sessions.push(await server.newSession({ cwd: workspace }));
      const { texts, step } = flood(MESSAGES / STREAMS, `s${s}.`);
      floods.push(texts);
      model.enqueue({ ...step, match: (request) => inputTexts(request).at(-1) === `flood ${s}` });
    }

    server.pauseReading();
    const mark = server.stderr.length;
    watch = new MemoryWatch(server.pid, baseline);
    const turns = sessions.map((session, s) => server.submit({ type: 'user_turn', items: [{ type: 'text', text: `flood ${s}` }] }, session));
    const streams = () => model.requests.slice(1);
    const state = () =>
      `streams: ${JSON.stringify(streams().map((r) => ({ sent: r.bytesSent, waiting: r.waitingForClient, ended: r.endedAt !== null })))}, growth ${mib(watch!.growth)} MiB`;
    // Stuck: troupe says it holds back, and the model's writes have backed up to the server.
    await until(
      () => server.stderr.includes(HOLDING, mark) && streams().length > 0 && streams().every((r) => r.waitingForClient),
      'the model streams to wait',
      watch,
      state,
    );
    // Each stream is far larger than what was let through: none could have been read to its end.
    expect(streams().filter((r) => r.endedAt !== null)).toEqual([]);
    watch.check();
    watch.stop();

    // Once the client reads again, everything it was owed arrives.
    server.resumeReading();
    for (const turn of turns) await server.waitFor((e) => e.id === turn && e.msg.type === 'task_complete', `the end of ${turn}`, 60_000);
    expect(seqProblems(server.events)).toEqual([]);
    expect(server.junk).toEqual([]);
    sessions.forEach((session, s) => {
      const ofTurn = server.ofSession(session).filter((e) => e.id === turns[s]);
      const deltas = ofTurn.flatMap((e) => (e.msg.type === 'agent_message_delta' ? [e.msg.delta] : []));
      expect(deltas).toHaveLength((MESSAGES / STREAMS) * DELTAS_PER_MESSAGE);
      expect(deltas.join('') === floods[s]!.join(''), `the deltas of session ${s}`).toBe(true);
      const messages = ofTurn.flatMap((e) => (e.msg.type === 'agent_message' ? [e.msg.message] : []));
      expect(messages.length).toBe(floods[s]!.length);
      expect(
        messages.every((message, m) => message === floods[s]![m]),
        `the messages of session ${s}`,
      ).toBe(true);
    });
  });

  it('keeps a command running but skips its output deltas, and the command ends with its output', async () => {
    // Lines of 200 characters: 160 MB of them, after a warm-up call printing 3 MB (past the limits
    // of what a call keeps, so the baseline includes what cutting the output down costs).
    const print = (bytes: number, then = 'true'): string[] => ['sh', '-c', `yes ${'y'.repeat(199)} | head -c ${bytes}; ${then}`];
    const { session, baseline } = await warmUp(
      server,
      model,
      { cwd: workspace, approval_policy: 'never', sandbox_policy: 'danger-full-access' },
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'warm', arguments: { command: print(3_000_000) } }] },
      { kind: 'response', items: [{ type: 'message', text: 'warm' }] },
    );
    const marker = join(workspace, 'flood-done');
    const bytes = 160_000_000;
    model.enqueue(
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'shell', call_id: 'flood', arguments: { command: print(bytes, `touch ${marker}`), timeout_ms: 120_000 } }],
      },
      { kind: 'response', items: [{ type: 'message', text: 'flooded' }] },
    );

    server.pauseReading();
    const mark = server.stderr.length;
    watch = new MemoryWatch(server.pid, baseline);
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'flood' }] }, session);
    // Stuck: troupe holds back, and the command printed everything and ended.
    await until(
      () => server.stderr.includes(HOLDING, mark) && existsSync(marker),
      'the command to end',
      watch,
      () => `growth ${mib(watch!.growth)} MiB`,
    );
    // While the client is stuck, the turn goes no further: no new model request.
    expect(model.requests).toHaveLength(3);
    watch.check();
    watch.stop();

    server.resumeReading();
    await server.waitFor((e) => e.id === turn && e.msg.type === 'task_complete', 'the end of the flood turn', 60_000);
    expect(seqProblems(server.events)).toEqual([]);
    expect(server.junk).toEqual([]);

    const events = server.ofSession(session).filter((e) => e.id === turn);
    const end = events.find((e) => e.msg.type === 'exec_command_end')?.msg;
    expect(end).toMatchObject({ call_id: 'flood', exit_code: 0 });
    // The end event carries the output within the limits it always had (head and tail).
    if (end?.type !== 'exec_command_end') throw new Error('no exec_command_end');
    expect(end.aggregated_output.startsWith(`${'y'.repeat(199)}\n`)).toBe(true);
    expect(end.aggregated_output.length).toBeLessThan(4 * 1024 * 1024);
    // Deltas are a live view: some came before troupe held back, the rest were skipped.
    const streamed = events.reduce((sum, e) => sum + (e.msg.type === 'exec_command_output_delta' ? e.msg.chunk.length : 0), 0);
    expect(streamed).toBeGreaterThan(0);
    expect(streamed).toBeLessThan(bytes);
    expect(outputFor(model.requests[3]!, 'flood')).toContain('Exit code: 0');
  });
});

/** `troupe mcp-server` in a child process, spoken to line by line, so the test can stop reading. */
class McpProcess {
  readonly messages: Record<string, unknown>[] = [];
  stderr = '';
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines;

  constructor(modelUrl: string, home: string) {
    this.#child = spawn(process.execPath, ['--conditions=development', troupeBin(), 'mcp-server'], {
      env: { ...process.env, OPENAI_BASE_URL: modelUrl, OPENAI_API_KEY: 'test-key', TROUPE_HOME: home, TROUPE_MODEL: 'test-model', TROUPE_LOG: 'debug' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#lines = createInterface({ input: this.#child.stdout, crlfDelay: Infinity });
    this.#lines.on('line', (line) => this.messages.push(JSON.parse(line) as Record<string, unknown>));
    this.#child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  send(message: Record<string, unknown>): void {
    this.#child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
  }

  pauseReading(): void {
    this.#lines.pause();
  }

  resumeReading(): void {
    this.#lines.resume();
  }

  result(id: number): Record<string, unknown> | undefined {
    return this.messages.find((m) => m.id === id);
  }

  async dispose(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGKILL');
    await exited;
  }
}

describe('troupe mcp-server with a client that stops reading stdout', () => {
  let model: FakeModelServer;
  let home: string;
  let workspace: string;
  let mcp: McpProcess;
  let watch: MemoryWatch | null = null;

  beforeEach(async () => {
    model = await startFakeModelServer();
    home = await mkdtemp(join(tmpdir(), 'troupe-mcp-home-'));
    workspace = await mkdtemp(join(tmpdir(), 'troupe-mcp-ws-'));
    mcp = new McpProcess(model.url, home);
  });

  afterEach(async () => {
    watch?.stop();
    watch = null;
    await mcp.dispose();
    await model.close();
    await rm(home, { recursive: true, force: true });
    await rm(workspace, { recursive: true, force: true });
  });

  it('holds the turns back while their progress notifications are not read, then finishes them', async () => {
    const reply = async (id: number): Promise<Record<string, unknown>> => {
      await until(
        () => mcp.result(id) !== undefined,
        `the answer to request ${id}`,
        null,
        () => mcp.stderr,
        60_000,
      );
      return mcp.result(id)!;
    };
    mcp.send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'stuck', version: '1' } } });
    await reply(1);
    mcp.send({ method: 'notifications/initialized' });
    // A first, smaller flood read as it comes; the baseline is taken after it.
    model.enqueue(flood(MESSAGES / STREAMS, 'warm').step);
    mcp.send({ id: 2, method: 'tools/call', params: { name: 'troupe', arguments: { prompt: 'warm up', cwd: workspace }, _meta: { progressToken: 'warm' } } });
    await reply(2);
    const baseline = residentBytes(mcp.pid)!;

    const floods: string[][] = [];
    for (let s = 0; s < STREAMS; s++) {
      const { texts, step } = flood(MESSAGES / STREAMS, `s${s}.`);
      floods.push(texts);
      model.enqueue({ ...step, match: (request) => inputTexts(request).at(-1) === `flood ${s}` });
    }
    mcp.pauseReading();
    const mark = mcp.stderr.length;
    watch = new MemoryWatch(mcp.pid, baseline);
    // Each call opens a session and runs one turn, telling its progress (every message) as it goes.
    for (let s = 0; s < STREAMS; s++) {
      mcp.send({
        id: 10 + s,
        method: 'tools/call',
        params: { name: 'troupe', arguments: { prompt: `flood ${s}`, cwd: workspace }, _meta: { progressToken: `flood ${s}` } },
      });
    }
    const streams = () => model.requests.slice(1);
    await until(
      () => mcp.stderr.includes(HOLDING, mark) && streams().length > 0 && streams().every((r) => r.waitingForClient),
      'the model streams to wait',
      watch,
      () => `growth ${mib(watch!.growth)} MiB`,
    );
    expect(streams().filter((r) => r.endedAt !== null)).toEqual([]);
    watch.check();
    watch.stop();

    mcp.resumeReading();
    for (let s = 0; s < STREAMS; s++) {
      const result = (await reply(10 + s)).result as { content: { text: string }[]; isError?: boolean };
      expect(result.isError).toBeUndefined();
      expect(result.content[0]?.text === floods[s]!.at(-1), `the answer of call ${s}`).toBe(true);
      // Every message of the turn went out as a progress notification of its call, in order.
      const progress = mcp.messages.flatMap((m) => {
        const params = m.params as { progressToken?: unknown; message?: string } | undefined;
        return m.method === 'notifications/progress' && params?.progressToken === `flood ${s}` && params.message?.startsWith('<') ? [params.message] : [];
      });
      expect(progress.length).toBe(floods[s]!.length);
      expect(
        progress.every((line, m) => line === floods[s]![m]),
        `the progress of call ${s}`,
      ).toBe(true);
    }
  });
});
