import { randomUUID } from 'node:crypto';
import type {
  AgentInfo,
  AgentStatus,
  Event,
  EventMsg,
  EventType,
  McpServerConfig,
  ResponseItem,
  SessionConfig,
  SessionOp,
  TreePool,
} from '../../protocol/index.js';
import { shellEnvironmentPolicyConfig, type TurnContext } from '../../machines/turn-context.js';
import { NoRespondersError, RequestTimeoutError, type Bus, type Subscription } from '../../lib/bus/bus.js';
import { subjects, type Subjects } from '../../lib/bus/subjects.js';
import { inBackground, log } from '../../lib/log.js';
import type { AgentControl, AgentReport, ToolContext, TreeSlots } from '../tools/tool.js';
import { nickname } from './nicknames.js';
import { roleConfig, RoleError } from './roles.js';
import { TroupeError } from '../../protocol/index.js';

export const DEFAULT_AGENT_MAX_DEPTH = 2;
export const DEFAULT_AGENT_MAX_THREADS = 8;
export const DEFAULT_TREE_EXEC_SESSIONS = 16;

/** Raised for a request the model made that cannot be honoured; its message is the tool output. */
export class AgentError extends TroupeError {
  override readonly name = 'AgentError';
  override readonly code = 'bad_request';
}

export interface SupervisorOptions {
  readonly bus: Bus;
  readonly namespace: string;
  readonly sessionId: string;
  readonly rootId: string;
  readonly depth: number;
  readonly maxDepth: number;
  readonly maxThreads: number;
  /** Live exec_command programs in the whole tree (default DEFAULT_TREE_EXEC_SESSIONS). */
  readonly maxExecSessions?: number | undefined;
  /** The parent's MCP servers: its sub-agents get the same ones. */
  readonly mcpServers?: Readonly<Record<string, McpServerConfig>> | undefined;
  /** Emit on this (the parent) session's stream. */
  emit(id: string | null, msg: EventMsg): void;
  /** The parent's history, for `fork_context`. */
  history(): readonly ResponseItem[];
  /** Approvals granted in the tree so far, inherited by a new child. */
  approvals(): string[];
  /** True when the parent runs no turn: a finished child is then noted in its history. */
  isIdle(): boolean;
  /** Record the notice of a finished child in the parent's history. */
  notify(item: ResponseItem): void;
  /** The W3C traceparent of call `callId`'s span, sent with the child's placement (telemetry on only). */
  readonly traceparent?: ((callId: string) => string | undefined) | undefined;
  /** Waiting for a host to take a placement or an op. */
  readonly requestTimeoutMs?: number;
}

interface Child {
  readonly id: string;
  readonly nickname: string;
  /** The spawn call: events about this child carry its id. */
  readonly callId: string;
  readonly role: string | null;
  readonly depth: number;
  status: AgentStatus;
  message: string | null;
  /** An error reported during the child's current turn; the turn then ends as `errored`. */
  turnError: string | null;
  /**
   * Whether the parent's stream has had `agent_spawned`. The child starts its turn as it is
   * placed, so its first events can come before the placement's reply: until then its status
   * is kept, and every status it went through, told in order once it is announced.
   */
  announced: boolean;
  unannounced: Array<{ status: AgentStatus; message: string | null }>;
  events: Subscription | null;
  readonly closed: Promise<void>;
  markClosed(): void;
}

const FINISHED: ReadonlySet<AgentStatus> = new Set(['completed', 'errored', 'interrupted', 'shutdown']);
/**
 * The events of a child its supervisor acts on (#onChildEvent). Only these are handed over by
 * the bus: a child's deltas, items and tool calls are skipped before they are parsed.
 */
const CHILD_EVENTS: ReadonlySet<EventType> = new Set<EventType>(['task_started', 'error', 'task_complete', 'turn_aborted', 'shutdown_complete']);
const CLOSE_TIMEOUT_MS = 30_000;

/**
 * The sub-agents of one session. A child is a full session placed through the bus like any
 * other, so it may live on another worker; the supervisor knows it only through its events
 * (subscribed before it is placed, so none is missed) and reaches it only with ops. The tree's
 * thread limit is kept by the root session and asked for over the bus.
 */
