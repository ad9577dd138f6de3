import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { ErrorCode, Event, EventMsg, EventOf, Op, SessionConfig, SessionOp, SessionSummary, UserInput } from '../protocol/index.js';
import { AsyncQueue } from '../lib/async-queue.js';
import { FlowGate, type FlowSignal } from '../lib/flow/flow-gate.js';
import type { Bus } from '../lib/bus/bus.js';
import { InProcessBus } from '../lib/bus/in-process.js';
import { DEFAULT_NAMESPACE } from '../lib/bus/subjects.js';
import type { GatewayDurability } from '../lib/durable/gateway-durability.js';
import { Gateway } from './gateway/gateway.js';
import { homeConfigPath, loadHomeConfig, sessionDefaults } from './host/home-config.js';
import { Host } from './host/host.js';
import { createModelClient } from '../lib/model/index.js';
import type { ModelClient } from '../lib/model/types.js';
import { troupeHome } from '../lib/rollout/index.js';
import { gatewayBusOptions } from './gateway-options.js';
import type { NatsFlagValues } from '../lib/nats/settings.js';
import { sessionTools } from './host/session-tools.js';
import { LIBRARY_SET_PREFIX, ToolSets } from './host/tool-sets.js';
import type { Tool } from './tools/user-tool.js';
import { runTurn, type RunOptions, type RunResult } from './run.js';
import { flushTelemetry } from '../lib/telemetry/index.js';
import { TroupeError } from '../protocol/index.js';

/** The model used when neither the session, a flag, TROUPE_MODEL nor the config file names one. */
export const DEFAULT_MODEL = 'gpt-5-codex';

export interface RuntimeOptions {
  /** Default model of new sessions (default: TROUPE_MODEL, then the config file's, then DEFAULT_MODEL). */
  readonly model?: string | undefined;
  /** `responses` (default, or TROUPE_WIRE_API, or the config file's `wire_api`) or `chat` for providers without the Responses API. */
  readonly wireApi?: 'responses' | 'chat' | undefined;
  /** The profile of TROUPE_HOME/config.json new sessions take their defaults from (default: TROUPE_PROFILE). */
  readonly profile?: string | undefined;
  /** Default: OPENAI_API_KEY. */
  readonly apiKey?: string | undefined;
  /** Any OpenAI-compatible endpoint (default: OPENAI_BASE_URL, then the OpenAI API). */
  readonly baseURL?: string | undefined;
  /** Where rollouts live (default: TROUPE_HOME, then ~/.troupe). */
  readonly home?: string | undefined;
  /** Default working directory of new sessions (default: process.cwd()). */
  readonly cwd?: string | undefined;
  /** Context window of every model, overriding the known-model table (TROUPE_MODEL_CONTEXT_WINDOW). */
  readonly contextWindow?: number | null | undefined;
  /** Base delay of the model retry backoff in ms (TROUPE_RETRY_BASE_MS, default 200). */
  readonly retryBaseMs?: number | undefined;
  /** A model stream silent this long fails and is retried (TROUPE_STREAM_IDLE_TIMEOUT_MS, default 300000). */
  readonly idleTimeoutMs?: number | undefined;
  /** Use this model client instead of building one from the options above. */
  readonly modelClient?: ModelClient | undefined;
  /**
   * Be a gateway on this bus (a NatsBus): sessions are placed on the workers behind it and
   * this process hosts none, so the model options above go unused. The runtime closes the bus
   * when it closes. Default: an in-process bus with a host of its own.
   */
  readonly bus?: Bus | undefined;
  /** The subject namespace on the bus (default `default`). */
  readonly namespace?: string | undefined;
  /**
   * With `bus`: opens the gateway's JetStream side, so ops wait in each session's queue and
   * events are read from its log (nothing lost across a broker restart or a failover).
   * `gatewayBusOptions` returns it with the bus; without it the gateway uses the bus alone.
   */
  readonly gatewayDurability?: (() => Promise<GatewayDurability>) | undefined;
  /**
   * Tools of yours (`tool()`) that every session of this runtime gets, beside the built-ins.
   * In-process only: on NATS, tools are loaded where sessions run (`troupe worker --tools`).
   */
  readonly tools?: readonly Tool[] | undefined;
}

