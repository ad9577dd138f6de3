import type { BusMessage, HomeConfig, PlaceMessage, ResponseItem, SessionConfig } from '../../protocol/index.js';
import { applyOverrides, settingsFromConfig, type SessionSettings } from '../../machines/turn-context.js';
import type { HostDurability, OpFeed, QueuedSubmission, SeenLease, SessionLog } from '../../lib/durable/index.js';
import { writeRolloutFile } from '../../lib/durable/rollout-file.js';
import { journaledRollout } from '../../lib/durable/session-durability.js';
import { BusClosedError, NoRespondersError, type Bus, type Subscription } from '../../lib/bus/bus.js';
import { subjects, type Subjects } from '../../lib/bus/subjects.js';
import { inBackground, log } from '../../lib/log.js';
import type { ModelClient } from '../../lib/model/types.js';
import { BASE_INSTRUCTIONS } from '../../lib/prompts/base-instructions.js';
import { isUserInstructions, projectDocsReader } from '../../lib/prompts/project-docs.js';
import {
  findRolloutBySessionId,
  forkHistory,
  historyFromRollout,
  lastSeqOf,
  listSessions,
  readRollout,
  RolloutError,
  RolloutRecorder,
  rolloutPath,
  type Rollout,
  type RolloutItem,
} from '../../lib/rollout/index.js';
import { ToolRegistry } from '../tools/registry.js';
import { ToolSetError, type ToolSets } from './tool-sets.js';
import { agentTools } from '../agents/tools.js';
import type { JobStore } from '../jobs/store.js';
import { jobTools } from '../jobs/tools.js';
import { isDirectory } from '../tools/child-process.js';
import { ALWAYS_OPEN, type FlowSignal } from '../../lib/flow/flow-gate.js';
import { SessionRuntime } from './session-runtime.js';
import { ClientToolError, withClientTools } from './client-tools.js';
import { startTelemetry } from '../../lib/telemetry/index.js';
import { homeConfigPath, HomeConfigError, loadHomeConfig, sessionDefaults } from './home-config.js';
import { SessionLogic } from './session-logic.js';
import { DEFAULT_AGENT_MAX_DEPTH, DEFAULT_AGENT_MAX_THREADS } from '../agents/supervisor.js';
import { readsProjectDocs, sessionRoles } from '../agents/roles.js';
import { TroupeError } from '../../protocol/index.js';

export interface HostOptions {
  readonly bus: Bus;
  readonly namespace: string;
  /** Named in every `session_configured` this host sends: `local` in-process. */
  readonly workerId: string;
  /** TROUPE_HOME: rollouts live under it. */
  readonly home: string;
  readonly model: ModelClient;
  /** The built-in tools and the developer's (every session's, and named tool sets). */
  readonly tools: ToolSets;
  /**
   * Defaults for what a session config leaves out: the working directory, and the model when
   * a flag or TROUPE_MODEL named one (it wins over the config file's).
   */
  readonly defaults: { readonly model?: string | undefined; readonly cwd: string };
  /** The profile of TROUPE_HOME/config.json whose settings are over the file's (--profile, TROUPE_PROFILE). */
  readonly profile?: string | undefined;
  /** The model when neither the session, the flags nor the config file name one. */
  readonly defaultModel: string;
  readonly retryBaseMs?: number;
  /**
   * At most this many sessions at once (default: no limit). A host at capacity leaves the
   * placement group until one of its sessions ends.
   */
  readonly capacity?: number;
  /** Closed while the reader of this host's events is behind (see FlowGate); default: always open. */
  readonly flow?: FlowSignal;
}

/** How long a worker handing its sessions over waits for their running tasks to end. */
export const HANDOVER_GRACE_MS = 10_000;

/** The queue group of hosts: a placement request goes to exactly one of them. */
export const HOSTS_QUEUE = 'troupe-hosts';

/**
 * A host holds one placement subscription per free slot, up to this many. The server picks a
 * queue member uniformly among subscriptions, so a host's chance of getting the next session
 * is proportional to its free room: load spreads towards emptier hosts, and a full host (no
 * subscription left) is never picked.
 */
export const MAX_PLACEMENT_WEIGHT = 16;

/** How long an op sent on a session's op subject may wait to be queued (NATS away). */
const OP_ENQUEUE_PATIENCE_MS = 10_000;

/** How long a full host waits for another host to take a placement it passes on. */
const FORWARD_TIMEOUT_MS = 5_000;

