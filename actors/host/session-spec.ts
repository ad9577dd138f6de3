import type { McpServerConfig, ResponseItem, SessionLineage } from '../../protocol/index.js';
import type { SessionSettings } from '../../machines/turn-context.js';
import type { Bus } from '../../lib/bus/bus.js';
import type { SessionActivity } from '../../lib/durable/host-durability.js';
import type { RolloutSink, SessionDurability } from '../../lib/durable/session-durability.js';
import type { FlowSignal } from '../../lib/flow/flow-gate.js';
import type { JobStore } from '../jobs/store.js';
import type { ModelClient } from '../../lib/model/types.js';
import type { ProjectDocs } from '../../lib/prompts/project-docs.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { Telemetry } from '../../lib/telemetry/index.js';
import type { SessionLogic } from './session-logic.js';

/** What a host gives each session it runs. */
export interface SessionServices {
  readonly bus: Bus;
  readonly namespace: string;
  readonly workerId: string;
  readonly model: ModelClient;
  readonly tools: ToolRegistry;
  /** The session statechart with its logic provided, shared by the host's sessions. */
  readonly logic: SessionLogic;
  /** TROUPE_HOME of the host: the tools' rules and protected paths come from it. */
  readonly home: string;
  /** Base delay of the model retry backoff. */
  readonly retryBaseMs: number;
  /** Closed while the reader of the events is behind: model streams wait, output deltas are skipped. */
  readonly flow: FlowSignal;
  /** Where agent jobs live (JetStream on NATS); absent: files under `home`. */
  readonly jobStore?: JobStore | undefined;
  /** On NATS: whether a session of a tree is in a turn, wherever it runs (from its log). */
  readonly sessionActivity?: ((rootId: string, sessionId: string) => Promise<SessionActivity>) | undefined;
}

export interface SessionSpec {
  readonly sessionId: string;
  readonly settings: SessionSettings;
  readonly lineage: SessionLineage | null;
  readonly history: readonly ResponseItem[];
  readonly rollout: RolloutSink;
  /** True for a brand-new session: its initial context (instructions, environment) is recorded. */
  readonly fresh: boolean;
  /** The seq of the last event a resumed session had numbered (its stream goes on after it). */
  readonly initialSeq?: number;
  /** AGENTS.md project instructions to put in the initial context (new sessions and reviewers). */
  readonly projectDocs?: ProjectDocs | null;
  /** Limits of the session tree on sub-agents. */
  readonly agentLimits: { readonly maxDepth: number; readonly maxThreads: number };
  /** `approved_for_session` keys the tree had granted when this session was placed. */
  readonly approvals: readonly string[];
  /** A regular session, a review thread or a compaction's summarizer: only the first has sub-agents. */
  readonly purpose: 'session' | 'review' | 'compact';
  /** The session's MCP servers (`SessionConfig.mcp_servers`). */
  readonly mcpServers?: Readonly<Record<string, McpServerConfig>> | undefined;
  /** On NATS: the call journal, the event numbering to continue, and what an adoption resumes. */
  readonly durability?: SessionDurability | undefined;
  /** The process's OpenTelemetry, when it is on. */
  readonly telemetry?: Telemetry | null;
  /** W3C trace context the session's span continues (a sub-agent's: its parent's spawn_agent call). */
  readonly traceparent?: string | undefined;
}
