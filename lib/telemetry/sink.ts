import type { ReviewDecision, TokenUsage } from '../../protocol/index.js';

/** The OTLP encodings troupe can send: the official HTTP exporters, protobuf or JSON. */
export type OtlpEncoding = 'http/protobuf' | 'http/json';

/** Who a session is, for the attributes every span and log event of it carries. */
export interface SessionFacts {
  readonly sessionId: string;
  readonly parentId: string | null;
  readonly depth: number;
  readonly workerId: string;
  readonly model: string;
  readonly purpose: string;
  /** W3C trace context of the span that asked for the session (its parent's spawn_agent call). */
  readonly traceparent?: string | undefined;
}

/** How a tool call was decided: by the configuration and policy, or by the user answering. */
export type ToolDecision =
  { readonly source: 'config'; readonly decision: 'approved' | 'denied' } | { readonly source: 'user'; readonly decision: ReviewDecision };

/** One model request's telemetry: a span, `troupe.api_request` and `troupe.sse_event` events. */
export interface RequestSink {
  /** An event of the response stream (`kind` as the Responses API names it). */
  streamed(kind: string): void;
  completed(usage: TokenUsage | null): void;
  failed(code: string, message: string): void;
  cancelled(): void;
}

/** One session's telemetry. The observer (observer.ts) calls it; the OpenTelemetry side implements it. */
export interface SessionSink {
  turnStarted(turnId: string): void;
  turnEnded(turnId: string, status: string, usage: TokenUsage | null): void;
  request(turnId: string, attempt: number, model: string): RequestSink;
  toolPlanned(turnId: string, callId: string, tool: string): void;
  toolDecided(callId: string, decision: ToolDecision): void;
  approvalRequested(callId: string): void;
  toolEnded(callId: string, result: { readonly arguments: string; readonly durationMs: number; readonly success: boolean; readonly output: string }): void;
  userPrompt(text: string): void;
  /**
   * The W3C traceparent of call `id`'s span (a sub-agent it places), or of turn `id`'s (a review
   * or compaction's child session); the session's own when neither is open.
   */
  traceparent(id: string): string | undefined;
  /** The session ended here (closed, or moved to another worker). */
  end(): void;
}

/** The process's telemetry when it is on. */
export interface Telemetry {
  session(facts: SessionFacts): SessionSink;
  /** Send what the exporters hold. */
  flush(): Promise<void>;
}