class PlacementError extends TroupeError {
  override readonly name = 'PlacementError';
  override readonly code = 'bad_request';
}

/**
 * A host owns session actors (a plain Map, DESIGN.md) and connects them to the bus: it answers
 * placement requests, gives each session its op subject, and lists the rollouts it can see.
 */
export class Host {
  readonly #options: HostOptions;
  /** One provided statechart for all the sessions of this host. */
  readonly #logic = new SessionLogic();
  readonly #subjects: Subjects;
  readonly #sessions = new Map<string, HostedSession>();
  /** On NATS: op queue, leases, session logs and adoption (null in-process). */
  #durability: HostDurability | null = null;
  #jobStore: JobStore | undefined;
  readonly #subscriptions: Subscription[] = [];
  /** This host's members of the placement queue group: one per free slot (see MAX_PLACEMENT_WEIGHT). */
  readonly #placementSlots: Subscription[] = [];
  /** Placements accepted but not yet running: they count against the capacity. */
  #reserved = 0;
  #draining = false;
  /** AGENTS.md files, read once for the sessions placed in the same turn of the event loop (a fan-out's sub-agents). */
  readonly #projectDocs = projectDocsReader();

  constructor(options: HostOptions) {
    this.#options = options;
    this.#subjects = subjects(options.namespace);
  }

  /**
   * Make this host's sessions durable (NATS): ops come from their JetStream queue, every
   * session holds a lease, its log is written to JetStream, and sessions of dead workers are
   * adopted. Call before `start`.
   */
  /** Keep agent jobs in `store` (JetStream on NATS) rather than under TROUPE_HOME, so any worker can go on with them. */
  useJobStore(store: JobStore): void {
    this.#jobStore = store;
  }

