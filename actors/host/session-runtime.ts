import { createActor, type Actor } from 'xstate';
import type {
  EventMsg,
  McpServerConfig,
  MessageItem,
  RateLimitSnapshot,
  ResponseItem,
  SessionLineage,
  Submission,
  TokenUsage,
} from '../../protocol/index.js';
import type { SessionEvent } from '../../machines/session.js';
import type { ToolCallInput } from '../../machines/tool-call.js';
import type { ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import type { ModelFailure, TurnEvent } from '../../machines/turn.js';
import type { SessionSettings, TurnContext } from '../../machines/turn-context.js';
import type { Bus } from '../bus/bus.js';
import { subjects } from '../bus/subjects.js';
import { abortedOutput, addUsage, ConversationHistory, emptyUsage } from '../history/conversation-history.js';
import { log } from '../log.js';
import type { ModelClient, Prompt } from '../model/types.js';
import {
  developerMessage,
  environmentContext,
  environmentMessage,
  sameEnvironment,
  type EnvironmentContext,
} from '../prompts/environment-context.js';
import type { ProjectDocs } from '../prompts/project-docs.js';
import { shouldPersistEvent } from '../rollout/index.js';
import type { RolloutSink, SessionDurability } from '../durable/session-durability.js';
import { TurnDiffTracker } from '../tools/patch/turn-diff.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { SessionResource, ToolContext } from '../tools/tool.js';
import { AgentSupervisor } from '../agents/supervisor.js';
import { TreeApprovals } from '../agents/tree-approvals.js';
import { userMessage, UserInputError } from './user-input.js';
import { sample } from './sampler.js';
import { SessionTasks } from './session-tasks.js';
import { SessionLogic, type SessionBindings } from './session-logic.js';
import type { McpManager } from '../mcp/index.js';
import type { FlowSignal } from '../flow/flow-gate.js';

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
}

/**
 * One live session: the SessionMachine with its logic provided, and the things that logic
 * uses (history, rollout, event stream). This is the only place a session's history is
 * written, through its ConversationHistory.
 */
export class SessionRuntime {
  readonly id: string;
  readonly rootId: string;
  /** Resolves when the session's actor has ended: it takes no more ops. */
  readonly ended: Promise<void>;
  /** Resolves when the session has ended and its rollout is closed (every line written). */
  readonly closed: Promise<void>;
  readonly #services: SessionServices;
  readonly #spec: SessionSpec;
  readonly #history: ConversationHistory;
  readonly #actor: Actor<SessionLogic['machine']>;
  readonly #approvals: TreeApprovals;
  readonly #agents: AgentSupervisor;
  readonly #tasks: SessionTasks;
  /** Tokens of the last request, as the provider counted them: what auto-compaction watches. */
  #tokensInUse = 0;
  readonly #diffs = new Map<string, TurnDiffTracker>();
  /** What tools keep for the rest of the session; disposed when it closes. */
  readonly #resources = new Map<string, SessionResource>();
  /** Where this session's events go. */
  readonly #eventSubject: string;
  #seq = 0;
  #abandoned = false;
  /** The session's log is backed up and its streaming deltas are being left out. */
  #skippingDeltas = false;
  #lastEnvironment: EnvironmentContext | null = null;
  #totalUsage: TokenUsage = emptyUsage();
  #rateLimits: RateLimitSnapshot | null = null;
  /** Ops of this session are handled strictly in arrival order. */
  #opQueue: Promise<void> = Promise.resolve();
  /** The host's tools plus this session's MCP tools. */
  #tools: ToolRegistry;
  #mcp: McpManager | null = null;
  /** Settles once the MCP servers have started (or failed to); turns wait for it. */
  #mcpReady: Promise<void> = Promise.resolve();

