/**
 * `session.run()`: one turn as a promise. It follows the session's tree (sub-agents, review
 * threads) through the runtime's events, answers approvals through `onApproval`, and resolves
 * to the final message, what the turn did, its token usage and, with an output schema, the
 * parsed and validated value.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  approvalAnswer,
  describeApprovalRequest,
  describeZodError,
  isApprovalRequest,
  type ApprovalRequestMsg,
  type ErrorCode,
  type Event,
  type FileChange,
  type PlanItem,
  type ReviewDecision,
  type SessionOp,
  type TokenUsage,
  type UserInput,
  TroupeError,
} from '../protocol/index.js';
import { addUsage } from '../lib/history/conversation-history.js';
import { inBackground, log } from '../lib/log.js';

/** An approval request of the run's session or one of its sub-agents. */
export type RunApprovalRequest = ApprovalRequestMsg & { readonly session_id: string };

export interface RunOptions<S extends z.ZodType | undefined = undefined> {
  /** Ask the model for JSON in this schema; the result's `output` is the parsed, validated value. */
  readonly output?: S;
  /** Aborting interrupts the turn; the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Answers the approval requests of the run (its session's and its sub-agents'). Without it,
   * the session's approval policy decides, and a call that would ask is denied.
   */
  readonly onApproval?: ((request: RunApprovalRequest) => ReviewDecision | Promise<ReviewDecision>) | undefined;
}

/** What a turn did, in order: the model's messages and reasoning, and each call with its outcome. */
export type RunItem =
  | { readonly type: 'agent_message'; readonly text: string }
  | { readonly type: 'reasoning'; readonly text: string }
  | {
      readonly type: 'command';
      readonly call_id: string;
      readonly command: readonly string[];
      readonly cwd: string;
      readonly exit_code: number;
      readonly output: string;
    }
  | { readonly type: 'file_change'; readonly call_id: string; readonly changes: Readonly<Record<string, FileChange>>; readonly success: boolean }
  | {
      readonly type: 'mcp_tool_call';
      readonly call_id: string;
      readonly server: string;
      readonly tool: string;
      readonly arguments: unknown;
      readonly result?: unknown;
      readonly error?: string | undefined;
    }
  | {
      readonly type: 'tool_call';
      readonly call_id: string;
      readonly tool: string;
      readonly arguments: unknown;
      readonly output: string;
      readonly success: boolean;
    }
  | {
      readonly type: 'agent_spawned';
      readonly call_id: string;
      readonly agent_id: string;
      readonly nickname: string | null;
      readonly role: string | null;
      readonly prompt: string;
    }
  | { readonly type: 'plan'; readonly plan: readonly PlanItem[] }
  | { readonly type: 'approval'; readonly request: RunApprovalRequest; readonly decision: ReviewDecision };

export interface RunResult<T> {
  /** The model's last message of the turn (null when it ended without one). */
  readonly finalMessage: string | null;
  /** The validated value when an output schema was given; otherwise undefined. */
  readonly output: T;
  readonly items: readonly RunItem[];
  /** Tokens of the turn's model requests, summed (null when the provider reported none). */
  readonly usage: TokenUsage | null;
}

/** The turn failed: troupe reported an error (`code`), or it was aborted. */
export class RunError extends Error {
  override readonly name = 'RunError';
  constructor(
    message: string,
    readonly code: ErrorCode | 'aborted',
  ) {
    super(message);
  }
}

/** The final message did not match the output schema, twice (the second time after a repair request). */
export class OutputValidationError extends TroupeError {
  override readonly name = 'OutputValidationError';
  constructor(
    message: string,
    /** The model's last message, as it came. */
    readonly rawMessage: string | null,
    /** What was wrong: not JSON, or the schema's issues. */
    readonly issues: readonly z.core.$ZodIssue[],
  ) {
    super(message);
  }
}

/** What `runTurn` needs of a runtime and a session. */
export interface RunTarget {
  readonly sessionId: string;
  onEvent(listener: (event: Event) => void): () => void;
  submit(op: SessionOp, id: string): Promise<unknown>;
}

type TurnOutcome = { readonly lastMessage: string | null };

