import { stat } from 'node:fs/promises';
import type { BusMessage, PlaceMessage, ResponseItem, SessionConfig } from '../../protocol/index.js';
import { settingsFromConfig, type SessionSettings } from '../../machines/turn-context.js';
import { NoRespondersError, type Bus, type Subscription } from '../bus/bus.js';
import { subjects, type Subjects } from '../bus/subjects.js';
import { log } from '../log.js';
import type { ModelClient } from '../model/types.js';
import { BASE_INSTRUCTIONS } from '../prompts/base-instructions.js';
import {
  findRolloutBySessionId,
  forkHistory,
  historyFromRollout,
  listSessions,
  readRollout,
  RolloutRecorder,
  rolloutPath,
} from '../rollout/index.js';
import { ToolRegistry } from '../tools/registry.js';
import { agentTools } from '../agents/tools.js';
import { SessionRuntime } from './session-runtime.js';
import { SessionLogic } from './session-logic.js';
import { DEFAULT_AGENT_MAX_DEPTH, DEFAULT_AGENT_MAX_THREADS } from '../agents/supervisor.js';

export interface HostOptions {
  readonly bus: Bus;
  readonly namespace: string;
  /** Named in every `session_configured` this host sends: `local` in-process. */
  readonly workerId: string;
  /** TROUPE_HOME: rollouts live under it. */
  readonly home: string;
  readonly model: ModelClient;
  readonly tools: ToolRegistry;
  /** Defaults for what a session config leaves out. */
  readonly defaults: { readonly model: string; readonly cwd: string };
  readonly retryBaseMs?: number;
  /**
   * At most this many sessions at once (default: no limit). A host at capacity leaves the
   * placement group until one of its sessions ends.
   */
  readonly capacity?: number;
}

/** The queue group of hosts: a placement request goes to exactly one of them. */
export const HOSTS_QUEUE = 'troupe-hosts';

/**
 * A host holds one placement subscription per free slot, up to this many. The server picks a
 * queue member uniformly among subscriptions, so a host's chance of getting the next session
 * is proportional to its free room: load spreads towards emptier hosts, and a full host (no
 * subscription left) is never picked.
 */
export const MAX_PLACEMENT_WEIGHT = 16;

/** How long a full host waits for another host to take a placement it passes on. */
const FORWARD_TIMEOUT_MS = 5_000;

class PlacementError extends Error {
  override readonly name = 'PlacementError';
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
  readonly #sessions = new Map<string, { runtime: SessionRuntime; ops: Subscription }>();
  readonly #subscriptions: Subscription[] = [];
  /** This host's members of the placement queue group: one per free slot (see MAX_PLACEMENT_WEIGHT). */
  readonly #placementSlots: Subscription[] = [];
  /** Placements accepted but not yet running: they count against the capacity. */
  #reserved = 0;
  #draining = false;

