import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../index.js';
import { PlaceMessage } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { OtlpReceiver } from './support/otlp-receiver.js';

/**
 * Telemetry in a library runtime, configured by TROUPE_HOME/config.json: the prompt text when
 * `log_user_prompt` asks for it, a tool's long output cut short, a review thread in its parent's
 * trace, everything flushed by
 * `runtime.close()`. (The process-wide telemetry is started once per test file: this file has
 * one test that turns it on.)
 */

let model: FakeModelServer;
let receiver: OtlpReceiver;
let home: string;

beforeEach(async () => {
  model = await startFakeModelServer();
  receiver = await OtlpReceiver.start();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
});

afterEach(async () => {
  await model.close();
  await receiver.close();
  await rm(home, { recursive: true, force: true });
});

describe('telemetry in a library runtime', () => {
  it('logs the prompt text with log_user_prompt, cuts long tool output, and flushes on close', async () => {
    await writeFile(join(home, 'config.json'), JSON.stringify({ otel: { exporter: 'otlp-http-json', endpoint: receiver.url, log_user_prompt: true } }));
    const runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: home, model: 'lib-model' });
    let reviewId = '';
    try {
      const session = await runtime.newSession({ approval_policy: 'never', sandbox_policy: 'danger-full-access' });
      model.enqueue(
        { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'big', arguments: { command: ['sh', '-c', 'seq 1 100000'] } }] },
        { kind: 'response', items: [{ type: 'message', text: 'counted' }] },
      );
      const events = session.events();
      const turnId = await session.submit({ type: 'user_turn', items: [{ type: 'text', text: 'count to a lot, please' }] });
      for (;;) {
        const { value, done } = await events.next();
        if (done || (value.id === turnId && value.msg.type === 'task_complete')) break;
      }
      // A review's child session is traced under the review task of its parent.
      const verdict = { findings: [], overall_correctness: 'patch is correct', overall_explanation: 'fine', overall_confidence_score: 0.9 };
      model.enqueue({ kind: 'response', items: [{ type: 'message', text: JSON.stringify(verdict) }] });
      reviewId = await session.submit({ type: 'review', review_request: { target: { type: 'custom', instructions: 'look at the counting' } } });
      for (;;) {
        const { value, done } = await events.next();
        if (done || (value.id === reviewId && value.msg.type === 'task_complete')) break;
      }
    } finally {
      await runtime.close();
    }
    // close() flushed: nothing is waited for here.
    const prompt = receiver.logs.find((l) => l.eventName === 'troupe.user_prompt');
    expect(prompt?.attributes).toMatchObject({ prompt: 'count to a lot, please', prompt_length: 22, model: 'lib-model', 'worker.id': 'local' });
    const result = receiver.logs.find((l) => l.eventName === 'troupe.tool_result');
    const output = result?.attributes.output as string;
    expect(output).toContain('1\n');
    expect(output).toContain('100000');
    expect(Buffer.byteLength(output)).toBeLessThan(4096);
    // The session ended with close(): its span went out too.
    expect(receiver.spans.map((s) => s.name)).toEqual(expect.arrayContaining(['troupe.session', 'troupe.turn', 'troupe.model_request', 'troupe.tool_call']));
    const reviewTurn = receiver.spans.find((s) => s.name === 'troupe.turn' && s.attributes['troupe.turn.id'] === reviewId);
    const reviewer = receiver.spans.find((s) => s.name === 'troupe.sub_agent');
    expect(reviewTurn).toBeDefined();
    expect(reviewer).toMatchObject({ traceId: reviewTurn!.traceId, parentSpanId: reviewTurn!.spanId });
  });

  it('refuses a placement whose traceparent is not W3C trace context', () => {
    const place = { kind: 'place', submission_id: 's', session_id: 'x', lineage: null, origin: { type: 'new' } };
    expect(PlaceMessage.safeParse({ ...place, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }).success).toBe(true);
    for (const bad of ['garbage', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\ninjected', `00-${'a'.repeat(32)}-${'b'.repeat(16)}`]) {
      const parsed = PlaceMessage.safeParse({ ...place, traceparent: bad });
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0]?.path).toEqual(['traceparent']);
    }
  });
});