/** Run one turn of `input` in the target's session (see RunOptions). */
export async function runTurn<S extends z.ZodType | undefined>(
  target: RunTarget,
  input: string | readonly UserInput[],
  options: RunOptions<S>,
): Promise<RunResult<S extends z.ZodType ? z.output<S> : undefined>> {
  type Output = S extends z.ZodType ? z.output<S> : undefined;
  const { signal, output: schema } = options;
  signal?.throwIfAborted();
  const items: RunItem[] = [];
  const usage = new UsageSum();
  const items0: readonly UserInput[] = typeof input === 'string' ? [{ type: 'text', text: input }] : input;
  const jsonSchema = schema ? outputJsonSchema(schema) : undefined;
  const first = await oneTurn(target, items0, jsonSchema, options, items, usage);
  if (!schema) return { finalMessage: first.lastMessage, output: undefined as Output, items, usage: usage.total() };
  let checked = validate(schema, first.lastMessage);
  let last = first;
  if (!checked.ok) {
    const repair = `Your last answer did not match the required JSON schema: ${checked.problem}. Answer again with only a JSON value that matches the schema.`;
    last = await oneTurn(target, [{ type: 'text', text: repair }], jsonSchema, options, items, usage);
    checked = validate(schema, last.lastMessage);
  }
  if (!checked.ok) {
    throw new OutputValidationError(
      `the model's answer did not match the output schema, after one repair request: ${checked.problem}`,
      last.lastMessage,
      checked.issues,
    );
  }
  return { finalMessage: last.lastMessage, output: checked.value as Output, items, usage: usage.total() };
}

