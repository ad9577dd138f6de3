import type { EventMsg } from '../../protocol/index.js';
import type { ToolCallInput, ToolRunInput } from '../../machines/tool-call.js';
import type { ToolOutput, ToolPlan } from '../../machines/tool-plan.js';
import type { TurnContext } from '../../machines/turn-context.js';
import type { ToolSpecJson } from '../../lib/model/types.js';
import type { AgentControl, ApprovalMemory, SessionResource, ToolContext, ToolHandler, TreeSlots } from '../tools/tool.js';
import type { ToolRegistry } from '../tools/registry.js';
import { TurnDiffTracker } from '../tools/patch/turn-diff.js';
import { truncateMiddle } from '../../lib/truncate.js';
import type { FlowSignal } from '../../lib/flow/flow-gate.js';
import { log } from '../../lib/log.js';
import type { AgentRole } from '../../protocol/index.js';
import { spawnAgentToolFor } from '../agents/tools.js';

export interface ToolGatewayOptions {
  readonly sessionId: string;
  /** The root session of this session's tree (the session itself at the root). */
  readonly rootId: string;
  /** The host's tools for this session's purpose; MCP tools are added on top (`useTools`). */
  readonly tools: ToolRegistry;
  /** What the tree has approved for the rest of the session. */
  readonly approvals: ApprovalMemory;
  readonly treeSlots: TreeSlots;
  /** The session's sub-agents, for the sub-agent tools; absent in sessions that may have none. */
  readonly agents: AgentControl | undefined;
  readonly home: string;
  readonly flow: FlowSignal;
  /** The roles this session's spawn_agent offers (its description lists them). */
  readonly roles?: Readonly<Record<string, AgentRole>> | undefined;
  /** Only these tools are offered (the session's role has an allow-list); absent: all. */
  readonly allowed?: ReadonlySet<string> | undefined;
  /** The context of turn `turnId`, while that turn is the session's latest. */
  turnContext(turnId: string): TurnContext | undefined;
  emit(id: string | null, msg: EventMsg): void;
}

/**
 * Where a session's tool calls meet its tools: the ToolCallMachine's `plan` and `execute` are
 * routed here to their handler, with a ToolContext built for the call. It also keeps what tools
 * hold beyond one call (PTY sessions, MCP servers) until the session closes, and each turn's
 * cumulative diff.
 */
export class ToolGateway {
  readonly #options: ToolGatewayOptions;
  #tools: ToolRegistry;
  /** What tools keep for the rest of the session; disposed when it closes. */
  readonly #resources = new Map<string, SessionResource>();
  readonly #diffs = new Map<string, TurnDiffTracker>();

  constructor(options: ToolGatewayOptions) {
    this.#options = options;
    this.#tools = this.#shaped(options.tools);
  }

  /** The session's own view of a registry: its roles in spawn_agent, its role's allow-list. */
  #shaped(tools: ToolRegistry): ToolRegistry {
    const { roles, allowed } = this.#options;
    let shaped = roles && tools.get('spawn_agent') ? tools.with(spawnAgentToolFor(roles)) : tools;
    if (allowed) shaped = shaped.only(allowed);
    return shaped;
  }

  /** What the model is offered in the next request. */
  specs(): readonly ToolSpecJson[] {
    return this.#tools.specs();
  }

  /** Offer the host's tools plus `extra` from now on (the session's MCP tools). */
  useTools(extra: Iterable<ToolHandler<unknown>>): void {
    this.#tools = this.#shaped(this.#options.tools.extend(extra));
  }

  /** Keep `resource` until the session closes. */
  hold(key: string, resource: SessionResource): void {
    this.#resources.set(key, resource);
  }

  /** A turn begins: the diffs of earlier turns are no longer needed. */
  beginTurn(): void {
    this.#diffs.clear();
  }

  async plan(input: ToolCallInput): Promise<ToolPlan> {
    const routed = this.#tools.route(input);
    if (!routed.ok) return { kind: 'reject', reason: routed.error };
    const { handler, args } = routed;
    if (!handler.plan) return { kind: 'run', sandboxed: true };
    return handler.plan(args, this.#callContext(input, new AbortController().signal), this.#options.approvals);
  }

  async execute(input: ToolRunInput, signal: AbortSignal): Promise<ToolOutput> {
    // A client tool ran at the client: its answer is the output, bounded like every tool's.
    if (input.answer) return { ...input.answer, text: truncateMiddle(input.answer.text) };
    const routed = this.#tools.route(input);
    if (!routed.ok) return { text: routed.error, success: false };
    return routed.handler.run(routed.args, this.#callContext(input, signal), {
      sandboxed: input.sandboxed,
      userApproved: input.userApproved,
      approvedKey: input.approvedKey,
    });
  }

  /** The context a tool runs in, for call `callId` of `turn` (also the user's own shell commands). */
  contextFor(callId: string, turn: TurnContext, signal: AbortSignal): ToolContext {
    const { sessionId, rootId, home, flow, treeSlots, agents, emit } = this.#options;
    const turnId = turn.turn_id;
    return {
      sessionId,
      rootSessionId: rootId,
      callId,
      turn,
      signal,
      home,
      flow,
      treeSlots,
      ...(agents ? { agents } : {}),
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
      emit: (msg) => emit(turnId, msg),
      trackChanges: async (changes, before) => {
        let tracker = this.#diffs.get(turnId);
        if (!tracker) {
          tracker = new TurnDiffTracker(turn.cwd);
          this.#diffs.set(turnId, tracker);
        }
        tracker.track(new Map(before), changes);
        emit(turnId, { type: 'turn_diff', unified_diff: await tracker.unifiedDiff() });
      },
    };
  }

  /** Dispose of what the tools kept (every process they started is killed). */
  async dispose(): Promise<void> {
    const resources = [...this.#resources.values()];
    this.#resources.clear();
    const results = await Promise.allSettled(resources.map(async (r) => r.dispose()));
    for (const result of results) {
      if (result.status === 'rejected') log.warn({ err: result.reason, session: this.#options.sessionId }, 'a session resource failed to close');
    }
  }

  #callContext(input: ToolCallInput, signal: AbortSignal): ToolContext {
    const turn = this.#options.turnContext(input.turnId);
    if (!turn) throw new Error(`no context for turn ${input.turnId}`);
    return this.contextFor(input.callId, turn, signal);
  }
}