export class AgentSupervisor implements AgentControl {
  readonly #options: SupervisorOptions;
  readonly #subjects: Subjects;
  readonly #children = new Map<string, Child>();
  readonly #waiters = new Set<() => void>();
  #spawned = 0;
  /** At the root only: the tree's slots in use, by pool. */
  readonly #open: Record<TreePool, number> = { agents: 0, exec: 0 };
  /** The tree's limits, shared by all its sessions: taken from and given back to the root. */
  readonly treeSlots: TreeSlots = {
    acquire: (pool) => this.#acquireSlot(pool),
    release: (pool) => this.#releaseSlot(pool),
  };
  #slots: Subscription | null = null;
  /** At the root only: every live sub-agent of the tree, wherever it runs (list_agents). */
  readonly #tree = new Map<string, AgentInfo>();
  #registry: Subscription | null = null;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#subjects = subjects(options.namespace);
  }

  get #isRoot(): boolean {
    return this.#options.rootId === this.#options.sessionId;
  }

  /** At the root: serve the tree's thread slots to every descendant, wherever it runs. */
  start(): void {
    if (!this.#isRoot) return;
    this.#registry = this.#options.bus.subscribe(this.#subjects.treeControl(this.#options.rootId, 'agents'), async (message, delivery) => {
      if (message.kind === 'agent_update') this.#record(message.agent);
      else if (message.kind === 'agent_list') await delivery.respond?.({ kind: 'agent_list_reply', agents: [...this.#tree.values()] });
    });
    this.#slots = this.#options.bus.subscribe(this.#subjects.treeControl(this.#options.rootId, 'slots'), async (message, delivery) => {
      if (message.kind !== 'agent_slot') return;
      if (message.action === 'release') {
        this.#release(message.pool);
        return;
      }
      const granted = this.#acquire(message.pool);
      await delivery.respond?.({ kind: 'agent_slot_reply', granted, open: this.#open[message.pool], limit: this.#limit(message.pool) });
    });
  }

  async spawn(
    request: { message: string; agentType?: string | undefined; forkContext: boolean; model?: string | undefined },
    ctx: ToolContext,
  ): Promise<AgentReport> {
    const { maxDepth, maxThreads } = this.#options;
    const depth = this.#options.depth + 1;
    if (depth > maxDepth) {
      throw new AgentError(`cannot spawn: agent_max_depth is ${maxDepth} and this agent is already at depth ${this.#options.depth}`);
    }
    let role: ReturnType<typeof roleConfig> | null = null;
    try {
      role = request.agentType !== undefined ? roleConfig(ctx.turn, request.agentType) : null;
    } catch (error) {
      if (error instanceof RoleError) throw new AgentError(`cannot spawn: ${error.message}`);
      throw error;
    }
    if (!(await this.#acquireSlot('agents'))) {
      throw new AgentError(`cannot spawn: agent_max_threads is ${maxThreads} and that many agents are already open in this session tree; close one first`);
    }
    const id = randomUUID();
    let markClosed!: () => void;
    const closed = new Promise<void>((resolve) => (markClosed = resolve));
    const child: Child = {
      id,
      nickname: nickname(this.#spawned++),
      callId: ctx.callId,
      role: role?.agent_role ?? null,
      depth,
      status: 'pending_init',
      message: null,
      turnError: null,
      announced: false,
      unannounced: [],
      events: null,
      closed,
      markClosed,
    };
    this.#children.set(id, child);
    // The tree lists it from now on: a sibling's first turn (or its own) may look before the
    // placement is answered, since a child starts on its task as it is placed.
    this.#report(child);
    // Subscribe before the child exists, so its first event cannot be missed.
    child.events = this.#options.bus.subscribe(
      this.#subjects.event(this.#options.rootId, id),
      (message) => {
        if (message.kind === 'event') this.#onChildEvent(child, message.event);
      },
      { eventTypes: CHILD_EVENTS },
    );
    const traceparent = this.#options.traceparent?.(ctx.callId);
    try {
      const reply = await this.#options.bus.request(
        this.#subjects.place(),
        {
          kind: 'place',
          submission_id: ctx.callId,
          session_id: id,
          config: {
            ...childConfig(ctx.turn, role, request.model, maxDepth, maxThreads),
            ...(this.#options.mcpServers ? { mcp_servers: { ...this.#options.mcpServers } } : {}),
          },
          lineage: { parent_session_id: this.#options.sessionId, root_session_id: this.#options.rootId, depth },
          origin: { type: 'new' },
          ...(request.forkContext ? { initial_history: [...this.#options.history()] } : {}),
          approvals: this.#options.approvals(),
          // The task travels with the placement: the child starts on it as it is placed.
          first_turn: { id: `${ctx.callId}-task`, op: { type: 'user_turn', items: [{ type: 'text', text: request.message }] } },
          ...(traceparent ? { traceparent } : {}),
        },
        { timeoutMs: this.#timeout },
      );
      if (reply.kind !== 'placed') throw new AgentError(reply.kind === 'failure' ? reply.message : `unexpected reply ${reply.kind}`);
    } catch (error) {
      if (this.#placedAfterAll(child, error)) {
        // The answer was lost, not the child: the host that placed it died before it could
        // answer, and the child goes on there or where its session is adopted. Failing the call
        // would leave it running with nobody to wait for it, close it or take its result.
        log.warn({ agent: id, err: error }, 'the placement of a sub-agent went unanswered, but its events show it runs; keeping it');
      } else {
        await this.#forgetUnplaced(child);
        throw error instanceof AgentError ? error : new AgentError(`cannot spawn: ${describe(error)}`);
      }
    }
    this.#options.emit(ctx.callId, {
      type: 'agent_spawned',
      call_id: ctx.callId,
      agent_id: id,
      parent_session_id: this.#options.sessionId,
      depth,
      nickname: child.nickname,
      ...(role ? { role: role.agent_role } : {}),
      prompt: request.message,
    });
    this.#options.emit(ctx.callId, { type: 'agent_status', agent_id: id, status: 'pending_init' });
    child.announced = true;
    // The child may have started (or even finished) its turn before the placement's reply came.
    const early = child.unannounced.splice(0);
    for (const { status, message } of early) this.#setStatus(child, status, message);
    return report(child);
  }

  /**
   * Whether a placement that failed with `error` placed the child all the same: no answer came
   * in time, but events of the child did (it started its task), and it has not shut down.
   */
  #placedAfterAll(child: Child, error: unknown): boolean {
    return error instanceof RequestTimeoutError && child.unannounced.length > 0 && child.status !== 'shutdown';
  }

  /** Undo what spawn did for a child that was not placed: the tree's listing, the subscription, the slot. */
  async #forgetUnplaced(child: Child): Promise<void> {
    this.#children.delete(child.id);
    // A child that was placed but could not take its task has shut down, and given its slot back.
    const gone = child.status === 'shutdown';
    if (!gone) {
      child.status = 'shutdown';
      this.#report(child);
    }
    await child.events?.unsubscribe();
    if (!gone) this.#releaseSlot('agents');
  }

  async sendInput(agentId: string, message: string, interrupt: boolean): Promise<AgentReport> {
    const child = this.#openChild(agentId);
    if (interrupt) await this.#submit(child.id, `input-${randomUUID()}`, { type: 'interrupt' });
    await this.#submit(child.id, `input-${randomUUID()}`, { type: 'user_input', items: [{ type: 'text', text: message }] });
    return report(child);
  }

  async wait(
    agentIds: readonly string[],
    options: { returnWhen: 'all' | 'any'; timeoutMs: number; signal: AbortSignal },
  ): Promise<{ agents: AgentReport[]; timed_out: boolean }> {
    const children = agentIds.map((id) => {
      const child = this.#children.get(id);
      if (!child) throw new AgentError(`unknown agent ${id}; this session's agents: ${[...this.#children.keys()].join(', ') || 'none'}`);
      return child;
    });
    const done = () => (options.returnWhen === 'all' ? children.every((c) => FINISHED.has(c.status)) : children.some((c) => FINISHED.has(c.status)));
    let timedOut = false;
    if (!done()) {
      await new Promise<void>((resolve) => {
        const finish = () => {
          clearTimeout(timer);
          this.#waiters.delete(check);
          options.signal.removeEventListener('abort', finish);
          resolve();
        };
        const check = () => {
          if (done()) finish();
        };
        const timer = setTimeout(() => {
          timedOut = true;
          finish();
        }, options.timeoutMs);
        this.#waiters.add(check);
        options.signal.addEventListener('abort', finish, { once: true });
      });
    }
    return { agents: children.map(report), timed_out: timedOut };
  }

  /** The live sub-agents of the whole tree (kept by its root), those whose id starts with `idPrefix` when given. */
  async list(idPrefix?: string): Promise<AgentInfo[]> {
    let agents: AgentInfo[];
    if (this.#isRoot) agents = [...this.#tree.values()];
    else {
      const reply = await this.#options.bus.request(
        this.#subjects.treeControl(this.#options.rootId, 'agents'),
        { kind: 'agent_list' },
        { timeoutMs: this.#timeout },
      );
      if (reply.kind !== 'agent_list_reply') throw new AgentError(reply.kind === 'failure' ? reply.message : 'the root of this tree did not list its agents');
      agents = reply.agents;
    }
    return idPrefix === undefined ? agents : agents.filter((a) => a.agent_id.startsWith(idPrefix));
  }

  async close(agentId: string): Promise<AgentReport> {
    const child = this.#children.get(agentId);
    if (!child) throw new AgentError(`unknown agent ${agentId}`);
    await this.#close(child);
    return report(child);
  }

  /** Interrupt every child that is working (a parent's interrupt cascades down the tree). */
  async interruptAll(): Promise<void> {
    await Promise.all(
      [...this.#children.values()]
        .filter((c) => c.status === 'running' || c.status === 'pending_init')
        .map((c) =>
          this.#submit(c.id, `cascade-${randomUUID()}`, { type: 'interrupt' }).catch((error: unknown) => {
            // A child that no longer takes ops has already ended: nothing to interrupt.
            if (!(error instanceof NoRespondersError)) log.warn({ err: error, agent: c.id }, 'could not interrupt a sub-agent');
          }),
        ),
    );
  }

  /** Close every child (each closes its own descendants first), then stop serving the tree. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#children.values()].map((c) => this.#close(c)));
    await this.#slots?.unsubscribe();
    this.#slots = null;
    await this.#registry?.unsubscribe();
    this.#registry = null;
  }

  async #close(child: Child): Promise<void> {
    if (child.status === 'shutdown') return;
    try {
      await this.#submit(child.id, `close-${randomUUID()}`, { type: 'shutdown' });
    } catch (error) {
      if (!(error instanceof NoRespondersError)) throw error;
      // The child is already gone: treat it as closed.
      this.#onChildEvent(child, { id: null, session_id: child.id, seq: null, msg: { type: 'shutdown_complete' } });
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([child.closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }

  #openChild(agentId: string): Child {
    const child = this.#children.get(agentId);
    if (!child) throw new AgentError(`unknown agent ${agentId}`);
    if (child.status === 'shutdown') throw new AgentError(`agent ${agentId} is closed`);
    return child;
  }

  #onChildEvent(child: Child, event: Event): void {
    const msg = event.msg;
    switch (msg.type) {
      case 'task_started':
        child.turnError = null;
        this.#setStatus(child, 'running', null);
        break;
      case 'error':
        child.turnError = msg.message;
        break;
      case 'task_complete':
        if (child.turnError !== null) this.#setStatus(child, 'errored', child.turnError);
        else this.#setStatus(child, 'completed', msg.last_agent_message);
        break;
      case 'turn_aborted':
        this.#setStatus(child, 'interrupted', null);
        break;
      case 'shutdown_complete':
        this.#setStatus(child, 'shutdown', child.message);
        if (child.events) inBackground(child.events.unsubscribe(), `unsubscribing from the events of agent ${child.id}`);
        child.events = null;
        this.#releaseSlot('agents');
        child.markClosed();
        break;
      default:
        break;
    }
  }

  #setStatus(child: Child, status: AgentStatus, message: string | null): void {
    child.status = status;
    child.message = message;
    this.#report(child);
    if (!child.announced) {
      child.unannounced.push({ status, message });
      return;
    }
    this.#options.emit(child.callId, { type: 'agent_status', agent_id: child.id, status, ...(message !== null ? { message } : {}) });
    if ((status === 'completed' || status === 'errored') && this.#options.isIdle()) {
      this.#options.notify(notification(child));
    }
    for (const wake of [...this.#waiters]) wake();
  }

  /** Tell the tree's root how a child is (itself, at the root). */
  #report(child: Child): void {
    const agent: AgentInfo = {
      agent_id: child.id,
      nickname: child.nickname,
      role: child.role,
      status: child.status,
      depth: child.depth,
      parent_session_id: this.#options.sessionId,
    };
    if (this.#isRoot) {
      this.#record(agent);
      return;
    }
    this.#options.bus
      .publish(this.#subjects.treeControl(this.#options.rootId, 'agents'), { kind: 'agent_update', agent })
      .catch((error: unknown) => log.warn({ err: error, agent: child.id }, 'could not tell the root of the tree about a sub-agent'));
  }

  /** At the root: a closed agent leaves the list. */
  #record(agent: AgentInfo): void {
    if (agent.status === 'shutdown') this.#tree.delete(agent.agent_id);
    else this.#tree.set(agent.agent_id, agent);
  }

  async #submit(agentId: string, id: string, op: SessionOp): Promise<void> {
    const reply = await this.#options.bus.request(
      this.#subjects.op(agentId),
      { kind: 'op', submission: { id, session_id: agentId, op } },
      { timeoutMs: this.#timeout },
    );
    if (reply.kind === 'failure') throw new AgentError(reply.message);
  }

  async #acquireSlot(pool: TreePool): Promise<boolean> {
    if (this.#isRoot) return this.#acquire(pool);
    const reply = await this.#options.bus.request(
      this.#subjects.treeControl(this.#options.rootId, 'slots'),
      { kind: 'agent_slot', action: 'acquire', pool, agent_id: this.#options.sessionId },
      { timeoutMs: this.#timeout },
    );
    return reply.kind === 'agent_slot_reply' && reply.granted;
  }

  #releaseSlot(pool: TreePool): void {
    if (this.#isRoot) {
      this.#release(pool);
      return;
    }
    this.#options.bus
      .publish(this.#subjects.treeControl(this.#options.rootId, 'slots'), { kind: 'agent_slot', action: 'release', pool, agent_id: this.#options.sessionId })
      .catch((error: unknown) => log.warn({ err: error }, 'could not release a sub-agent slot'));
  }

  #acquire(pool: TreePool): boolean {
    if (this.#open[pool] >= this.#limit(pool)) return false;
    this.#open[pool]++;
    return true;
  }

  #release(pool: TreePool): void {
    this.#open[pool] = Math.max(0, this.#open[pool] - 1);
  }

  #limit(pool: TreePool): number {
    return pool === 'agents' ? this.#options.maxThreads : (this.#options.maxExecSessions ?? DEFAULT_TREE_EXEC_SESSIONS);
  }

  get #timeout(): number {
    return this.#options.requestTimeoutMs ?? 10_000;
  }
}