/** One user turn, followed to its end. */
function oneTurn(
  target: RunTarget,
  input: readonly UserInput[],
  schema: Record<string, unknown> | undefined,
  options: RunOptions<z.ZodType | undefined>,
  items: RunItem[],
  usage: UsageSum,
): Promise<TurnOutcome> {
  const turnId = `run-${randomUUID()}`;
  const root = target.sessionId;
  const tree = new Set([root]);
  const begun = new Map<string, Event['msg']>();
  let error: { message: string; code: ErrorCode } | null = null;
  return new Promise<TurnOutcome>((resolve, reject) => {
    const { signal } = options;
    const finish = (outcome: () => void): void => {
      stop();
      signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    const onAbort = (): void => {
      target.submit({ type: 'interrupt' }, `${turnId}-interrupt`).catch((e: unknown) => log.warn({ err: e, session: root }, 'could not interrupt the run'));
    };
    const stop = target.onEvent((event) => {
      const { msg } = event;
      if (msg.type === 'session_configured' && msg.parent_session_id !== null && tree.has(msg.parent_session_id)) tree.add(msg.session_id);
      if (event.session_id === null || !tree.has(event.session_id)) return;
      if (isApprovalRequest(msg)) {
        inBackground(answer(target, { ...msg, session_id: event.session_id }, options.onApproval, items), `answering approval ${msg.call_id}`);
        return;
      }
      if (event.session_id !== root) return;
      // A spawn is announced under its call's id; everything else of the turn carries the turn's.
      if (msg.type === 'agent_spawned') collect(msg, begun, items, usage);
      if (event.id !== turnId) return;
      collect(msg, begun, items, usage);
      if (msg.type === 'error') error = { message: msg.message, code: msg.code };
      else if (msg.type === 'task_complete') {
        const failed = error;
        finish(() =>
          failed !== null && msg.last_agent_message === null
            ? reject(new RunError(failed.message, failed.code))
            : resolve({ lastMessage: msg.last_agent_message }),
        );
      } else if (msg.type === 'turn_aborted') {
        finish(() => reject(signal?.aborted ? toError(signal.reason) : new RunError(`the turn was aborted (${msg.reason})`, 'aborted')));
      } else if (msg.type === 'shutdown_complete') {
        finish(() => reject(new RunError('the session shut down before the turn ended', 'aborted')));
      }
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    const op: SessionOp = { type: 'user_turn', items: [...input], ...(schema ? { final_output_json_schema: schema } : {}) };
    target.submit(op, turnId).catch((e: unknown) => finish(() => reject(toError(e))));
  });
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

async function answer(target: RunTarget, request: RunApprovalRequest, onApproval: RunOptions['onApproval'], items: RunItem[]): Promise<void> {
  let decision: ReviewDecision = 'denied';
  if (onApproval) {
    try {
      decision = await onApproval(request);
    } catch (error) {
      log.warn({ err: error, session: request.session_id, call: request.call_id }, 'onApproval threw; the request is denied');
    }
  } else {
    log.warn(
      { session: request.session_id, call: request.call_id },
      `run() denied the request to ${describeApprovalRequest(request)}: pass onApproval to run() to answer approvals, or use an approval policy that does not ask`,
    );
  }
  items.push({ type: 'approval', request, decision });
  try {
    await target.submit(approvalAnswer(request, decision), `approval-${request.call_id}`);
  } catch (error) {
    log.warn({ err: error, session: request.session_id, call: request.call_id }, 'could not send the answer to an approval request');
  }
}

/** Turn the events of the turn into its items; a call's begin event is kept until its end. */
function collect(msg: Event['msg'], begun: Map<string, Event['msg']>, items: RunItem[], usage: UsageSum): void {
  switch (msg.type) {
    case 'agent_message':
      items.push({ type: 'agent_message', text: msg.message });
      return;
    case 'agent_reasoning':
      items.push({ type: 'reasoning', text: msg.text });
      return;
    case 'exec_command_begin':
    case 'patch_apply_begin':
    case 'mcp_tool_call_begin':
      begun.set(msg.call_id, msg);
      return;
    case 'exec_command_end': {
      const start = begun.get(msg.call_id);
      const command = start?.type === 'exec_command_begin' ? start : null;
      items.push({
        type: 'command',
        call_id: msg.call_id,
        command: command?.command ?? [],
        cwd: command?.cwd ?? '',
        exit_code: msg.exit_code,
        output: msg.aggregated_output,
      });
      return;
    }
    case 'patch_apply_end': {
      const start = begun.get(msg.call_id);
      items.push({ type: 'file_change', call_id: msg.call_id, changes: start?.type === 'patch_apply_begin' ? start.changes : {}, success: msg.success });
      return;
    }
    case 'mcp_tool_call_end': {
      const start = begun.get(msg.call_id);
      const call = start?.type === 'mcp_tool_call_begin' ? start : null;
      items.push({
        type: 'mcp_tool_call',
        call_id: msg.call_id,
        server: call?.server ?? '',
        tool: call?.tool ?? '',
        arguments: call?.arguments,
        ...(msg.result !== undefined ? { result: msg.result } : {}),
        ...(msg.error !== undefined ? { error: msg.error } : {}),
      });
      return;
    }
    case 'tool_call_begin':
      begun.set(msg.call_id, msg);
      return;
    case 'tool_call_end': {
      const start = begun.get(msg.call_id);
      items.push({
        type: 'tool_call',
        call_id: msg.call_id,
        tool: msg.tool,
        arguments: start?.type === 'tool_call_begin' ? start.arguments : undefined,
        output: msg.output,
        success: msg.success,
      });
      return;
    }
    case 'agent_spawned':
      items.push({
        type: 'agent_spawned',
        call_id: msg.call_id,
        agent_id: msg.agent_id,
        nickname: msg.nickname ?? null,
        role: msg.role ?? null,
        prompt: msg.prompt,
      });
      return;
    case 'plan_update':
      items.push({ type: 'plan', plan: msg.plan });
      return;
    case 'token_count':
      if (msg.info) usage.add(msg.info.last_token_usage);
      return;
    default:
      return;
  }
}

/** The token usage of a run's requests, summed. */
class UsageSum {
  #total: TokenUsage | null = null;

  add(usage: TokenUsage): void {
    this.#total = this.#total ? addUsage(this.#total, usage) : usage;
  }

  total(): TokenUsage | null {
    return this.#total;
  }
}

/** The JSON Schema the model is asked to answer in. */
function outputJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'output', target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

type Checked = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problem: string; readonly issues: readonly z.core.$ZodIssue[] };

function validate(schema: z.ZodType, message: string | null): Checked {
  if (message === null) return { ok: false, problem: 'there was no final message', issues: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(message);
  } catch (error) {
    return { ok: false, problem: `the answer is not JSON (${(error as Error).message})`, issues: [] };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { ok: false, problem: describeZodError(parsed.error), issues: parsed.error.issues };
  return { ok: true, value: parsed.data };
}