/** What a library session is opened with besides its config. */
export interface OpenOptions {
  /** Tools of this session and its sub-agents only (in-process runtimes). */
  readonly tools?: readonly Tool[] | undefined;
}

/** Options from the environment (PROTOCOL.md §2), overridden by what the caller sets. */
export function runtimeOptionsFromEnv(env: NodeJS.ProcessEnv, overrides: RuntimeOptions = {}): RuntimeOptions {
  const number = (name: string): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new TroupeError(`${name} must be a non-negative number, got "${raw}"`, { code: 'bad_request' });
    return value;
  };
  const wire = env.TROUPE_WIRE_API;
  if (wire !== undefined && wire !== 'responses' && wire !== 'chat') {
    throw new TroupeError(`TROUPE_WIRE_API must be "responses" or "chat", got "${wire}"`, { code: 'bad_request' });
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) as RuntimeOptions;
  return {
    model: env.TROUPE_MODEL || undefined,
    wireApi: wire,
    profile: env.TROUPE_PROFILE || undefined,
    apiKey: env.OPENAI_API_KEY || undefined,
    baseURL: env.OPENAI_BASE_URL || undefined,
    home: troupeHome(env),
    contextWindow: number('TROUPE_MODEL_CONTEXT_WINDOW'),
    retryBaseMs: number('TROUPE_RETRY_BASE_MS'),
    idleTimeoutMs: number('TROUPE_STREAM_IDLE_TIMEOUT_MS'),
    ...defined,
  };
}

/**
 * troupe refused a request of the library (a session it could not open): its error event's
 * message and code (`internal` when the answer was no error event at all).
 */
export class SessionError extends TroupeError {
  override readonly name = 'SessionError';
  constructor(message: string, code: ErrorCode) {
    super(message, { code });
  }
}

/** A session of a Runtime, seen from the library. */
export interface Session {
  readonly id: string;
  readonly configured: EventOf<'session_configured'>;
  /** Submit an op to this session; resolves to the submission id its events will carry. */
  submit(op: SessionOp, id?: string): Promise<string>;
  /**
   * This session's events from its creation on, in order; ends after `shutdown_complete`.
   * Every call reads the same stream: an event is delivered to one reader.
   */
  events(): AsyncIterableIterator<Event>;
  /**
   * Run one turn and resolve when it ends, to its final message, its items, its token usage
   * and, with `options.output`, the model's answer parsed and validated by that schema.
   * Rejects with a RunError when the turn fails or is aborted, and with an
   * OutputValidationError when the answer does not match the schema after one repair request.
   */
  run<S extends z.ZodType | undefined = undefined>(input: string | readonly UserInput[], options?: RunOptions<S>): Promise<RunResult<OutputOf<S>>>;
  /** Shut the session down and wait for `shutdown_complete`. */
  shutdown(): Promise<void>;
}

/** The type of a run's `output`: what the schema parses to, or undefined without one. */
export type OutputOf<S> = S extends z.ZodType ? z.output<S> : undefined;

/** A one-shot run (`Runtime.run`): the session's config, its tools, and the run's options. */
export interface OneShotRun<S extends z.ZodType | undefined = undefined> extends SessionConfig, RunOptions<S> {
  readonly prompt: string | readonly UserInput[];
  /** Tools of this run's session and its sub-agents. */
  readonly tools?: readonly Tool[] | undefined;
}

/**
 * troupe in this process: an in-process bus, one host that owns the sessions, and a gateway in
 * front. The stdio app-server, `troupe exec` and library users all drive this object.
 */
