import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';
import { NatsCluster } from '../support/nats-cluster.js';
import { OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

/**
 * OpenTelemetry end to end: two `troupe worker` processes on a real nats-server send OTLP/JSON
 * to a loopback receiver, one configured by its TROUPE_HOME/config.json, the other by the
 * standard environment. A parent turn runs a command the user approves and spawns a sub-agent,
 * which lands on the other worker; the workers drain, and what the receiver decoded must be one
 * trace with its log events.
 */

const cluster = new NatsCluster({ name: 'otel-e2e' });
let receiver: OtlpReceiver | undefined;

afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const SECRET_PROMPT = 'PARENT: run it and delegate (a secret: swordfish)';

describe('OpenTelemetry', () => {
  it('exports one trace for a tree spread over two workers, with tool, approval and prompt events', async () => {
    receiver = await OtlpReceiver.start();
    const homeA = join(cluster.dir, 'home-a');
    await mkdir(homeA, { recursive: true });
    await writeFile(join(homeA, 'config.json'), JSON.stringify({ otel: { exporter: 'otlp-http-json', endpoint: receiver.url, environment: 'e2e' } }));
    const a = await cluster.startWorker('a', 1, { home: homeA });
    const b = await cluster.startWorker('b', 1, {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'troupe-b' },
    });
    const gateway = await cluster.startGateway();
    const id = gateway.submit({ type: 'new_session', config: { cwd: cluster.dir, approval_policy: 'untrusted', sandbox_policy: 'danger-full-access' } });
    const configured = await gateway.waitForMsg('session_configured', { id });
    const parent = configured.session_id!;

    cluster.model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'PARENT') && outputFor(r, 'c1') === undefined,
        items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['sh', '-c', 'echo approved-output > out.txt && cat out.txt'] } }],
      },
      {
        kind: 'response',
        match: (r) => outputFor(r, 'c1') !== undefined && outputFor(r, 's1') === undefined,
        items: [{ type: 'function_call', name: 'spawn_agent', call_id: 's1', arguments: { message: 'CHILD: say hello' } }],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD'), items: [{ type: 'message', text: 'hello from the child' }] },
      {
        kind: 'reply',
        match: (r) => outputFor(r, 's1') !== undefined && outputFor(r, 'w') === undefined,
        handler: (r) => ({
          kind: 'response',
          items: [{ type: 'function_call', name: 'wait_agent', call_id: 'w', arguments: { agent_ids: spawnedAgentIds(r) } }],
        }),
      },
      { kind: 'response', match: (r) => outputFor(r, 'w') !== undefined, items: [{ type: 'message', text: 'all done' }] },
    );
    const turnId = gateway.submit({ type: 'user_turn', items: [{ type: 'text', text: SECRET_PROMPT }] }, parent);
    await gateway.waitForMsg('exec_approval_request', { session: parent, where: (m) => m.call_id === 'c1' });
    gateway.submit({ type: 'exec_approval', id: 'c1', decision: 'approved' }, parent);
    const end = await gateway.waitFor((e) => e.id === turnId && e.msg.type === 'task_complete', 'the parent turn', 30_000);
    expect(end.msg).toMatchObject({ last_agent_message: 'all done' });
    const child = gateway.events.find((e) => e.msg.type === 'session_configured' && e.msg.parent_session_id === parent);
    const childWorker = child?.msg.type === 'session_configured' ? child.msg.worker_id : null;
    expect(childWorker).not.toBe(configured.msg.type === 'session_configured' ? configured.msg.worker_id : null);

    // Draining flushes the exporters: everything must have arrived once both workers exited.
    a.signal('SIGTERM');
    b.signal('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
    expect(receiver.rejected).toBe(0);

    const spans = receiver.spans;
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const parentOf = (span: ReceivedSpan) => spans.find((s) => s.spanId === span.parentSpanId);
    // One trace, one root: the parent session.
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    const roots = spans.filter((s) => s.parentSpanId === '');
    expect(roots.map((s) => s.name)).toEqual(['troupe.session']);
    const root = roots[0]!;
    expect(root.attributes).toMatchObject({ 'conversation.id': parent, 'troupe.session.id': parent, 'session.depth': 0 });
    for (const span of spans.filter((s) => s !== root)) expect(parentOf(span), `the parent of ${span.name}`).toBeDefined();

    const parentTurn = byName('troupe.turn').find((s) => s.attributes['troupe.turn.id'] === turnId)!;
    expect(parentOf(parentTurn)).toBe(root);
    const requests = byName('troupe.model_request').filter((s) => s.parentSpanId === parentTurn.spanId);
    expect(requests.length).toBe(4);
    expect(requests[0]?.attributes).toMatchObject({ model: 'test-model', attempt: 1 });

    const shellSpan = byName('troupe.tool_call').find((s) => s.attributes['call.id'] === 'c1')!;
    expect(parentOf(shellSpan)).toBe(parentTurn);
    expect(shellSpan.attributes).toMatchObject({ 'tool.name': 'shell', success: true });
    expect(shellSpan.events.map((e) => e.name)).toEqual(['approval.requested', 'approval.decided']);
    expect(shellSpan.events[1]?.attributes).toEqual({ decision: 'approved' });

    // The sub-agent ran on the other worker, under the spawn_agent call that placed it.
    const spawnSpan = byName('troupe.tool_call').find((s) => s.attributes['call.id'] === 's1')!;
    expect(parentOf(spawnSpan)).toBe(parentTurn);
    const subAgent = byName('troupe.sub_agent')[0]!;
    expect(parentOf(subAgent)).toBe(spawnSpan);
    expect(subAgent.attributes).toMatchObject({ 'troupe.session.parent_id': parent, 'session.depth': 1, 'worker.id': childWorker });
    expect(subAgent.attributes['worker.id']).not.toBe(root.attributes['worker.id']);
    const childTurn = byName('troupe.turn').find((s) => s.parentSpanId === subAgent.spanId);
    expect(childTurn).toBeDefined();
    expect(byName('troupe.model_request').some((s) => s.parentSpanId === childTurn?.spanId)).toBe(true);

    // Resources: each worker's own configuration.
    const onA = spans.filter((s) => s.attributes['worker.id'] === 'a');
    const onB = spans.filter((s) => s.attributes['worker.id'] === 'b');
    expect(onA.length).toBeGreaterThan(0);
    expect(onB.length).toBeGreaterThan(0);
    for (const s of onA) expect(s.resource).toMatchObject({ 'service.name': 'troupe', 'deployment.environment.name': 'e2e' });
    for (const s of onB) expect(s.resource).toMatchObject({ 'service.name': 'troupe-b' });

    // Log events, with the common attributes, tied to their spans.
    const logs = receiver.logs;
    const named = (name: string) => logs.filter((l) => l.eventName === name);
    for (const record of logs) {
      expect(record.attributes).toMatchObject({ 'event.name': record.eventName, model: 'test-model', 'app.version': expect.any(String) });
      expect(record.attributes['conversation.id']).toEqual(expect.any(String));
      expect(record.attributes['worker.id']).toMatch(/^[ab]$/);
      expect(record.attributes['session.depth']).toEqual(expect.any(Number));
      expect(record.traceId).toBe(root.traceId);
    }
    const prompt = named('troupe.user_prompt').find((l) => l.attributes['conversation.id'] === parent)!;
    expect(prompt.attributes).toMatchObject({ prompt_length: SECRET_PROMPT.length, prompt: '[REDACTED]' });
    expect(JSON.stringify(logs)).not.toContain('swordfish');
    expect(JSON.stringify(spans)).not.toContain('swordfish');

    const decisions = named('troupe.tool_decision');
    expect(decisions.find((l) => l.attributes['call.id'] === 'c1')?.attributes).toMatchObject({ 'tool.name': 'shell', decision: 'approved', source: 'user' });
    expect(decisions.find((l) => l.attributes['call.id'] === 's1')?.attributes).toMatchObject({
      'tool.name': 'spawn_agent',
      decision: 'approved',
      source: 'config',
    });
    const result = named('troupe.tool_result').find((l) => l.attributes['call.id'] === 'c1')!;
    expect(result.attributes).toMatchObject({ 'tool.name': 'shell', success: true, duration_ms: expect.any(Number) });
    expect(result.attributes.arguments).toContain('echo approved-output');
    expect(result.attributes.output).toContain('approved-output');
    expect(result.spanId).toBe(shellSpan.spanId);

    const apiRequests = named('troupe.api_request').filter((l) => l.attributes['conversation.id'] === parent);
    expect(apiRequests).toHaveLength(4);
    for (const r of apiRequests) expect(r.attributes).toMatchObject({ attempt: 1, status: 'ok', duration_ms: expect.any(Number) });
    const completions = named('troupe.sse_event').filter((l) => l.attributes['event.kind'] === 'response.completed');
    expect(completions.length).toBeGreaterThanOrEqual(5);
    for (const c of completions) expect(c.attributes).toMatchObject({ input_token_count: expect.any(Number), output_token_count: expect.any(Number) });
  });
});
