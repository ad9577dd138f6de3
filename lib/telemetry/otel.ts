import { readFileSync } from 'node:fs';
import { ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { SeverityNumber, type Logger, type LogAttributes } from '@opentelemetry/api-logs';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { OtelConfig, TokenUsage } from '../../protocol/index.js';
import { truncateMiddle } from '../truncate.js';
import type { OtlpEncoding, RequestSink, SessionFacts, SessionSink, Telemetry, ToolDecision } from './sink.js';

/** How much of a tool's output a `troupe.tool_result` event carries. */
const OUTPUT_LIMITS = { maxBytes: 2048, maxLines: 64 };

/** troupe's version, from its package.json (two levels up in the sources, three in dist/). */
function appVersion(): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'troupe' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/**
 * Start the OpenTelemetry SDK: a tracer and a logger provider of their own (the process's global
 * providers are left alone, so a library user's own setup is not replaced), each with a batch
 * processor and the official OTLP/HTTP exporter. The exporters read the standard OTEL_EXPORTER_OTLP_*
 * environment; the `otel` section's endpoint and headers go on top. The resource comes from
 * OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, with `service.name` troupe by default.
 */
export function startOtel(encoding: OtlpEncoding, config: OtelConfig): Telemetry {
  const version = appVersion();
  const base = { ...(config.headers ? { headers: config.headers } : {}) };
  const url = (signal: string) => (config.endpoint ? { url: `${config.endpoint.replace(/\/+$/, '')}/v1/${signal}` } : {});
  const json = encoding === 'http/json';
  const spanExporter = json ? new JsonTraceExporter({ ...base, ...url('traces') }) : new ProtoTraceExporter({ ...base, ...url('traces') });
  const logExporter = json ? new JsonLogExporter({ ...base, ...url('logs') }) : new ProtoLogExporter({ ...base, ...url('logs') });
  const ours = resourceFromAttributes({
    'service.name': 'troupe',
    'service.version': version,
    ...(config.environment ? { 'deployment.environment.name': config.environment } : {}),
  });
  // What the environment says (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) wins over our defaults.
  const resource = defaultResource()
    .merge(ours)
    .merge(detectResources({ detectors: [envDetector] }));
  const tracerProvider = new TracerProvider({ resource, spanProcessors: [new BatchSpanProcessor({ exporter: spanExporter })] });
  const loggerProvider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: logExporter })] });
  const tracer = tracerProvider.getTracer('troupe', version);
  const logger = loggerProvider.getLogger('troupe', version);
  const logUserPrompt = config.log_user_prompt ?? false;
  return {
    session: (facts) => new OtelSession(tracer, logger, facts, version, logUserPrompt),
    flush: async () => {
      await Promise.all([tracerProvider.forceFlush(), loggerProvider.forceFlush()]);
    },
  };
}

const propagator = new W3CTraceContextPropagator();
const carrierGetter = {
  keys: (carrier: Record<string, string>) => Object.keys(carrier),
  get: (carrier: Record<string, string>, key: string) => carrier[key],
};
const carrierSetter = { set: (carrier: Record<string, string>, key: string, value: string) => void (carrier[key] = value) };

interface OpenCall {
  readonly span: Span;
  readonly turnId: string;
  readonly tool: string;
}

/** One session's spans (session, turns, model requests, tool calls) and its log events. */
class OtelSession implements SessionSink {
  readonly #tracer: Tracer;
  readonly #logger: Logger;
  readonly #common: Attributes;
  readonly #logUserPrompt: boolean;
  readonly #span: Span;
  readonly #context: Context;
  readonly #turns = new Map<string, { span: Span; context: Context }>();
  readonly #calls = new Map<string, OpenCall>();