export class Runtime {
  readonly bus: Bus;
  /** The host of this process's sessions; null for a gateway (`options.bus`). */
  readonly host: Host | null;
  readonly gateway: Gateway;
  /** The subject namespace on the bus (where a gateway's sessions, and their jobs, live). */
  readonly namespace: string;
  /**
   * Held by whatever delivers this runtime's events while its reader is behind (the stdio
   * servers hold it while stdout is full): model streams then wait, and command output
   * deltas are skipped. A library user may hold it too; every hold needs its release.
   */
  readonly flow = new FlowGate();
  readonly #listeners = new Set<(event: Event) => void>();
  /** Streams of the sessions made by `newSession`, buffered from their first event. */
  readonly #sessionQueues = new Map<string, AsyncQueue<Event>>();
  /** Submission ids of `newSession` calls whose session is not configured yet. */
  readonly #pendingSessions = new Set<string>();
  /** Tool sets loaded for one library session, dropped when it shuts down. */
  readonly #sessionToolSets = new Map<string, string>();

  constructor(options: RuntimeOptions = {}) {
    const namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.namespace = namespace;
    if (options.bus && options.tools?.length) {
      throw new Error('tools run where the sessions run: on NATS, load them into the workers (troupe worker --tools FILE) and name their set in tool_sets');
    }
    if (options.bus) {
      this.bus = options.bus;
      this.host = null;
    } else {
      this.bus = new InProcessBus();
      this.host = createHost(this.bus, options, { namespace }, this.flow);
    }
    this.gateway = new Gateway({
      bus: this.bus,
      namespace,
      onEvent: (event) => this.#dispatch(event),
      flow: this.flow,
      durability: options.bus ? options.gatewayDurability : undefined,
    });
    this.host?.start();
    this.gateway.start();
  }

  /** Call `listener` with every event of every session (and the gateway's own errors). */
  onEvent(listener: (event: Event) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Submit a submission: anything, validated first as a `Submission` (problems come back as `error` events). */
  submit(submission: unknown): Promise<void> {
    return this.gateway.submitRaw(submission);
  }

  /**
   * Start a session and wait until it is configured; rejects with the error troupe reported.
   * `options.tools` are offered to this session and its sub-agents only.
   */
  newSession(config: SessionConfig = {}, options: OpenOptions = {}): Promise<Session> {
    return this.#open({ type: 'new_session', config }, options.tools);
  }

  /**
   * Take a session up again from its rollout (by id, or by the rollout's path), with `config`
   * merged over the one it was created with; rejects with the error troupe reported. A
   * session that had tools of its own needs them again in `options.tools`.
   */
  resumeSession(
    target: { readonly session_id: string } | { readonly rollout_path: string },
    config?: SessionConfig,
    options: OpenOptions = {},
  ): Promise<Session> {
    return this.#open({ type: 'resume_session', ...target, ...(config ? { config } : {}) }, options.tools);
  }

  /** The sessions whose rollouts the hosts can see, newest first. */
  async listSessions(): Promise<SessionSummary[]> {
    const id = `list-${randomUUID()}`;
    const outcome = this.#answerTo(id, ['session_list', 'error']);
    await this.gateway.submit({ id, op: { type: 'list_sessions' } });
    const msg = (await outcome).msg;
    if (msg.type !== 'session_list')
      throw new SessionError(msg.type === 'error' ? msg.message : 'no session list', msg.type === 'error' ? msg.code : 'internal');
    return msg.sessions;
  }

  /** Open a session, run one turn in it (see Session.run), and shut it down whatever happened. */
  async run<S extends z.ZodType | undefined = undefined>(request: OneShotRun<S>): Promise<RunResult<OutputOf<S>>> {
    const { prompt, tools, output, signal, onApproval, ...config } = request;
    const session = await this.newSession(config, { tools });
    try {
      return await session.run(prompt, { output, signal, onApproval });
    } finally {
      await session.shutdown();
    }
  }

  /** The first event answering submission `id` with one of `types`. */
  #answerTo(id: string, types: readonly EventMsg['type'][]): Promise<Event> {
    return new Promise((resolve) => {
      const stop = this.onEvent((event) => {
        if (event.id !== id || !types.includes(event.msg.type)) return;
        stop();
        resolve(event);
      });
    });
  }

