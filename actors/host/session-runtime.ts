import { randomUUID } from 'node:crypto';
import { createActor, type Actor } from 'xstate';
import type { EventMsg, ResponseItem, Submission } from '../../protocol/index.js';
import { AgentSupervisor } from '../agents/supervisor.js';
import { roleTools } from '../agents/roles.js';
import { TreeApprovals } from '../agents/tree-approvals.js';
import { attachJobs, type SessionJobs } from '../jobs/session.js';
import type { JobStrays } from '../jobs/runner.js';
import { startRequestedJob } from '../jobs/requested.js';
import { subjects } from '../../lib/bus/subjects.js';
import { inBackground, log } from '../../lib/log.js';
import { SessionObserver } from '../../lib/telemetry/observer.js';
import { developerMessage } from '../../lib/prompts/environment-context.js';
import { EventStream } from './event-stream.js';
import { applyOp, type OpTarget } from './op-translation.js';
import type { SessionLogic } from './session-logic.js';
import { SessionMcp } from './session-mcp.js';
import { sessionPort } from './session-port.js';
import type { SessionServices, SessionSpec } from './session-spec.js';
import { SessionState } from './session-state.js';
import { ToolGateway } from './tool-gateway.js';

/**
 * One live session: its SessionMachine actor, and the parts that do the work, bound to the
 * machines through the session's port (session-port.ts): the event stream (event-stream.ts),
 * the history and accounting (session-state.ts), the tools (tool-gateway.ts, session-mcp.ts),
 * the sub-agents and the tree's approvals (actors/agents), and the tasks (actors/tasks). Ops
 * are applied one at a time, in arrival order (op-translation.ts).
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
  readonly #actor: Actor<SessionLogic['machine']>;
  readonly #events: EventStream;
  readonly #state: SessionState;
  readonly #tools: ToolGateway;
  readonly #mcp: SessionMcp;
  readonly #approvals: TreeApprovals;
  readonly #agents: AgentSupervisor;
  readonly #observer: SessionObserver | null;
  /** The session's agent jobs (regular sessions only). */
  #jobs: SessionJobs | null = null;
  /** Where ops go: the statechart, or the event stream and MCP for the ops that stop short of it. */
  readonly #opTarget: OpTarget;
  /** Ops of this session are handled strictly in arrival order. */
  #opQueue: Promise<void> = Promise.resolve();

  constructor(services: SessionServices, spec: SessionSpec) {
    const { bus, namespace } = services;
    const id = spec.sessionId;
    const rootId = spec.lineage?.root_session_id ?? id;
    const depth = spec.lineage?.depth ?? 0;
    const facts = {
      sessionId: id,
      parentId: spec.lineage?.parent_session_id ?? null,
      depth,
      workerId: services.workerId,
      model: spec.settings.model,
      purpose: spec.purpose,
      traceparent: spec.traceparent,
    };
    // Watched only when someone looks: the log at info, or telemetry.
    const observer = spec.telemetry || log.isLevelEnabled('info') ? new SessionObserver(facts, spec.telemetry?.session(facts) ?? null) : null;
    const events = new EventStream({
      sessionId: id,
      subject: subjects(namespace).event(rootId, id),
      bus,
      rollout: spec.rollout,
      durability: spec.durability,
      initialSeq: spec.durability?.initialSeq ?? spec.initialSeq ?? 0,
      workerId: services.workerId,
      observe: observer ? (eventId, msg) => observer.event(eventId, msg) : undefined,
    });
    const emit = (eventId: string | null, msg: EventMsg) => events.emit(eventId, msg);
    const state = new SessionState({ history: spec.history, rollout: spec.rollout, model: services.model, emit });
    const approvals = new TreeApprovals(bus, namespace, rootId, spec.approvals, (key) => spec.durability?.recordApproval(key));
    const agents = new AgentSupervisor({
      bus,
      namespace,
      sessionId: id,
      rootId,
      depth,
      maxDepth: spec.agentLimits.maxDepth,
      maxThreads: spec.agentLimits.maxThreads,
      mcpServers: spec.mcpServers,
      emit,
      history: () => state.items(),
      approvals: () => approvals.snapshot(),
      isIdle: () => this.idle,
      notify: (item) => state.record(item),
      traceparent: observer ? (callId) => observer.traceparent(callId) : undefined,
    });
    const tools = new ToolGateway({
      sessionId: id,
      rootId,
      tools: services.tools,
      approvals,
      treeSlots: agents.treeSlots,
      agents: spec.purpose === 'session' ? agents : undefined,
      home: services.home,
      flow: services.flow,
      turnContext: (turnId) => state.turnContext(turnId),
      emit,
      roles: spec.settings.agent_roles,
      allowed: roleTools(spec.settings),
    });
    const plain = sessionPort({
      ...services,
      sessionId: id,
      rootId,
      depth,
      events,
      state,
      tools,
      approvals,
      agents,
      traceparent: observer ? (eventId) => observer.traceparent(eventId) : undefined,
      close: () => this.#close(),
    });
    const port = observer ? observer.wrap(plain) : plain;
    const hooks = {
      record: (item: ResponseItem) => state.record(item),
      rememberTurn: state.rememberTurn.bind(state),
      repeatable: (name: string) => services.tools.get(name)?.repeatable === true,
    };
    const unbind = services.logic.bind(id, spec.durability ? spec.durability.wrap(port, hooks) : port);
    const actor = createActor(services.logic.machine, { input: { sessionId: id, settings: spec.settings } });
    this.id = id;
    this.rootId = rootId;
    this.#services = services;
    this.#spec = spec;
    this.#actor = actor;
    this.#events = events;
    this.#state = state;
    this.#tools = tools;
    this.#approvals = approvals;
    this.#agents = agents;
    this.#mcp = new SessionMcp(tools, (msg) => emit(null, msg));
    this.#observer = observer;
    this.#opTarget = {
      send: (event) => actor.send(event),
      emit,
      mcp: this.#mcp,
      runJob: (submissionId, op) => startRequestedJob(this.#jobs, op, (msg) => emit(submissionId, msg)),
    };
    this.ended = new Promise<void>((resolve) => {
      const end = () => {
        unbind();
        observer?.end();
        resolve();
      };
      actor.subscribe({
        complete: end,
        error: (error) => {
          log.error({ err: error, session: id }, 'session actor failed');
          end();
        },
      });
    });
    // The rollout closes once the actor has ended, so `shutdown_complete`, its last event, is
    // in it too (and a resumed session numbers its events after that one).
    this.closed = this.ended.then(() =>
      spec.rollout.close().catch((error: unknown) => log.warn({ err: error, session: id }, 'the rollout did not close cleanly')),
    );
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
    const { settings, lineage, projectDocs: docs, fresh } = this.#spec;
    const state = this.#state;
    if (fresh && settings.developer_instructions) state.record(developerMessage(settings.developer_instructions));
    if (docs?.message) state.record(docs.message);
    if (fresh) state.announceEnvironment(settings);
    this.#approvals.start();
    this.#agents.start();
    this.#actor.start();
    const emit = (msg: EventMsg) => this.#events.emit(submissionId, msg);
    const adopted = this.#spec.durability?.adopted;
    if (adopted) {
      // The client saw session_configured long ago; this says where the session runs now.
      this.#events.emit(null, { type: 'background_event', message: `session moved to worker ${this.#services.workerId} after worker ${adopted.from} stopped` });
      if (adopted.turn) this.#actor.send({ type: 'TURN_INPUT', submissionId: adopted.turn.turnId, items: [], overrides: adopted.turn.overrides });
    } else
      emit({
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
        history_entries: state.length,
      });
    if (docs && docs.omittedBytes > 0) {
      emit({
        type: 'warning',
        message: `the project instructions (${docs.files.join(', ')}) are longer than project_doc_max_bytes: ${docs.omittedBytes} bytes were left out`,
      });
    }
    this.#mcp.start(this.#spec.mcpServers, settings.cwd);
    if (this.#spec.purpose === 'session') {
      this.#jobs = attachJobs({
        sessionId: this.id,
        home: this.#services.home,
        store: this.#services.jobStore,
        strays: this.#strayAgents(),
        shutdown: () => this.#shutDown(this.id),
        fresh,
        settings,
        toolContext: (callId, turn, signal) => this.#tools.contextFor(callId, turn, signal),
        record: (item) => state.record(item),
        idle: () => this.idle,
      });
    }
  }

  /**
   * On NATS, the agents a job's earlier runner started live on after its process stopped: a
   * runner that takes the job up watches them through their logs and shuts them down.
   */
  #strayAgents(): JobStrays | undefined {
    const activity = this.#services.sessionActivity;
    if (!activity) return undefined;
    const rootId = this.#spec.lineage?.root_session_id ?? this.id;
    return { activity: (agentId) => activity(rootId, agentId), close: (agentId) => this.#shutDown(agentId) };
  }

  /**
   * Ask a session (this one, or another on any worker) to shut down, with the op a client would
   * send; NATS queues it until its session runs.
   */
  async #shutDown(sessionId: string): Promise<void> {
    const { bus, namespace } = this.#services;
    const reply = await bus.request(
      subjects(namespace).op(sessionId),
      { kind: 'op', submission: { id: `close-${randomUUID()}`, session_id: sessionId, op: { type: 'shutdown' } } },
      { timeoutMs: 10_000 },
    );
    if (reply.kind === 'failure') throw new Error(reply.message);
  }

  /**
   * Stop running this session here without ending it (its lease went to another worker, or
   * this worker hands it over): the actor stops, which aborts its tool calls, and nothing more
   * is published. The session itself lives on from its log elsewhere.
   */
  abandon(): void {
    this.#events.stop();
    this.#actor.stop();
    this.#observer?.end();
    inBackground(this.#tools.dispose(), `disposing the tools of session ${this.id}`);
    void this.#spec.rollout.close().catch(() => undefined);
  }

  /** Hand an op to the session; ops are applied in the order they arrive. */
  submit(submission: Submission): Promise<void> {
    const next = this.#opQueue.then(() => {
      this.#observer?.op(submission);
      return applyOp(submission, this.#opTarget);
    });
    this.#opQueue = next.catch((error: unknown) => log.error({ err: error, session: this.id }, 'op failed'));
    return next;
  }

  /** Close the sub-agents (each closes its own first) and dispose what tools kept open; the rollout closes after. */
  async #close(): Promise<void> {
    await this.#mcp.ready;
    await this.#jobs?.dispose();
    await this.#agents.closeAll().catch((error: unknown) => log.warn({ err: error, session: this.id }, 'closing sub-agents failed'));
    await this.#approvals.stop();
    await this.#tools.dispose();
  }
}