/** What a child inherits from the turn that spawned it, with its role's changes, and the model the call asked for. */
function childConfig(
  turn: TurnContext,
  role: ReturnType<typeof roleConfig> | null,
  model: string | undefined,
  maxDepth: number,
  maxThreads: number,
): SessionConfig {
  return {
    model: model ?? role?.model ?? turn.model,
    cwd: turn.cwd,
    approval_policy: turn.approval_policy,
    sandbox_policy: turn.sandbox_policy,
    base_instructions: turn.base_instructions,
    ...(turn.effort ? { effort: turn.effort } : {}),
    ...(turn.reasoning_summary ? { reasoning_summary: turn.reasoning_summary } : {}),
    agent_max_depth: maxDepth,
    agent_max_threads: maxThreads,
    // The parent's policy as it resolved it (its own, or its home's): the child's host does not
    // look at its own TROUPE_HOME for it.
    shell_environment_policy: shellEnvironmentPolicyConfig(turn.shell_environment_policy),
    ...(turn.tool_sets?.length ? { tool_sets: [...turn.tool_sets] } : {}),
    // The roles as the parent resolved them: the child's host does not look at its own home for them.
    ...(turn.agent_roles ? { agent_roles: { ...turn.agent_roles } } : {}),
    ...(role
      ? {
          agent_role: role.agent_role,
          developer_instructions: role.developer_instructions,
          ...(role.sandbox_policy ? { sandbox_policy: role.sandbox_policy } : {}),
          ...(role.approval_policy ? { approval_policy: role.approval_policy } : {}),
        }
      : {}),
  };
}

function report(child: Child): AgentReport {
  return { agent_id: child.id, nickname: child.nickname, status: child.status, message: child.message };
}

/** The note a parent's history gets when a child finishes while the parent is idle. */
function notification(child: Child): ResponseItem {
  const outcome = child.status === 'errored' ? `failed: ${child.message ?? 'unknown error'}` : `finished: ${child.message ?? '(no message)'}`;
  return {
    type: 'message',
    role: 'user',
    content: [{ type: 'input_text', text: `<subagent_notification>\nAgent ${child.nickname} (${child.id}) ${outcome}\n</subagent_notification>` }],
  };
}

function describe(error: unknown): string {
  if (error instanceof NoRespondersError) return 'no host is available to run the agent';
  return error instanceof Error ? error.message : String(error);
}
