/**
 * Tools a developer writes in TypeScript (`tool()` from `troupe`). Each becomes a ToolHandler,
 * so it goes the same way as the built-ins: the ToolCallMachine plans it (asking first when it
 * needs approval), runs it, and the session's events show it. It runs in the host's process,
 * outside the sandbox: it is the developer's own code, not the model's.
 */
import { z } from 'zod';
import type { AskForApproval, SandboxPolicyObject } from '../../protocol/index.js';
import type { ToolOutput } from '../../machines/tool-plan.js';
import { planApproval, type ApprovalNeed } from './orchestrator.js';
import type { ToolContext, ToolHandler } from './tool.js';
import { TroupeError } from '../../protocol/index.js';

/** A value that survives JSON: what a tool may return or report as progress. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** The object schema of a tool's arguments. */
export type ToolParameters = z.ZodObject;

/** What a tool's `execute` is given besides its arguments. */
export interface ToolRunContext {
  readonly sessionId: string;
  readonly callId: string;
  /** The turn the call belongs to. */
  readonly turn: {
    readonly id: string;
    readonly cwd: string;
    readonly model: string;
    readonly approvalPolicy: AskForApproval;
    readonly sandboxPolicy: SandboxPolicyObject;
  };
  /** Aborted when the turn is interrupted: stop, and undo what is half done. */
  readonly signal: AbortSignal;
  /** Tell the session's clients how the call is going (a `tool_call_progress` event). */
  progress(update: JsonValue): void;
}

export type NeedsApproval<P extends ToolParameters> = boolean | ((args: z.output<P>, ctx: ToolRunContext) => boolean | Promise<boolean>);

export interface ToolDefinition<P extends ToolParameters> {
  /** What the model calls it: 1 to 64 letters, digits, `_` or `-`; not a built-in tool's name. */
  readonly name: string;
  /** What the model reads to decide when to call it. */
  readonly description: string;
  /** The arguments: the model is shown their JSON Schema, and a call is validated against them before `execute` runs. */
  readonly parameters: P;
  /** Ask the user before the call runs (always, or when the function says so). Default: never. */
  readonly needsApproval?: NeedsApproval<P> | undefined;
  /**
   * Running a call twice with the same arguments does no more than running it once. On NATS, a
   * call cut off by its worker's death is then run again by the worker that adopts the session;
   * otherwise the model is told it may or may not have taken effect. Default: false.
   */
  readonly repeatable?: boolean | undefined;
  /** Do the work. A string goes to the model as is, anything else as JSON; a throw is a failed call the model sees. */
  execute(args: z.output<P>, ctx: ToolRunContext): JsonValue | void | Promise<JsonValue | void>;
}

const TOOL = Symbol.for('troupe.tool');

/** A tool made by `tool()`. */
export interface Tool<P extends ToolParameters = ToolParameters> extends ToolDefinition<P> {
  readonly [TOOL]: true;
}

/** Raised for a tool definition that cannot be used; the message names the tool and the problem. */
export class ToolDefinitionError extends TroupeError {
  override readonly name = 'ToolDefinitionError';
  override readonly code = 'bad_request';
}

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * Define a tool for troupe's agents: give it to `createRuntime({ tools })` (every session),
 * `runtime.newSession(config, { tools })` (one session and its sub-agents), or export it from a
 * module a worker loads with `--tools`.
 */
export function tool<P extends ToolParameters>(definition: ToolDefinition<P>): Tool<P> {
  const { name, description, parameters, execute } = definition;
  if (typeof name !== 'string' || !NAME.test(name)) throw new ToolDefinitionError(`tool name ${JSON.stringify(name)}: must be 1 to 64 letters, digits, _ or -`);
  if (typeof description !== 'string' || description.trim() === '') throw new ToolDefinitionError(`tool ${name}: description must not be empty`);
  if (typeof execute !== 'function') throw new ToolDefinitionError(`tool ${name}: execute must be a function`);
  if (definition.repeatable !== undefined && typeof definition.repeatable !== 'boolean')
    throw new ToolDefinitionError(`tool ${name}: repeatable must be true or false`);
  let schema: Record<string, unknown>;
  try {
    schema = z.toJSONSchema(parameters, { io: 'input', unrepresentable: 'any' });
  } catch (error) {
    throw new ToolDefinitionError(`tool ${name}: parameters must be a zod object schema (${(error as Error).message})`);
  }
  if (schema.type !== 'object') throw new ToolDefinitionError(`tool ${name}: parameters must be a zod object schema, got one of type ${String(schema.type)}`);
  return Object.freeze({ ...definition, [TOOL]: true as const });
}

export function isTool(value: unknown): value is Tool {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[TOOL] === true;
}

/** The handler through which the registry and the ToolCallMachine run a user tool. */
export function userToolHandler(definition: Tool): ToolHandler<unknown> {
  const handler: ToolHandler<Record<string, unknown>> = {
    name: definition.name,
    description: definition.description,
    args: definition.parameters,
    plan: async (args, ctx, approvals) => planApproval(await approvalNeed(definition, args, ctx), approvals, false),
    repeatable: definition.repeatable === true,
    run: (args, ctx) => runUserTool(definition, args, ctx),
  };
  return handler;
}

async function approvalNeed(definition: Tool, args: Record<string, unknown>, ctx: ToolContext): Promise<ApprovalNeed> {
  const { needsApproval } = definition;
  const needed = typeof needsApproval === 'function' ? await needsApproval(args, runContext(definition, ctx)) : needsApproval === true;
  if (!needed) return { kind: 'none' };
  if (ctx.turn.approval_policy === 'never') {
    return {
      kind: 'reject',
      reason: `${definition.name} needs the user's approval, and this session's approval policy is "never", so it cannot be asked. Continue without it.`,
    };
  }
  return { kind: 'ask', request: { type: 'tool', tool: definition.name, arguments: args }, approvalKey: `tool:${definition.name}` };
}

function runContext(definition: Tool, ctx: ToolContext): ToolRunContext {
  const { turn } = ctx;
  return {
    sessionId: ctx.sessionId,
    callId: ctx.callId,
    turn: { id: turn.turn_id, cwd: turn.cwd, model: turn.model, approvalPolicy: turn.approval_policy, sandboxPolicy: turn.sandbox_policy },
    signal: ctx.signal,
    progress: (update) => ctx.emit({ type: 'tool_call_progress', call_id: ctx.callId, tool: definition.name, progress: update }),
  };
}

async function runUserTool(definition: Tool, args: Record<string, unknown>, ctx: ToolContext): Promise<ToolOutput> {
  const { name } = definition;
  const started = performance.now();
  ctx.emit({ type: 'tool_call_begin', call_id: ctx.callId, turn_id: ctx.turn.turn_id, tool: name, arguments: args });
  let output: ToolOutput;
  try {
    output = { text: outputText(name, await definition.execute(args, runContext(definition, ctx))), success: true };
  } catch (error) {
    output = { text: `${name} failed: ${error instanceof Error ? error.message : String(error)}`, success: false };
  }
  ctx.emit({
    type: 'tool_call_end',
    call_id: ctx.callId,
    turn_id: ctx.turn.turn_id,
    tool: name,
    success: output.success,
    output: output.text,
    duration_ms: Math.max(0, Math.round(performance.now() - started)),
  });
  return output;
}

/** A string as is; nothing as an empty output; anything else as JSON (a value JSON cannot hold is the tool's error). */
function outputText(name: string, value: JsonValue | void): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new Error(`${name} returned a value JSON cannot hold (${typeof value})`);
  return text;
}