  async #open(op: Extract<Op, { type: 'new_session' | 'resume_session' }>, tools: readonly Tool[] | undefined): Promise<Session> {
    const id = `${op.type === 'new_session' ? 'new' : 'resume'}-${randomUUID()}`;
    const toolSet = tools?.length ? this.#loadSessionTools(tools) : null;
    if (toolSet !== null) op = { ...op, config: { ...op.config, tool_sets: [...(op.config?.tool_sets ?? []).filter(isNotLibrarySet), toolSet] } };
    this.#pendingSessions.add(id);
    const outcome = this.#answerTo(id, ['session_configured', 'error']);
    await this.gateway.submit({ id, op });
    const event = await outcome;
    this.#pendingSessions.delete(id);
    if (event.msg.type !== 'session_configured') {
      if (toolSet !== null) this.host?.toolSets.remove(toolSet);
      throw new SessionError(event.msg.type === 'error' ? event.msg.message : 'no session', event.msg.type === 'error' ? event.msg.code : 'internal');
    }
    if (toolSet !== null) this.#sessionToolSets.set(event.msg.session_id, toolSet);
    return this.#session(event.msg);
  }

  /** Load a library session's own tools as a tool set of this runtime's host; its name. */
  #loadSessionTools(tools: readonly Tool[]): string {
    if (!this.host)
      throw new Error('tools run where the sessions run: on NATS, load them into the workers (troupe worker --tools FILE) and name their set in tool_sets');
    const name = `${LIBRARY_SET_PREFIX}${randomUUID()}`;
    this.host.toolSets.add(name, tools);
    return name;
  }

  /** Shut down every session (rollouts flushed), then stop. */
  async close(): Promise<void> {
    await this.gateway.shutdownAll();
    await this.host?.close();
    await this.gateway.close();
    await this.bus.close();
    // What this process's sessions traced goes out before the caller exits.
    await flushTelemetry();
    for (const queue of this.#sessionQueues.values()) queue.end();
  }

  #session(configured: EventOf<'session_configured'>): Session {
    const sessionId = configured.session_id;
    const queue = this.#sessionQueues.get(sessionId);
    if (!queue) throw new Error(`no event stream for session ${sessionId}`);
    const gateway = this.gateway;
    const submit = async (op: SessionOp, id: string = randomUUID()): Promise<string> => {
      await gateway.submit({ id, session_id: sessionId, op });
      return id;
    };
    let running = false;
    return {
      id: sessionId,
      configured,
      submit,
      run: async <S extends z.ZodType | undefined = undefined>(input: string | readonly UserInput[], options: RunOptions<S> = {}) => {
        if (running) throw new Error(`session ${sessionId} is already running a turn for run(); wait for it to end`);
        running = true;
        try {
          return await runTurn<S>({ sessionId, onEvent: (listener) => this.onEvent(listener), submit }, input, options);
        } finally {
          running = false;
        }
      },
      // Leaving a for-await loop early must not end the stream for the next reader.
      events: () => ({
        next: () => queue.next(),
        [Symbol.asyncIterator]() {
          return this;
        },
      }),
      shutdown: async () => {
        // Its `shutdown_complete` has come already (its own job shut it down): nothing to wait for.
        if (!this.#sessionQueues.has(sessionId)) return;
        const id = randomUUID();
        const done = new Promise<void>((resolve, reject) => {
          const stop = this.onEvent((event) => {
            const { msg } = event;
            if (event.session_id === sessionId && msg.type === 'shutdown_complete') {
              stop();
              resolve();
            } else if (event.id === id && msg.type === 'error') {
              stop();
              // Shut down already (by its own job, or another client): there is nothing to wait for.
              if (msg.code === 'unknown_session') resolve();
              else reject(new SessionError(`could not shut session ${sessionId} down: ${msg.message}`, msg.code));
            }
          });
        });
        await gateway.submit({ id, session_id: sessionId, op: { type: 'shutdown' } });
        await done;
      },
    };
  }

  #dispatch(event: Event): void {
    if (event.session_id !== null) {
      if (event.msg.type === 'session_configured' && event.id !== null && this.#pendingSessions.has(event.id)) {
        this.#sessionQueues.set(event.session_id, new AsyncQueue<Event>());
      }
      const queue = this.#sessionQueues.get(event.session_id);
      queue?.push(event);
      if (queue && event.msg.type === 'shutdown_complete') {
        queue.end();
        this.#sessionQueues.delete(event.session_id);
      }
      const toolSet = event.msg.type === 'shutdown_complete' ? this.#sessionToolSets.get(event.session_id) : undefined;
      if (toolSet !== undefined) {
        this.host?.toolSets.remove(toolSet);
        this.#sessionToolSets.delete(event.session_id);
      }
    }
    for (const listener of [...this.#listeners]) listener(event);
  }
}

const isNotLibrarySet = (name: string): boolean => !name.startsWith(LIBRARY_SET_PREFIX);

/** Where a host sits: its namespace, the id it reports, how many sessions it takes. */
export interface HostPlacement {
  readonly namespace?: string | undefined;
  /** Named in `session_configured` (default `local`). */
  readonly workerId?: string | undefined;
  /** Default: no limit. */
  readonly capacity?: number | undefined;
}

/**
 * A host on `bus` built from runtime options (model client, tools, defaults): what a Runtime
 * makes for itself in-process and what `troupe worker` runs on NATS. Not started. Its sessions
 * produce events only while `flow` is open (default: always).
 */
export function createHost(bus: Bus, options: RuntimeOptions, placement: HostPlacement = {}, flow?: FlowSignal): Host {
  const home = options.home ?? troupeHome();
  const model =
    options.modelClient ??
    createModelClient({
      // The model client is built once: the config file's wire_api is read now, not per session.
      wireApi: options.wireApi ?? sessionDefaults(loadHomeConfig(home), homeConfigPath(home), options.profile).wire_api ?? 'responses',
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      idleTimeoutMs: options.idleTimeoutMs,
      ...(options.contextWindow !== undefined ? { contextWindow: options.contextWindow } : {}),
    });
  return new Host({
    bus,
    namespace: placement.namespace ?? DEFAULT_NAMESPACE,
    workerId: placement.workerId ?? 'local',
    home,
    model,
    tools: new ToolSets(sessionTools(), options.tools),
    defaults: { model: options.model, cwd: options.cwd ?? process.cwd() },
    profile: options.profile,
    defaultModel: DEFAULT_MODEL,
    retryBaseMs: options.retryBaseMs ?? 200,
    ...(placement.capacity !== undefined ? { capacity: placement.capacity } : {}),
    ...(flow !== undefined ? { flow } : {}),
  });
}

/** Where `connectRuntime` finds the cluster; unset fields come from TROUPE_NATS_* as for the CLI. */
export interface ClusterOptions extends NatsFlagValues {
  /** NATS server URL(s), comma-separated (default: TROUPE_NATS_URL). */
  readonly nats?: string | undefined;
  /** The cluster's subject namespace (default: TROUPE_NAMESPACE, then `default`). */
  readonly namespace?: string | undefined;
}

/**
 * troupe as a gateway on NATS: sessions are placed on the cluster's workers (`troupe worker`),
 * with ops queued and events read from JetStream when the server has it. The tools of its
 * sessions are the workers' (`tool_sets`), so `options.tools` is refused.
 */
export async function connectRuntime(cluster: ClusterOptions, options: Omit<RuntimeOptions, 'bus' | 'namespace' | 'gatewayDurability'> = {}): Promise<Runtime> {
  const gateway = await gatewayBusOptions(cluster, process.env, 'troupe library');
  if (!gateway.bus) throw new Error('connectRuntime needs a NATS URL: pass nats, or set TROUPE_NATS_URL');
  return createRuntime({ ...options, ...gateway });
}

/** Start troupe in this process (in-process bus, one host). */
export function createRuntime(options: RuntimeOptions = {}): Runtime {
  return new Runtime(runtimeOptionsFromEnv(process.env, options));
}