  constructor(options: HostOptions) {
    this.#options = options;
    this.#subjects = subjects(options.namespace);
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  start(): void {
    const { bus } = this.#options;
    void this.#syncPlacement();
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
      void this.#sessions.get(reply.session_id)?.runtime.closed.then(() => this.#syncPlacement());
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
      const runtime = await this.#createRuntime(message);
      const ops = this.#options.bus.subscribe(this.#subjects.op(runtime.id), async (op, delivery) => {
        if (op.kind !== 'op') return;
        await delivery.respond?.({ kind: 'ack' });
        await runtime.submit(op.submission);
      });
      this.#sessions.set(runtime.id, { runtime, ops });
      void runtime.closed.then(async () => {
        this.#sessions.delete(runtime.id);
        await ops.unsubscribe();
      });
      runtime.start(message.submission_id);
      return { kind: 'placed', session_id: runtime.id, worker_id: this.#options.workerId, rollout_path: runtime.rolloutPath };
    } catch (error) {
      if (error instanceof PlacementError) return { kind: 'failure', code: 'bad_request', message: error.message };
      log.error({ err: error }, 'placing a session failed');
      return { kind: 'failure', code: 'internal', message: `could not start the session: ${(error as Error).message}` };
    }
  }

  async #createRuntime(message: PlaceMessage): Promise<SessionRuntime> {
    const { origin, lineage } = message;
    const purpose = message.purpose ?? 'session';
    const services = {
      bus: this.#options.bus,
      namespace: this.#options.namespace,
      workerId: this.#options.workerId,
      model: this.#options.model,
      // A review thread explores but starts no agents; a summarizer only writes.
      tools:
        purpose === 'session'
          ? this.#options.tools
          : purpose === 'review'
            ? this.#options.tools.without(agentTools.map((t) => t.name))
            : new ToolRegistry(),
      logic: this.#logic,
      retryBaseMs: this.#options.retryBaseMs ?? 200,
    };
    if (origin.type === 'resume') {
      const path = await this.#findRollout(origin);
      const rollout = await readRollout(path);
      const id = rollout.meta.session_id;
      if (this.#sessions.has(id)) throw new PlacementError(`session ${id} is already running`);
      for (const skipped of rollout.skipped) log.warn({ path, ...skipped }, 'skipped a damaged rollout line');
      const config = { ...rollout.meta.config, ...message.config };
      return new SessionRuntime(services, {
        sessionId: id,
        settings: await this.#settings(config),
        lineage,
        history: historyFromRollout(rollout.lines),
        rollout: await RolloutRecorder.open(path),
        fresh: false,
        agentLimits: agentLimits(config),
        approvals: message.approvals ?? [],
        mcpServers: config.mcp_servers,
        purpose,
      });
    }
    let history: ResponseItem[] = message.initial_history ?? [];
    let forkedFrom: string | null = null;
    let config: SessionConfig = message.config ?? {};
    if (origin.type === 'fork') {
      const source = await readRollout(await this.#findRollout(origin));
      history = forkHistory(historyFromRollout(source.lines), origin.nth_user_message);
      forkedFrom = source.meta.session_id;
      config = { ...source.meta.config, ...message.config };
    }
    const settings = await this.#settings(config);
    const createdAt = new Date();
    const recorder = await RolloutRecorder.create(rolloutPath(this.#options.home, message.session_id, createdAt), {
      session_id: message.session_id,
      created_at: createdAt.toISOString(),
      cwd: settings.cwd,
      model: settings.model,
      parent_session_id: lineage?.parent_session_id ?? null,
      depth: lineage?.depth ?? 0,
      config,
      forked_from: forkedFrom,
    });
    recorder.record(...history.map((payload) => ({ type: 'response_item' as const, payload })));
    return new SessionRuntime(services, {
      sessionId: message.session_id,
      settings,
      lineage,
      history,
      rollout: recorder,
      fresh: origin.type === 'new' && message.initial_history === undefined,
      agentLimits: agentLimits(config),
      approvals: message.approvals ?? [],
      mcpServers: config.mcp_servers,
      purpose,
    });
  }

  async #findRollout(ref: { rollout_path?: string | undefined; session_id?: string | undefined }): Promise<string> {
    if (ref.rollout_path !== undefined) return ref.rollout_path;
    const found = ref.session_id !== undefined ? await findRolloutBySessionId(this.#options.home, ref.session_id) : null;
    if (!found) throw new PlacementError(`no rollout found for session ${ref.session_id ?? '(none given)'}`);
    return found;
  }

  async #settings(config: SessionConfig): Promise<SessionSettings> {
    const settings = settingsFromConfig(config, { ...this.#options.defaults, base_instructions: BASE_INSTRUCTIONS });
    const info = await stat(settings.cwd).catch(() => null);
    if (!info?.isDirectory()) throw new PlacementError(`config.cwd: ${settings.cwd} is not a directory`);
    return settings;
  }
}

function agentLimits(config: SessionConfig): { maxDepth: number; maxThreads: number } {
  return {
    maxDepth: config.agent_max_depth ?? DEFAULT_AGENT_MAX_DEPTH,
    maxThreads: config.agent_max_threads ?? DEFAULT_AGENT_MAX_THREADS,
  };
}