  constructor(services: SessionServices, spec: SessionSpec) {
    this.id = spec.sessionId;
    this.rootId = spec.lineage?.root_session_id ?? spec.sessionId;
    this.#eventSubject = subjects(services.namespace).event(this.rootId, spec.sessionId);
    this.#services = services;
    this.#tools = services.tools;
    this.#spec = spec;
    this.#history = new ConversationHistory(spec.history);
    this.#approvals = new TreeApprovals(services.bus, services.namespace, this.rootId, spec.approvals, (key) =>
      spec.durability?.recordApproval(key),
    );
    this.#agents = new AgentSupervisor({
      bus: services.bus,
      namespace: services.namespace,
      sessionId: spec.sessionId,
      rootId: this.rootId,
      depth: spec.lineage?.depth ?? 0,
      maxDepth: spec.agentLimits.maxDepth,
      maxThreads: spec.agentLimits.maxThreads,
      mcpServers: spec.mcpServers,
      emit: (id, msg) => this.emit(id, msg),
      history: () => this.#history.items(),
      approvals: () => this.#approvals.snapshot(),
      isIdle: () => this.idle,
      notify: (item) => this.#record(item),
    });
    this.#tasks = new SessionTasks({
      sessionId: spec.sessionId,
      rootId: this.rootId,
      depth: spec.lineage?.depth ?? 0,
      bus: services.bus,
      namespace: services.namespace,
      model: services.model,
      emit: (id, msg) => this.emit(id, msg),
      record: (...items) => this.#record(...items),
      replaceHistory: (items, note, turnStart) => {
        this.#history.replace(items);
        if (turnStart !== undefined) this.#turnStart = turnStart;
        this.#spec.rollout.record({ type: 'compacted', payload: { message: note, replacement_history: [...items] } });
      },
      history: () => this.#history.items(),
      turnStart: (turnId) => (this.#turnStart?.turnId === turnId ? this.#turnStart.index : undefined),
      tokensInUse: () => this.#tokensInUse,
      setTokensInUse: (tokens) => {
        this.#tokensInUse = tokens;
      },
      toolContext: (callId, turn, signal) => this.#contextFor(callId, turn, signal),
    });
    this.#seq = spec.durability?.initialSeq ?? spec.initialSeq ?? 0;
    const hooks = { record: (item: ResponseItem) => this.#record(item), rememberTurn: (id: string, turn: TurnContext) => void this.#turnContexts.set(id, turn) };
    const unbind = services.logic.bind(spec.sessionId, spec.durability ? spec.durability.wrap(this.#bindings(), hooks) : this.#bindings());
    this.#actor = createActor(services.logic.machine, { input: { sessionId: spec.sessionId, settings: spec.settings } });
    // The rollout closes once the actor has ended, so `shutdown_complete`, its last event, is
    // in it too (and a resumed session numbers its events after that one).
    const closeRollout = () =>
      this.#spec.rollout.close().catch((error: unknown) => log.warn({ err: error, session: this.id }, 'the rollout did not close cleanly'));
    this.ended = new Promise<void>((resolve) => {
      this.#actor.subscribe({
        complete: () => {
          unbind();
          resolve();
        },
        error: (error) => {
          log.error({ err: error, session: this.id }, 'session actor failed');
          unbind();
          resolve();
        },
      });
    });
    this.closed = this.ended.then(closeRollout);
  }

  /** True when no task runs: the session can move to another worker without losing work. */
  get idle(): boolean {
    return this.#actor.getSnapshot().matches('idle');
  }

  get rolloutPath(): string {
    return this.#spec.rollout.path;
  }

  /** Start the actor and announce the session (`session_configured` is always seq 1). */
  start(submissionId: string): void {
    const { settings, lineage } = this.#spec;
    const docs = this.#spec.projectDocs;
    if (this.#spec.fresh && settings.developer_instructions) this.#record(developerMessage(settings.developer_instructions));
    if (docs?.message) this.#record(docs.message);
    if (this.#spec.fresh) this.#announceEnvironment(settings);
    this.#approvals.start();
    this.#agents.start();
    this.#actor.start();
    const adopted = this.#spec.durability?.adopted;
    if (adopted) {
      // The client saw session_configured long ago; this says where the session runs now.
      this.emit(null, { type: 'background_event', message: `session moved to worker ${this.#services.workerId} after worker ${adopted.from} stopped` });
      if (adopted.turn) this.#actor.send({ type: 'TURN_INPUT', submissionId: adopted.turn.turnId, items: [], overrides: adopted.turn.overrides });
    } else this.emit(submissionId, {
      type: 'session_configured',
      session_id: this.id,
      model: settings.model,
      cwd: settings.cwd,
      approval_policy: settings.approval_policy,
      sandbox_policy: settings.sandbox_policy,
      rollout_path: this.#spec.rollout.path,
      parent_session_id: lineage?.parent_session_id ?? null,
      depth: lineage?.depth ?? 0,
      worker_id: this.#services.workerId,
      history_entries: this.#history.length,
    });
    if (docs && docs.omittedBytes > 0) {
      this.emit(submissionId, {
        type: 'warning',
        message: `the project instructions (${docs.files.join(', ')}) are longer than project_doc_max_bytes: ${docs.omittedBytes} bytes were left out`,
      });
    }
    const servers = this.#spec.mcpServers;
    if (servers && Object.keys(servers).length > 0) {
      // Loaded on first use: most sessions have no MCP servers, and the SDK is not small.
      this.#mcpReady = import('../mcp/index.js')
        .then(({ McpManager }) =>
          McpManager.start(servers, { emit: (msg) => this.emit(null, msg), log }, { cwd: settings.cwd, reservedNames: this.#tools.specs().map((s) => s.name) }),
        )
        .then((manager) => {
          this.#mcp = manager;
          this.#resources.set('mcp', manager);
          const refresh = (): void => {
            this.#tools = this.#services.tools.extend(manager.tools());
          };
          refresh();
          manager.onToolsChanged(refresh);
        })
        .catch((error: unknown) => {
          this.emit(null, { type: 'warning', message: `MCP servers could not start: ${(error as Error).message}` });
        });
    }
  }

  /**
   * Stop running this session here without ending it (its lease went to another worker, or
   * this worker hands it over): the actor stops, which aborts its tool calls, and nothing more
   * is published. The session itself lives on from its log elsewhere.
   */
  abandon(): void {
    this.#abandoned = true;
    this.#actor.stop();
    void Promise.allSettled([...this.#resources.values()].map((r) => r.dispose()));
    this.#resources.clear();
    void this.#spec.rollout.close().catch(() => undefined);
  }

  /** Hand an op to the session; ops are applied in the order they arrive. */
  submit(submission: Submission): Promise<void> {
    const next = this.#opQueue.then(() => this.#apply(submission));
    this.#opQueue = next.catch((error: unknown) => log.error({ err: error, session: this.id }, 'op failed'));
    return next;
  }

  /** Put an event on the session's stream: numbered, persisted when it matters, published. */
  emit(id: string | null, msg: EventMsg): void {
    if (this.#abandoned) return;
    const event = { id, session_id: this.id, seq: this.#seq + 1, msg };
    // On NATS the event goes through the session's log: stored in order, held while NATS is away.
    // A log backed up past half its limit gets no streaming deltas (the complete items follow).
    const durable = this.#spec.durability;
    if (durable && STREAMING_DELTAS.has(msg.type) && this.#leaveOutDelta(durable)) return;
    if (durable && !durable.publishEvent(event)) return this.#overflowed(durable);
    this.#seq = event.seq;
    if (shouldPersistEvent(msg)) this.#spec.rollout.record({ type: 'event_msg', payload: msg, seq: event.seq });
    if (durable) return;
    this.#services.bus.publish(this.#eventSubject, { kind: 'event', event }).catch((error: unknown) => {
      log.error({ err: error, session: this.id, type: msg.type }, 'could not publish an event');
    });
  }

  /** Whether a streaming delta is left out now; says so in the log when that starts and stops. */
  #leaveOutDelta(durable: SessionDurability): boolean {
    const congested = durable.congested();
    if (congested !== this.#skippingDeltas) {
      this.#skippingDeltas = congested;
      log.debug({ session: this.id }, congested ? 'the session log is backed up: streaming deltas are left out' : 'the session log caught up: streaming deltas again');
    }
    return congested;
  }

  /**
   * The session's log holds the most it may (NATS away or too slow), and took no more events. The
   * session says so on its stream (these two notices go past the limit, and are its last here),
   * and stops on this worker; the host moves it on once the log has stored what it holds.
   */
  #overflowed(durable: SessionDurability): void {
    this.#abandoned = true;
    const { maxEntries, maxBytes } = durable.limits;
    const why = `its events are not being stored (NATS is away or too slow), and it holds the most it may (${maxEntries} events or ${maxBytes} bytes)`;
    const notices: EventMsg[] = [
      { type: 'error', code: 'internal', message: `session stopped on worker ${this.#services.workerId}: ${why}` },
      { type: 'background_event', message: `session stopped on worker ${this.#services.workerId}: ${why}; it continues from its log once NATS is back` },
    ];
    for (const msg of notices) durable.publishEvent({ id: null, session_id: this.id, seq: ++this.#seq, msg }, true);
    log.error({ session: this.id, maxEntries, maxBytes }, 'the session log is full: the session stops on this worker');
    // Not from inside the statechart step that emitted: the host stops the actor.
    queueMicrotask(() => durable.overflowed());
  }

  async #apply(submission: Submission): Promise<void> {
    const id = submission.id;
    const op = submission.op;
    const send = (event: SessionEvent) => this.#actor.send(event);
    switch (op.type) {
      case 'user_turn':
      case 'user_input': {
        await this.#mcpReady;
        let message: MessageItem;
        try {
          message = await userMessage(op.items);
        } catch (error) {
          if (!(error instanceof UserInputError)) throw error;
          this.emit(id, { type: 'error', code: 'bad_request', message: error.message });
          return;
        }
        const { type: _type, items: _items, ...rest } = op;
        const overrides = op.type === 'user_turn' ? rest : {};
        send({
          type: 'TURN_INPUT',
          submissionId: id,
          items: [message],
          overrides,
          final_output_json_schema: op.type === 'user_turn' ? op.final_output_json_schema : undefined,
        });
        return;
      }
      case 'override_turn_context': {
        const { type: _type, ...overrides } = op;
        send({ type: 'OVERRIDE', submissionId: id, overrides });
        return;
      }
      case 'interrupt':
        send({ type: 'INTERRUPT', submissionId: id });
        return;
      case 'exec_approval':
      case 'patch_approval':
        send({ type: 'APPROVAL', submissionId: id, callId: op.id, decision: op.decision });
        return;
      case 'shutdown':
        send({ type: 'SHUTDOWN', submissionId: id });
        return;
      case 'resolve_elicitation':
        await this.#mcpReady;
        try {
          if (!this.#mcp) throw new Error(`no MCP server "${op.server}" in this session`);
          this.#mcp.resolveElicitation(op.server, op.request_id, op.decision, op.content);
        } catch (error) {
          this.emit(id, { type: 'error', code: 'bad_request', message: (error as Error).message });
        }
        return;
      case 'review':
        send({ type: 'REVIEW', submissionId: id, target: op.review_request.target, hint: op.review_request.user_facing_hint });
        return;
      case 'compact':
        send({ type: 'COMPACT', submissionId: id });
        return;
      case 'undo':
        send({ type: 'UNDO', submissionId: id });
        return;
      case 'thread_rollback':
        send({ type: 'ROLLBACK', submissionId: id, numTurns: op.num_turns });
        return;
      case 'run_user_shell_command':
        send({ type: 'USER_SHELL', submissionId: id, command: op.command });
        return;
      default:
        this.emit(id, { type: 'error', code: 'bad_request', message: `op ${op.type} does not address an existing session` });
    }
  }

  /** Close the sub-agents (each closes its own first) and dispose what tools kept open; the rollout closes after. */
  async #close(): Promise<void> {
    await this.#mcpReady;
    await this.#agents.closeAll().catch((error: unknown) => log.warn({ err: error, session: this.id }, 'closing sub-agents failed'));
    await this.#approvals.stop();
    const resources = [...this.#resources.values()];
    this.#resources.clear();
    const results = await Promise.allSettled(resources.map((r) => r.dispose()));
    for (const result of results) {
      if (result.status === 'rejected') log.warn({ err: result.reason, session: this.id }, 'a session resource failed to close');
    }
  }

  /** Add items to the history and the rollout, in that order, as one step. */
  #record(...items: ResponseItem[]): void {
    this.#history.record(...items);
    this.#spec.rollout.record(...items.map((payload) => ({ type: 'response_item' as const, payload })));
  }

  #announceEnvironment(settings: SessionSettings): void {
    const env = environmentContext(settings);
    if (sameEnvironment(this.#lastEnvironment, env)) return;
    this.#lastEnvironment = env;
    this.#record(environmentMessage(env));
  }

  #tokenCount(last: TokenUsage, model: string): EventMsg {
    return {
      type: 'token_count',
      info: { total_token_usage: this.#totalUsage, last_token_usage: last, model_context_window: this.#services.model.contextWindow(model) },
      rate_limits: this.#rateLimits,
    };
  }

  /** What this session does for the machines' injected logic (see SessionLogic). */
  #bindings(): SessionBindings {
    return {
      emit: (id, msg) => this.emit(id, msg),
      plan: (input) => this.#plan(input),
      execute: (input, signal) => this.#execute(input, signal),
      rememberApproval: (key) => this.#approvals.grant(key),
      sample: (step, sendBack) => this.#sample(step.turn, step.attempt, sendBack),
      wantsSnapshot: (turn) => this.#tasks.wantsSnapshot(turn),
      snapshot: (step) => this.#tasks.snapshot(step.turn),
      wantsCompaction: (turn) => this.#tasks.wantsCompaction(turn),
      autoCompact: (step, signal) => this.#tasks.autoCompact(step.turnId, step.turn, signal),
      beginTurn: (turnId, turn, input) => {
        // One turn at a time: what earlier turns kept is no longer needed.
        this.#turnContexts.clear();
        this.#diffs.clear();
        this.#turnContexts.set(turnId, turn);
        this.#turnStart = { turnId, index: this.#history.length };
        this.#spec.rollout.record({
          type: 'turn_context',
          payload: {
            turn_id: turnId,
            cwd: turn.cwd,
            model: turn.model,
            approval_policy: turn.approval_policy,
            sandbox_policy: turn.sandbox_policy,
            ...(turn.effort ? { effort: turn.effort } : {}),
          },
        });
        this.emit(turnId, { type: 'task_started', turn_id: turnId, model_context_window: this.#services.model.contextWindow(turn.model) });
        this.#announceEnvironment(turn);
        this.#recordUserInput(turnId, [...input]);
      },
      recordItem: (turnId, item) => {
        this.#record(item);
        if (item.type === 'message' && item.role === 'assistant') {
          this.emit(turnId, { type: 'agent_message', message: messageText(item) });
        } else if (item.type === 'reasoning') {
          const text = item.summary.map((s) => s.text).join('\n');
          if (text) this.emit(turnId, { type: 'agent_reasoning', text });
        }
      },
      recordOutputs: (outputs) =>
        this.#record(...outputs.map(({ callId, output }) => ({ type: 'function_call_output' as const, call_id: callId, output: output.text }))),
      recordAborted: (callIds) => this.#record(...callIds.map(abortedOutput)),
      recordInput: (turnId, items) => this.#recordUserInput(turnId, items),
      accountUsage: (turnId, turn, usage) => {
        if (usage) {
          this.#totalUsage = addUsage(this.#totalUsage, usage);
          this.#tokensInUse = usage.total_tokens;
        }
        this.emit(turnId, this.#tokenCount(usage ?? emptyUsage(), turn.model));
      },
      rememberRateLimits: (snapshot) => {
        this.#rateLimits = snapshot;
      },
      reportFailure: (turnId, turn, failure) => this.#reportFailure(turnId, turn, failure),
      interruptAgents: () => void this.#agents.interruptAll(),
      review: (input, signal) => this.#tasks.review(input, signal),
      compact: (input, signal) => this.#tasks.compact(input, signal),
      undo: (input) => this.#tasks.undo(input),
      userShell: (input, signal) => this.#tasks.userShell(input, signal),
      rollback: (submissionId, numTurns) => this.#tasks.rollback(submissionId, numTurns),
      close: () => this.#close(),
    };
  }

  /** Turn contexts by turn id, so tool calls can find the context of the turn they belong to. */
  readonly #turnContexts = new Map<string, TurnContext>();
  /** Where the latest turn's items begin in the history (what a compaction during it keeps). */
  #turnStart: { turnId: string; index: number } | undefined;

  #recordUserInput(turnId: string, items: ResponseItem[]): void {
    this.#record(...items);
    for (const item of items) {
      if (item.type === 'message' && item.role === 'user') this.emit(turnId, { type: 'user_message', message: messageText(item) });
    }
  }

  #reportFailure(turnId: string, turn: TurnContext, failure: ModelFailure): void {
    this.emit(turnId, { type: 'error', code: failure.code, message: failure.message });
    if (failure.code === 'context_window_exceeded') {
      // Show the window as full, so a client can tell why nothing more fits.
      const window = this.#services.model.contextWindow(turn.model) ?? this.#totalUsage.total_tokens;
      const full: TokenUsage = { ...emptyUsage(), input_tokens: window, total_tokens: window };
      this.#totalUsage = { ...this.#totalUsage, total_tokens: Math.max(this.#totalUsage.total_tokens, window) };
      this.emit(turnId, this.#tokenCount(full, turn.model));
    }
  }

  /** One sampling attempt for `turn`, from the history as it is when the request goes out. */
  #sample(turn: TurnContext, attempt: number, sendBack: (event: TurnEvent) => void): () => void {
    return sample({
      model: this.#services.model,
      attempt,
      retryBaseMs: this.#services.retryBaseMs,
      flow: this.#services.flow,
      report: sendBack,
      emit: (msg) => this.emit(turn.turn_id, msg),
      prompt: (): Prompt => ({
        model: turn.model,
        instructions: turn.base_instructions,
        input: this.#history.forPrompt((detail) => log.warn({ session: this.id, detail }, 'history repaired before a request')),
        tools: this.#tools.specs(),
        parallel_tool_calls: true,
        effort: turn.effort,
        output_schema: turn.final_output_json_schema,
      }),
    });
  }

  #toolContext(input: ToolCallInput, signal: AbortSignal): ToolContext {
    const turn = this.#turnContexts.get(input.turnId);
    if (!turn) throw new Error(`no context for turn ${input.turnId}`);
    return this.#contextFor(input.callId, turn, signal);
  }

  #contextFor(callId: string, turn: TurnContext, signal: AbortSignal): ToolContext {
    const turnId = turn.turn_id;
    return {
      sessionId: this.id,
      callId,
      turn,
      signal,
      home: this.#services.home,
      flow: this.#services.flow,
      treeSlots: this.#agents.treeSlots,
      ...(this.#spec.purpose === 'session' ? { agents: this.#agents } : {}),
      resources: {
        get: <T extends SessionResource>(key: string, create: () => T): T => {
          let resource = this.#resources.get(key);
          if (!resource) {
            resource = create();
            this.#resources.set(key, resource);
          }
          return resource as T;
        },
      },
      emit: (msg) => this.emit(turnId, msg),
      trackChanges: async (changes, before) => {
        let tracker = this.#diffs.get(turnId);
        if (!tracker) {
          tracker = new TurnDiffTracker(turn.cwd);
          this.#diffs.set(turnId, tracker);
        }
        tracker.track(new Map(before), changes);
        this.emit(turnId, { type: 'turn_diff', unified_diff: await tracker.unifiedDiff() });
      },
    };
  }

  async #plan(input: ToolCallInput): Promise<ToolPlan> {
    const routed = this.#tools.route(input);
    if (!routed.ok) return { kind: 'reject', reason: routed.error };
    const { handler, args } = routed;
    if (!handler.plan) return { kind: 'run', sandboxed: true };
    return handler.plan(args, this.#toolContext(input, new AbortController().signal), this.#approvals);
  }

  async #execute(input: ToolCallInput & { sandboxed: boolean; userApproved: boolean }, signal: AbortSignal): Promise<ToolOutput> {
    const routed = this.#tools.route(input);
    if (!routed.ok) return { text: routed.error, success: false };
    return routed.handler.run(routed.args, this.#toolContext(input, signal), { sandboxed: input.sandboxed, userApproved: input.userApproved });
  }
}

/** Events that only stream what a later event carries whole; left out while a session's log is backed up. */
const STREAMING_DELTAS: ReadonlySet<EventMsg['type']> = new Set(['agent_message_delta', 'agent_reasoning_delta', 'exec_command_output_delta']);

function messageText(item: MessageItem): string {
  return item.content
    .map((c) => (c.type === 'input_text' || c.type === 'output_text' ? c.text : ''))
    .filter((t) => t !== '')
    .join('\n');
}