  useDurability(durability: HostDurability): void {
    this.#durability = durability;
    durability.onOverflow((sessionId) => inBackground(this.#moveOn(sessionId), `handing over session ${sessionId}`));
  }

  /**
   * A session whose lease went elsewhere: stop running it here, without ending it. What its log
   * had not stored yet is dropped: the new holder writes the log now.
   */
  abandon(sessionId: string): void {
    const hosted = this.#stopHere(sessionId);
    if (hosted?.log) {
      hosted.log.discard();
      this.#durability?.forget(hosted.log);
    }
  }

  /** Stop running a session here without ending it: its actor, op subscription and feed. */
  #stopHere(sessionId: string): HostedSession | undefined {
    const hosted = this.#sessions.get(sessionId);
    if (!hosted) return undefined;
    hosted.abandoned = true;
    this.#sessions.delete(sessionId);
    hosted.log?.seal();
    hosted.runtime.abandon();
    inBackground(hosted.ops.unsubscribe(), `unsubscribing the ops of session ${sessionId}`);
    if (hosted.feed) inBackground(hosted.feed.stop(), `stopping the op feed of session ${sessionId}`);
    inBackground(this.#syncPlacement(), 'joining or leaving the placement group');
    return hosted;
  }

  /** The tools of this host's sessions: load a tool set here for sessions that name it. */
  get toolSets(): ToolSets {
    return this.#options.tools;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  start(): void {
    const { bus } = this.#options;
    inBackground(this.#syncPlacement(), 'joining the placement group');
    this.#durability?.startAdopting({
      room: () => (this.#draining ? 0 : Math.max(0, this.capacity - this.load)),
      adopt: (lease) => this.#adopt(lease),
    });
    this.#subscriptions.push(
      bus.subscribe(
        this.#subjects.control('list'),
        async (message, delivery) => {
          if (message.kind !== 'list_sessions') return;
          await delivery.respond?.({ kind: 'session_list', sessions: await listSessions(this.#options.home) });
        },
        { queue: HOSTS_QUEUE },
      ),
    );
  }

  /** Shut every session down (each flushes its rollout), then stop listening. */
  async close(): Promise<void> {
    await this.drain();
    await Promise.all(
      [...this.#sessions.values()].map(async ({ runtime }) => {
        await runtime.submit({ id: 'host-shutdown', session_id: runtime.id, op: { type: 'shutdown' } });
        await runtime.closed;
      }),
    );
    await Promise.all(this.#subscriptions.splice(0).map((s) => s.unsubscribe()));
    this.#durability?.stop();
  }

  /**
   * Leave with the sessions still alive: stop taking sessions, let each finish its running task
   * (up to `graceMs`), then give its lease up so another worker adopts it from its log at once.
   * Without durability there is nothing to hand over and the sessions are shut down instead.
   */
  async handOver(graceMs = HANDOVER_GRACE_MS): Promise<void> {
    const durability = this.#durability;
    if (!durability) return this.close();
    await this.drain();
    await this.waitIdle(graceMs);
    await Promise.all([...this.#sessions.keys()].map((sessionId) => this.#handOverOne(sessionId)));
    durability.stop();
    await Promise.all(this.#subscriptions.splice(0).map((s) => s.unsubscribe()));
  }

  /** Resolves when no session here runs a task, or after `graceMs`. */
  async waitIdle(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...this.#sessions.values()].some(({ runtime }) => !runtime.idle)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * Stop a session here and give its lease up once its log has stored everything it holds:
   * the worker that adopts it rebuilds it from that log. While NATS is away this waits; a
   * worker that cannot wait (its shutdown is bounded) leaves the lease to expire instead.
   */
  async #handOverOne(sessionId: string): Promise<void> {
    const durability = this.#durability;
    const hosted = this.#stopHere(sessionId);
    if (!hosted || !durability) return;
    await hosted.log?.drained();
    await durability.leases.handOver(sessionId);
    if (hosted.log) durability.forget(hosted.log);
  }

  /**
   * A session whose log took no more events (NATS away for long, see SessionRuntime.emit): it
   * has stopped; it is handed over once its log is stored, and adopted from it (here or on
   * another worker), its open turn taken up where the log leaves it.
   */
  async #moveOn(sessionId: string): Promise<void> {
    log.error({ session: sessionId }, 'the session stopped here: its log was full; it is handed over once NATS has stored the log');
    await this.#handOverOne(sessionId);
  }

  /** Sessions running or being started here. */
  get load(): number {
    return this.#sessions.size + this.#reserved;
  }

  get capacity(): number {
    return this.#options.capacity ?? Number.POSITIVE_INFINITY;
  }

  /**
   * Stop taking sessions: leave the placement group (the server has dropped this host's
   * members when this resolves). Running sessions are left alone; `close` shuts them down.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    await this.#syncPlacement();
  }

  /**
   * Brings the number of placement subscriptions in line with the free room. Joining and
   * leaving happen at once (an unsubscribe is on the wire before anything this host sends
   * next); the promise resolves when the server has confirmed the leaving.
   */
  #syncPlacement(): Promise<void> {
    const free = this.#draining ? 0 : this.capacity - this.load;
    const want = Math.max(0, Math.min(free, Number.isFinite(this.capacity) ? MAX_PLACEMENT_WEIGHT : 1));
    while (this.#placementSlots.length < want) {
      this.#placementSlots.push(
        this.#options.bus.subscribe(
          this.#subjects.place(),
          async (message, delivery) => {
            if (message.kind !== 'place') return;
            await delivery.respond?.(await this.#admit(message));
          },
          { queue: HOSTS_QUEUE },
        ),
      );
    }
    return Promise.all(this.#placementSlots.splice(want).map((slot) => slot.unsubscribe())).then(() => undefined);
  }

  /**
   * Takes a placement if there is room. Leaving the group is awaited before the reply goes
   * out, so a client placing sessions one after another never reaches a host that just became
   * full. Placements that still arrive at a full or draining host (concurrent clients, or
   * the moment before the server saw it leave) are passed on to the group, which by then no
   * longer includes this host.
   */
  async #admit(message: PlaceMessage): Promise<BusMessage> {
    if (this.#draining || this.load >= this.capacity) return this.#forward(message);
    this.#reserved++;
    let reply: BusMessage;
    try {
      await this.#syncPlacement();
      reply = await this.#place(message);
    } finally {
      this.#reserved--;
    }
    if (reply.kind === 'placed') {
      const placed = this.#sessions.get(reply.session_id);
      if (placed)
        inBackground(
          placed.runtime.closed.then(() => this.#syncPlacement()),
          'joining the placement group',
        );
    }
    await this.#syncPlacement();
    return reply;
  }

  async #forward(message: PlaceMessage): Promise<BusMessage> {
    await this.#syncPlacement();
    try {
      return await this.#options.bus.request(this.#subjects.place(), message, { timeoutMs: FORWARD_TIMEOUT_MS });
    } catch (error) {
      const why = error instanceof NoRespondersError ? 'every worker is at capacity or draining' : (error as Error).message;
      return { kind: 'failure', code: 'unavailable', message: `no worker can take the session: ${why}` };
    }
  }

  async #place(message: PlaceMessage): Promise<BusMessage> {
    try {
      const { runtime, log: sessionLog, rolloutReady } = await this.#createRuntime(message);
      // A new session's rollout file is made after this callback (RolloutRecorder.create). One
      // with a first turn (a sub-agent) starts it first, so that the sessions placed with it
      // send their first requests before any file is made; one without has nothing to send,
      // and a file that cannot be made refuses it before it says anything.
      if (!message.first_turn) await rolloutReady;
      if (this.#durability && sessionLog) await this.#durability.leases.claim(runtime.id, runtime.rootId);
      const hosted = await this.#attach(runtime, sessionLog);
      runtime.start(message.submission_id);
      // The first turn, carried by the placement, is taken as an op on the session's subject
      // would be: the parent saves the round trip of submitting it once the session is placed.
      if (message.first_turn) {
        try {
          await hosted.take({ ...message.first_turn, session_id: runtime.id });
          // Whoever is told the session is placed can find its file.
          await rolloutReady;
        } catch (error) {
          // A session that could not be given its task is of no use to anyone: it ends, and the placement fails.
          await runtime.submit({ id: `${message.first_turn.id}-shutdown`, session_id: runtime.id, op: { type: 'shutdown' } }).catch(() => undefined);
          throw error;
        }
      }
      log.info(
        {
          session: runtime.id,
          worker: this.#options.workerId,
          origin: message.origin.type,
          purpose: message.purpose ?? 'session',
          parent: message.lineage?.parent_session_id,
          depth: message.lineage?.depth ?? 0,
        },
        'session placed',
      );
      return { kind: 'placed', session_id: runtime.id, worker_id: this.#options.workerId, rollout_path: runtime.rolloutPath };
    } catch (error) {
      if (error instanceof PlacementError) return { kind: 'failure', code: 'bad_request', message: error.message };
      // A placement that arrives while this host's bus closes: the process is going away.
      if (error instanceof BusClosedError) return { kind: 'failure', code: 'unavailable', message: 'the host is shutting down' };
      log.error({ err: error }, 'placing a session failed');
      return { kind: 'failure', code: 'internal', message: `could not start the session: ${(error as Error).message}` };
    }
  }

  /**
   * Connect a session to its ops and keep track of it until it closes. In-process, ops arrive
   * by request on the op subject. On NATS, that subject only queues them (so a sub-agent's
   * parent can keep using it), and the session takes them from its JetStream queue.
   */
  async #attach(runtime: SessionRuntime, sessionLog: SessionLog | null, applied?: ReadonlySet<string>): Promise<HostedSession> {
    const durability = sessionLog ? this.#durability : null;
    const ops = this.#options.bus.subscribe(this.#subjects.op(runtime.id), async (op, delivery) => {
      if (op.kind !== 'op') return;
      try {
        await hosted.take(op.submission);
        await delivery.respond?.({ kind: 'ack' });
      } catch (error) {
        await delivery.respond?.({ kind: 'failure', code: 'internal', message: (error as Error).message });
      }
    });
    const hosted: HostedSession = {
      runtime,
      ops,
      feed: null,
      abandoned: false,
      log: sessionLog,
      take: durability
        ? // The requester waits for the answer only so long; an op queued later would surprise it.
          (submission) => durability.ops.enqueue(submission, AbortSignal.timeout(OP_ENQUEUE_PATIENCE_MS))
        : async (submission) => inBackground(runtime.submit(submission), `applying op ${submission.id} of session ${runtime.id}`),
    };
    this.#sessions.set(runtime.id, hosted);
    if (durability && sessionLog) hosted.feed = await durability.feed(runtime, sessionLog, applied);
    // An ended session takes no more ops: from then on they are answered as for an unknown one.
    inBackground(
      runtime.ended.then(async () => {
        if (hosted.abandoned) return;
        this.#sessions.delete(runtime.id);
        await ops.unsubscribe();
      }),
      `unsubscribing the ops of ended session ${runtime.id}`,
    );
    const closing = runtime.closed.then(async () => {
      if (hosted.abandoned) return;
      if (durability && sessionLog) {
        sessionLog.append({ type: 'closed' });
        await hosted.feed?.stop();
        await durability.ops.remove(runtime.id);
        await durability.leases.release(runtime.id);
        await sessionLog.drained();
        durability.forget(sessionLog);
      }
    });
    inBackground(closing, `cleaning up after closed session ${runtime.id}`);
    return hosted;
  }

  /**
   * Run a session whose worker stopped, from its log: history, settings and event numbering
   * as they were, the open turn taken up again (see durable/session-durability.ts).
   */
  async #adopt(lease: SeenLease): Promise<void> {
    const durability = this.#durability;
    if (!durability) return;
    const id = lease.sessionId;
    const rootId = lease.value.root_id;
    const rebuilt = await durability.rebuild(rootId, id);
    if (rebuilt.closed) {
      await durability.leases.release(id);
      return;
    }
    const { meta } = rebuilt;
    const homeConfig = await this.#homeConfig();
    let settings = this.#settings(meta.config, homeConfig);
    for (const overrides of rebuilt.overrides) settings = applyOverrides(settings, overrides);
    const path = rolloutPath(this.#options.home, id, new Date(meta.created_at));
    await writeRolloutFile(path, meta, rebuilt.lines);
    const sessionLog = durability.sessionLog(rootId, id);
    const rollout = journaledRollout(await RolloutRecorder.open(path), sessionLog);
    if (rebuilt.historyCut) {
      // The open round leaves the history here; what is replayed is recorded again after this.
      rollout.record({ type: 'compacted', payload: { message: 'taken over after a worker stopped', replacement_history: [...rebuilt.history] } });
    }
    const servers = mcpServers(meta.config, homeConfig);
    const runtime = new SessionRuntime(this.#services(rebuilt.purpose, meta.config, servers), {
      sessionId: id,
      settings,
      lineage: meta.parent_session_id ? { parent_session_id: meta.parent_session_id, root_session_id: rootId, depth: meta.depth } : null,
      history: rebuilt.history,
      rollout,
      fresh: false,
      agentLimits: agentLimits(meta.config),
      approvals: rebuilt.approvals,
      mcpServers: servers,
      purpose: rebuilt.purpose,
      durability: durability.forAdopted(sessionLog, rebuilt, lease.value.worker_id),
      telemetry: await startTelemetry(homeConfig.otel),
    });
    await this.#attach(runtime, sessionLog, rebuilt.appliedOps);
    runtime.start('adopted');
    await this.#syncPlacement();
  }

  #services(purpose: 'session' | 'review' | 'compact', config: SessionConfig, servers: SessionConfig['mcp_servers']) {
    const durability = this.#durability;
    return {
      bus: this.#options.bus,
      namespace: this.#options.namespace,
      workerId: this.#options.workerId,
      model: this.#options.model,
      tools: this.#tools(purpose, config, servers),
      logic: this.#logic,
      home: this.#options.home,
      retryBaseMs: this.#options.retryBaseMs ?? 200,
      flow: this.#options.flow ?? ALWAYS_OPEN,
      jobStore: this.#jobStore,
      sessionActivity: durability ? (rootId: string, sessionId: string) => durability.activity(rootId, sessionId) : undefined,
    };
  }

  /**
   * A session's tools. A review thread explores with the built-ins but starts no agents and
   * calls none of the developer's tools (its role is fixed); a summarizer only writes.
   */
  #tools(purpose: 'session' | 'review' | 'compact', config: SessionConfig, servers: SessionConfig['mcp_servers']): ToolRegistry {
    const sets = this.#options.tools;
    if (purpose === 'review') return sets.builtins.without([...agentTools, ...jobTools].map((t) => t.name));
    if (purpose === 'compact') return new ToolRegistry();
    const serverNames = Object.keys(servers ?? {});
    try {
      // The client's tools last: their names are checked against every other tool of the session.
      return withClientTools(sets.forSession(config, serverNames), config.client_tools, serverNames, sets.builtins);
    } catch (error) {
      if (error instanceof ToolSetError || error instanceof ClientToolError) throw new PlacementError(error.message);
      throw error;
    }
  }