  constructor(tracer: Tracer, logger: Logger, facts: SessionFacts, version: string, logUserPrompt: boolean) {
    this.#tracer = tracer;
    this.#logger = logger;
    this.#logUserPrompt = logUserPrompt;
    this.#common = {
      'conversation.id': facts.sessionId,
      'app.version': version,
      model: facts.model,
      'worker.id': facts.workerId,
      'session.depth': facts.depth,
    };
    const parent = facts.traceparent ? propagator.extract(ROOT_CONTEXT, { traceparent: facts.traceparent }, carrierGetter) : ROOT_CONTEXT;
    this.#span = tracer.startSpan(
      facts.depth > 0 ? 'troupe.sub_agent' : 'troupe.session',
      {
        attributes: {
          ...this.#common,
          'troupe.session.id': facts.sessionId,
          'troupe.session.purpose': facts.purpose,
          ...(facts.parentId ? { 'troupe.session.parent_id': facts.parentId } : {}),
        },
      },
      parent,
    );
    this.#context = trace.setSpan(parent, this.#span);
  }

  turnStarted(turnId: string): void {
    const span = this.#tracer.startSpan('troupe.turn', { attributes: { ...this.#common, 'troupe.turn.id': turnId } }, this.#context);
    this.#turns.set(turnId, { span, context: trace.setSpan(this.#context, span) });
  }

  turnEnded(turnId: string, status: string, usage: TokenUsage | null): void {
    for (const [callId, call] of this.#calls) if (call.turnId === turnId) this.#endCall(callId, call, 'the turn ended first');
    const turn = this.#turns.get(turnId);
    if (!turn) return;
    this.#turns.delete(turnId);
    turn.span.setAttributes({ 'troupe.turn.status': status, ...tokenAttributes(usage) });
    if (status === 'failed') turn.span.setStatus({ code: SpanStatusCode.ERROR });
    turn.span.end();
  }

  request(turnId: string, attempt: number, model: string): RequestSink {
    const parent = this.#turns.get(turnId)?.context ?? this.#context;
    const span = this.#tracer.startSpan('troupe.model_request', { attributes: { ...this.#common, model, 'troupe.turn.id': turnId, attempt } }, parent);
    const spanContext = trace.setSpan(parent, span);
    const start = performance.now();
    const duration = () => Math.round(performance.now() - start);
    let open = true;
    const end = () => {
      open = false;
      span.end();
    };
    const emit = (name: string, attributes: LogAttributes) => this.#emit(name, { ...attributes, model }, spanContext);
    return {
      streamed: (kind) => emit('troupe.sse_event', { 'event.kind': kind, duration_ms: duration() }),
      completed: (usage) => {
        emit('troupe.sse_event', { 'event.kind': 'response.completed', duration_ms: duration(), ...tokenAttributes(usage) });
        emit('troupe.api_request', { attempt, duration_ms: duration(), status: 'ok' });
        span.setAttributes(tokenAttributes(usage));
        end();
      },
      failed: (code, message) => {
        emit('troupe.api_request', { attempt, duration_ms: duration(), status: code, error: message });
        span.setStatus({ code: SpanStatusCode.ERROR, message });
        end();
      },
      cancelled: () => {
        if (!open) return;
        emit('troupe.api_request', { attempt, duration_ms: duration(), status: 'cancelled' });
        end();
      },
    };
  }

  toolPlanned(turnId: string, callId: string, tool: string): void {
    const parent = this.#turns.get(turnId)?.context ?? this.#context;
    const span = this.#tracer.startSpan(
      'troupe.tool_call',
      { attributes: { ...this.#common, 'troupe.turn.id': turnId, 'tool.name': tool, 'call.id': callId } },
      parent,
    );
    this.#calls.set(callId, { span, turnId, tool });
  }

  toolDecided(callId: string, decision: ToolDecision): void {
    const call = this.#calls.get(callId);
    if (!call) return;
    if (decision.source === 'user') call.span.addEvent('approval.decided', { decision: decision.decision });
    this.#emit(
      'troupe.tool_decision',
      { 'tool.name': call.tool, 'call.id': callId, decision: decision.decision, source: decision.source },
      this.#callContext(call),
    );
    if (decision.decision === 'denied' || decision.decision === 'abort') this.#endCall(callId, call, `${decision.decision} (${decision.source})`);
  }

  approvalRequested(callId: string): void {
    this.#calls.get(callId)?.span.addEvent('approval.requested');
  }

  toolEnded(callId: string, result: { arguments: string; durationMs: number; success: boolean; output: string }): void {
    const call = this.#calls.get(callId);
    if (!call) return;
    this.#emit(
      'troupe.tool_result',
      {
        'tool.name': call.tool,
        'call.id': callId,
        arguments: result.arguments,
        duration_ms: result.durationMs,
        success: result.success,
        output: truncateMiddle(result.output, OUTPUT_LIMITS),
      },
      this.#callContext(call),
    );
    call.span.setAttribute('success', result.success);
    if (!result.success) call.span.setStatus({ code: SpanStatusCode.ERROR });
    this.#calls.delete(callId);
    call.span.end();
  }

  userPrompt(text: string): void {
    this.#emit('troupe.user_prompt', { prompt_length: text.length, prompt: this.#logUserPrompt ? text : '[REDACTED]' }, this.#context);
  }

  traceparent(id: string): string | undefined {
    const call = this.#calls.get(id);
    const carrier: Record<string, string> = {};
    propagator.inject(call ? this.#callContext(call) : (this.#turns.get(id)?.context ?? this.#context), carrier, carrierSetter);
    return carrier.traceparent;
  }

  end(): void {
    for (const [callId, call] of this.#calls) this.#endCall(callId, call, 'the session ended first');
    for (const [turnId] of this.#turns) this.turnEnded(turnId, 'unfinished', null);
    this.#span.end();
  }

  #callContext(call: OpenCall): Context {
    return trace.setSpan(this.#context, call.span);
  }

  #endCall(callId: string, call: OpenCall, why: string): void {
    this.#calls.delete(callId);
    call.span.setAttribute('troupe.call.ended', why);
    call.span.end();
  }

  #emit(name: string, attributes: LogAttributes, at: Context): void {
    this.#logger.emit({
      eventName: name,
      body: name,
      severityNumber: SeverityNumber.INFO,
      attributes: { ...this.#common, 'event.name': name, ...attributes },
      context: at,
    });
  }
}

function tokenAttributes(usage: TokenUsage | null): Attributes {
  if (!usage) return {};
  return {
    input_token_count: usage.input_tokens,
    cached_token_count: usage.cached_input_tokens,
    output_token_count: usage.output_tokens,
    reasoning_token_count: usage.reasoning_output_tokens,
    total_token_count: usage.total_tokens,
  };
}
