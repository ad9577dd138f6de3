import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import type { TurnEvent } from '../machines/turn.js';
import { EventMsg, type Event } from '../protocol/index.js';
import { runAppServer } from '../cli/app-server.js';
import { FlowGate } from '../lib/flow/flow-gate.js';
import { OutputPressure, STDOUT_HIGH_WATER_BYTES } from '../lib/flow/output-pressure.js';
import { sample } from '../actors/host/sampler.js';
import type { ModelClient, ModelStreamEvent, Prompt } from '../lib/model/types.js';
import { runExecCommand } from '../actors/tools/handlers/exec-command.js';
import { runShell } from '../actors/tools/handlers/shell.js';
import type { ToolContext } from '../actors/tools/tool.js';
import { TestResources } from './support/tool-context.js';
import { waitFor } from './support/wait.js';

/** Let everything that is ready run: microtasks, timers due, and a few rounds of immediates. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A writable whose reader is stuck until `unstick()`: every write waits, so what is written
 * piles up in the stream, as on a pipe nobody reads.
 */
class StuckWritable extends Writable {
  readonly lines: string[] = [];
  #pending: (() => void)[] = [];
  #stuck = true;

  constructor() {
    super({ highWaterMark: 16 * 1024, decodeStrings: false });
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const text = chunk.toString();
    if (text !== '') this.lines.push(...text.split('\n').filter((line) => line !== ''));
    if (this.#stuck) this.#pending.push(() => callback());
    else callback();
  }

  unstick(): void {
    this.#stuck = false;
    for (const done of this.#pending.splice(0)) done();
  }
}

describe('FlowGate', () => {
  it('is open until held, and open again once every holder has released it', async () => {
    const gate = new FlowGate();
    expect(gate.open).toBe(true);
    gate.hold();
    gate.hold();
    expect(gate.open).toBe(false);
    let opened = false;
    const waiting = gate.whenOpen().then(() => {
      opened = true;
    });
    gate.release();
    await settle();
    expect(gate.open).toBe(false);
    expect(opened).toBe(false);
    gate.release();
    await settle();
    expect(gate.open).toBe(true);
    expect(opened).toBe(true);
    await waiting;
    expect(() => gate.release()).toThrow(/without a matching hold/);
  });

  it('stops waiting when the waiter is aborted', async () => {
    const gate = new FlowGate();
    gate.hold();
    const controller = new AbortController();
    let done = false;
    const waiting = gate.whenOpen(controller.signal).then(() => {
      done = true;
    });
    await settle();
    expect(done).toBe(false);
    controller.abort();
    await settle();
    expect(done).toBe(true);
    await waiting;
    expect(gate.open).toBe(false);
  });
});

describe('OutputPressure', () => {
  it('holds the gate past the mark while the reader is stuck, and releases it once everything is flushed', async () => {
    const output = new StuckWritable();
    const gate = new FlowGate();
    const changes: boolean[] = [];
    const pressure = new OutputPressure(output, gate, { highWaterBytes: 64 * 1024, onChange: (full) => changes.push(full) });
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) {
      output.write(line);
      pressure.check();
    }
    expect(gate.open).toBe(true);
    output.write(line);
    pressure.check();
    expect(output.writableLength).toBeGreaterThan(64 * 1024);
    expect(gate.open).toBe(false);
    expect(pressure.full).toBe(true);
    expect(changes).toEqual([true]);

    output.unstick();
    await pressure.drained();
    expect(gate.open).toBe(true);
    expect(changes).toEqual([true, false]);
    pressure.dispose();
  });

  it('does not hold below the stream’s own mark, where no drain would come to release it', () => {
    const output = new StuckWritable();
    const gate = new FlowGate();
    const pressure = new OutputPressure(output, gate, { highWaterBytes: 100 });
    output.write('x'.repeat(1000));
    pressure.check();
    expect(output.writableNeedDrain).toBe(false);
    expect(gate.open).toBe(true);
    pressure.dispose();
  });

  it('releases the gate when the stream closes', async () => {
    const output = new StuckWritable();
    const gate = new FlowGate();
    const pressure = new OutputPressure(output, gate, { highWaterBytes: 1024 });
    output.write('x'.repeat(20_000));
    pressure.check();
    expect(gate.open).toBe(false);
    output.destroy();
    await pressure.drained();
    expect(gate.open).toBe(true);
  });
});

/** A model whose stream yields `deltas` text deltas; `pulled` counts the events taken from it. */
function countingModel(deltas: number, onPull?: (pulled: number) => void): ModelClient & { pulled: number; requests: number } {
  const model = {
    pulled: 0,
    requests: 0,
    async *stream(): AsyncGenerator<ModelStreamEvent> {
      model.requests++;
      const events: ModelStreamEvent[] = [{ type: 'created' }];
      for (let i = 0; i < deltas; i++) events.push({ type: 'output_text_delta', delta: `d${i} ` });
      events.push({ type: 'completed', response_id: 'resp-1', usage: null });
      for (const event of events) {
        model.pulled++;
        onPull?.(model.pulled);
        yield event;
      }
    },
    contextWindow: () => null,
  };
  return model;
}

const PROMPT: Prompt = { model: 'm', instructions: '', input: [], tools: [], parallel_tool_calls: true };

describe('the sampler and the flow gate', () => {
  it('sends no request while the gate is closed, and streams once it opens', async () => {
    const gate = new FlowGate();
    gate.hold();
    const model = countingModel(3);
    const emitted: EventMsg[] = [];
    const reported: TurnEvent[] = [];
    sample({ model, prompt: () => PROMPT, attempt: 0, retryBaseMs: 1, flow: gate, report: (e) => reported.push(e), emit: (m) => emitted.push(m) });
    await settle();
    expect(model.requests).toBe(0);
    gate.release();
    await waitFor(() => reported.some((e) => e.type === 'MODEL.COMPLETED'), 'the response');
    expect(emitted.map((m) => (m.type === 'agent_message_delta' ? m.delta : ''))).toEqual(['d0 ', 'd1 ', 'd2 ']);
  });

  it('pulls nothing more from the stream while the gate is closed', async () => {
    const gate = new FlowGate();
    const emitted: EventMsg[] = [];
    const reported: TurnEvent[] = [];
    const model = countingModel(10);
    // The sink goes over its mark while the fourth delta is handed on.
    const emit = (msg: EventMsg): void => {
      emitted.push(msg);
      if (emitted.length === 4) gate.hold();
    };
    sample({ model, prompt: () => PROMPT, attempt: 0, retryBaseMs: 1, flow: gate, report: (e) => reported.push(e), emit });
    await waitFor(() => !gate.open, 'the gate to close');
    await settle();
    // `created` and four deltas: nothing after the event that closed the gate.
    expect(model.pulled).toBe(5);
    expect(emitted).toHaveLength(4);
    gate.release();
    await waitFor(() => reported.some((e) => e.type === 'MODEL.COMPLETED'), 'the response');
    expect(emitted).toHaveLength(10);
  });

  it('gives up waiting when the turn is cancelled, without a request', async () => {
    const gate = new FlowGate();
    gate.hold();
    const model = countingModel(1);
    const reported: TurnEvent[] = [];
    const cancel = sample({ model, prompt: () => PROMPT, attempt: 0, retryBaseMs: 1, flow: gate, report: (e) => reported.push(e), emit: () => undefined });
    await settle();
    cancel();
    await settle();
    expect(model.requests).toBe(0);
    expect(reported).toEqual([]);
  });
});

describe('command output while the client is behind', () => {
  let dir: string;
  let resources: TestResources;
  beforeEach(async () => {
    dir = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-flow-')));
    resources = new TestResources();
  });
  afterEach(async () => {
    await resources.disposeAll();
    await rm(dir, { recursive: true, force: true });
  });

  function context(flow: FlowGate): { ctx: ToolContext; events: EventMsg[] } {
    const settings = settingsFromConfig(
      { cwd: dir, approval_policy: 'never', sandbox_policy: 'danger-full-access' },
      { model: 'm', cwd: dir, base_instructions: '' },
    );
    const events: EventMsg[] = [];
    const ctx: ToolContext = {
      sessionId: 'session-1',
      callId: 'call-1',
      turn: buildTurnContext(settings, 'turn-1', {}),
      signal: new AbortController().signal,
      resources,
      flow,
      emit: (msg) => events.push(EventMsg.parse(msg)),
    };
    return { ctx, events };
  }

  const plan = { sandboxed: false, userApproved: false } as const;

  it('shell: skips the deltas and keeps the output for the end event', async () => {
    const gate = new FlowGate();
    gate.hold();
    const { ctx, events } = context(gate);
    const output = await runShell({ command: ['sh', '-c', 'echo one; echo two >&2'] }, ctx, plan);
    expect(output.success).toBe(true);
    expect(events.filter((e) => e.type === 'exec_command_output_delta')).toEqual([]);
    expect(events.find((e) => e.type === 'exec_command_end')).toMatchObject({ stdout: 'one\n', stderr: 'two\n' });

    gate.release();
    const open = context(gate);
    await runShell({ command: ['sh', '-c', 'echo three'] }, open.ctx, plan);
    expect(open.events.filter((e) => e.type === 'exec_command_output_delta')).toMatchObject([{ chunk: 'three\n' }]);
  });

  it('exec_command: skips the deltas and keeps the output for the result', async () => {
    const gate = new FlowGate();
    gate.hold();
    const { ctx, events } = context(gate);
    const output = await runExecCommand({ cmd: 'echo held', yield_time_ms: 5_000 }, ctx, plan);
    expect(output.text).toContain('held');
    expect(events.filter((e) => e.type === 'exec_command_output_delta')).toEqual([]);
    expect(events.find((e) => e.type === 'exec_command_end')).toMatchObject({ aggregated_output: expect.stringContaining('held') });
  });
});

describe('troupe app-server with a stuck stdout', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(path.join(tmpdir(), 'troupe-flow-home-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('stops reading stdin past the high-water mark, and answers every line once stdout drains', async () => {
    const input = new PassThrough();
    const output = new StuckWritable();
    const model: ModelClient = { stream: () => (async function* () {})(), contextWindow: () => null };
    const done = runAppServer([], { input, output, runtime: { home, modelClient: model } });
    // Each line is answered with an error event naming its id: about 150 bytes of output a line.
    const count = Math.ceil((3 * STDOUT_HIGH_WATER_BYTES) / 150);
    for (let i = 0; i < count; i += 100) {
      let chunk = '';
      for (let j = i; j < Math.min(count, i + 100); j++) chunk += `{"id":"line-${j}"}\n`;
      input.write(chunk);
    }
    await waitFor(() => input.isPaused(), 'stdin to be paused', 20_000);
    const answered = output.lines.length;
    expect(output.writableLength).toBeGreaterThan(STDOUT_HIGH_WATER_BYTES);
    // What was read after the mark is at most the rest of one chunk of lines.
    expect(output.writableLength).toBeLessThan(STDOUT_HIGH_WATER_BYTES + 100 * 200);
    expect(answered).toBeLessThan(count);
    expect(input.readableLength).toBeGreaterThan(0);

    output.unstick();
    input.end();
    await expect(done).resolves.toBe(0);
    const ids = output.lines.map((line) => (JSON.parse(line) as Event).id);
    expect(ids).toEqual(Array.from({ length: count }, (_, i) => `line-${i}`));
  });
});