  async #createRuntime(message: PlaceMessage): Promise<{ runtime: SessionRuntime; log: SessionLog | null; rolloutReady: Promise<void> }> {
    const { origin, lineage } = message;
    const purpose = message.purpose ?? 'session';
    const durability = this.#durability;
    const rootId = lineage?.root_session_id ?? null;
    if (origin.type === 'resume') {
      const path = await this.#findRollout(origin);
      const rollout = await this.#readOrigin(path);
      const id = rollout.meta.session_id;
      if (this.#sessions.has(id)) throw new PlacementError(`session ${id} is already running`);
      for (const skipped of rollout.skipped) log.warn({ path, ...skipped }, 'skipped a damaged rollout line');
      const config = { ...rollout.meta.config, ...message.config };
      const homeConfig = await this.#homeConfig();
      const settings = this.#settings(config, homeConfig);
      const servers = mcpServers(config, homeConfig);
      const services = this.#services(purpose, config, servers);
      let sessionLog: SessionLog | null = null;
      let initialSeq = lastSeqOf(rollout.lines);
      if (durability) {
        sessionLog = durability.sessionLog(rootId ?? id, id);
        // A session that ran on NATS before continues its numbering; one that never did
        // gets its log from the file.
        const known = await durability.rebuild(rootId ?? id, id).catch(() => null);
        if (known) initialSeq = Math.max(initialSeq, known.lastSeq);
        else
          journaledRollout({ path, record: () => undefined, close: async () => undefined }, sessionLog, rollout.meta).record(
            ...(rollout.lines.filter((l) => l.type !== 'session_meta') as RolloutItem[]),
          );
      }
      const recorder = await RolloutRecorder.open(path);
      return {
        log: sessionLog,
        rolloutReady: recorder.ready,
        runtime: new SessionRuntime(services, {
          sessionId: id,
          settings,
          lineage,
          history: historyFromRollout(rollout.lines),
          rollout: sessionLog ? journaledRollout(recorder, sessionLog) : recorder,
          ...(durability && sessionLog ? { durability: durability.forSession(sessionLog, { purpose, approvals: message.approvals ?? [] }, initialSeq) } : {}),
          initialSeq,
          fresh: false,
          agentLimits: agentLimits(config),
          approvals: message.approvals ?? [],
          mcpServers: servers,
          purpose,
          telemetry: await startTelemetry(homeConfig.otel),
          traceparent: message.traceparent,
        }),
      };
    }
    let history: ResponseItem[] = message.initial_history ?? [];
    let forkedFrom: string | null = null;
    let config: SessionConfig = message.config ?? {};
    if (origin.type === 'fork') {
      const source = await this.#readOrigin(await this.#findRollout(origin));
      history = forkHistory(historyFromRollout(source.lines), origin.nth_user_message);
      forkedFrom = source.meta.session_id;
      config = { ...source.meta.config, ...message.config };
    }
    const homeConfig = await this.#homeConfig();
    const settings = this.#settings(config, homeConfig);
    const servers = mcpServers(config, homeConfig);
    const services = this.#services(purpose, config, servers);
    // New sessions and reviewers read the project's AGENTS.md; a history that already holds
    // them (a fork, a sub-agent with its parent's context) and a summarizer do not.
    const projectDocs =
      purpose === 'compact' || history.some(isUserInstructions) || !readsProjectDocs(settings)
        ? null
        : this.#projectDocs(settings.cwd, this.#options.home, config.project_doc_max_bytes ?? homeConfig.project_doc_max_bytes);
    const createdAt = new Date();
    const meta = {
      session_id: message.session_id,
      created_at: createdAt.toISOString(),
      cwd: settings.cwd,
      model: settings.model,
      parent_session_id: lineage?.parent_session_id ?? null,
      depth: lineage?.depth ?? 0,
      // What the config file gave is recorded too: a resume keeps the policies it was created with.
      config: { ...config, ...pinnedDefaults(settings) },
      forked_from: forkedFrom,
    };
    const recorder = RolloutRecorder.create(rolloutPath(this.#options.home, message.session_id, createdAt), meta);
    const sessionLog = durability ? durability.sessionLog(rootId ?? message.session_id, message.session_id) : null;
    const rollout = sessionLog ? journaledRollout(recorder, sessionLog, meta) : recorder;
    rollout.record(...history.map((payload) => ({ type: 'response_item' as const, payload })));
    const runtime = new SessionRuntime(services, {
      sessionId: message.session_id,
      settings,
      lineage,
      history,
      rollout,
      ...(durability && sessionLog ? { durability: durability.forSession(sessionLog, { purpose, approvals: message.approvals ?? [] }) } : {}),
      fresh: origin.type === 'new' && message.initial_history === undefined,
      projectDocs,
      agentLimits: agentLimits(config),
      approvals: message.approvals ?? [],
      mcpServers: servers,
      purpose,
      telemetry: await startTelemetry(homeConfig.otel),
      traceparent: message.traceparent,
    });
    return { runtime, log: sessionLog, rolloutReady: recorder.ready };
  }

  /** The rollout a resume or fork names: one that cannot be read (missing, damaged, not a regular file) refuses the op. */
  async #readOrigin(path: string): Promise<Rollout> {
    try {
      return await readRollout(path);
    } catch (error) {
      if (error instanceof RolloutError) throw new PlacementError(error.message, { cause: error });
      throw error;
    }
  }

  async #findRollout(ref: { rollout_path?: string | undefined; session_id?: string | undefined }): Promise<string> {
    if (ref.rollout_path !== undefined) return ref.rollout_path;
    const found = ref.session_id !== undefined ? await findRolloutBySessionId(this.#options.home, ref.session_id) : null;
    if (!found) throw new PlacementError(`no rollout found for session ${ref.session_id ?? '(none given)'}`);
    return found;
  }

  /**
   * TROUPE_HOME/config.json with the host's profile applied over its top level; one that does
   * not validate, or a profile it does not have, refuses the session, naming file and key.
   */
  async #homeConfig(): Promise<HomeConfig> {
    try {
      const home = loadHomeConfig(this.#options.home);
      return { ...home, ...sessionDefaults(home, homeConfigPath(this.#options.home), this.#options.profile) };
    } catch (error) {
      if (error instanceof HomeConfigError) throw new PlacementError(error.message);
      throw error;
    }
  }

  /**
   * The settings of a session: its config, then the flags' model, then the config file's
   * defaults (profile first). A `shell_environment_policy` of its own replaces the home's whole.
   */
  #settings(config: SessionConfig, home: HomeConfig): SessionSettings {
    const settings = settingsFromConfig(config, {
      model: this.#options.defaults.model ?? home.model ?? this.#options.defaultModel,
      cwd: this.#options.defaults.cwd,
      base_instructions: BASE_INSTRUCTIONS,
      approval_policy: home.approval_policy,
      sandbox_policy: home.sandbox_policy,
      effort: home.reasoning_effort,
      reasoning_summary: home.reasoning_summary,
      shell_environment_policy: home.shell_environment_policy,
      agent_roles: sessionRoles(home.agent_roles, config.agent_roles),
    });
    if (!isDirectory(settings.cwd)) throw new PlacementError(`config.cwd: ${settings.cwd} is not a directory`);
    return settings;
  }
}

interface HostedSession {
  readonly runtime: SessionRuntime;
  readonly ops: Subscription;
  /**
   * Take an op for the session: in-process it joins the session's ops, applied in order; on
   * NATS it is queued in JetStream (resolving once stored), and the session's feed applies it.
   */
  readonly take: (submission: QueuedSubmission) => Promise<void>;
  /** On NATS: the session's feed from its op queue. */
  feed: OpFeed | null;
  /** Set when the session went to another worker: its end here is not the session's end. */
  abandoned: boolean;
  /** On NATS: the session's log, where its events and records go. */
  readonly log: SessionLog | null;
}

/** The session's MCP servers: those of TROUPE_HOME/config.json, then the session's own. */
function mcpServers(config: SessionConfig, home: HomeConfig): SessionConfig['mcp_servers'] {
  const servers = { ...home.mcp_servers, ...config.mcp_servers };
  return Object.keys(servers).length > 0 ? servers : undefined;
}

/** The policies and reasoning settings a session was created with, as a config spells them. */
function pinnedDefaults(settings: SessionSettings): SessionConfig {
  return {
    approval_policy: settings.approval_policy,
    sandbox_policy: settings.sandbox_policy,
    ...(settings.effort !== undefined ? { effort: settings.effort } : {}),
    ...(settings.reasoning_summary !== undefined ? { reasoning_summary: settings.reasoning_summary } : {}),
  };
}

function agentLimits(config: SessionConfig): { maxDepth: number; maxThreads: number } {
  return {
    maxDepth: config.agent_max_depth ?? DEFAULT_AGENT_MAX_DEPTH,
    maxThreads: config.agent_max_threads ?? DEFAULT_AGENT_MAX_THREADS,
  };
}
