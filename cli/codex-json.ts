import type { Event, EventOf, FileChange, TokenUsage } from '../protocol/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { asToolResult, resultText } from '../actors/tools/mcp/result-text.js';
import { shellJoin } from './shell-words.js';

/**
 * The JSON lines `codex exec --experimental-json` prints, which the Codex SDK
 * (`@openai/codex-sdk`) reads: one thread event a line. Field names follow Codex's exec events;
 * docs/PROTOCOL.md, "Codex SDK compatibility", says how troupe's events map onto them.
 */
/** Items that are complete when they appear: the agent's text, its reasoning, a non-fatal error. */
type CodexNote = { readonly type: 'agent_message' | 'reasoning'; readonly text: string } | { readonly type: 'error'; readonly message: string };

export type CodexThreadItem = { readonly id: string } & (
  | CodexNote
  | {
      readonly type: 'command_execution';
      readonly command: string;
      readonly aggregated_output: string;
      readonly exit_code?: number;
      readonly status: 'in_progress' | 'completed' | 'failed';
    }
  | {
      readonly type: 'file_change';
      readonly changes: readonly { readonly path: string; readonly kind: FileChange['type'] }[];
      readonly status: 'completed' | 'failed';
    }
  | {
      readonly type: 'mcp_tool_call';
      readonly server: string;
      readonly tool: string;
      readonly arguments: unknown;
      readonly result?: { readonly content: unknown[]; readonly structured_content: unknown };
      readonly error?: { readonly message: string };
      readonly status: 'in_progress' | 'completed' | 'failed';
    }
  | { readonly type: 'todo_list'; readonly items: readonly { readonly text: string; readonly completed: boolean }[] }
);

export interface CodexUsage {
  readonly input_tokens: number;
  readonly cached_input_tokens: number;
  readonly output_tokens: number;
  readonly reasoning_output_tokens: number;
}

export type CodexThreadEvent =
  | { readonly type: 'thread.started'; readonly thread_id: string }
  | { readonly type: 'turn.started' }
  | { readonly type: 'turn.completed'; readonly usage: CodexUsage }
  | { readonly type: 'turn.failed'; readonly error: { readonly message: string } }
  | { readonly type: 'item.started' | 'item.updated' | 'item.completed'; readonly item: CodexThreadItem }
  | { readonly type: 'error'; readonly message: string };

type McpBegin = EventOf<'mcp_tool_call_begin'>;

/**
 * Turns the events of one `troupe exec` session into Codex thread events. Only the root
 * session's events are mapped: sub-agents and review threads have no place in Codex's stream.
 */
export class CodexEventMapper {
  readonly #rootId: () => string | null;
  #nextItem = 0;
  /** Items started and not yet completed, by troupe call id. */
  readonly #open = new Map<string, { id: string; command?: string; mcp?: McpBegin; changes?: Record<string, FileChange> }>();
  /** The turn's to-do list while it runs: started on the first plan, completed with the turn. */
  #todo: Extract<CodexThreadItem, { type: 'todo_list' }> | null = null;
  /** The thread's token usage so far, as the last token_count reported it. */
  #usage: TokenUsage | null = null;
  /** The first error of the turn: the turn fails with it. */
  #error: string | null = null;

  /** `rootId` names the session whose events are mapped (null until it is known). */
  constructor(rootId: () => string | null) {
    this.#rootId = rootId;
  }

  map(event: Event): CodexThreadEvent[] {
    if (event.session_id === null || event.session_id !== this.#rootId()) return [];
    const msg = event.msg;
    switch (msg.type) {
      case 'session_configured':
        return [{ type: 'thread.started', thread_id: msg.session_id }];
      case 'task_started':
        this.#error = null;
        return [{ type: 'turn.started' }];
      case 'agent_message':
        return [this.#completed({ type: 'agent_message', text: msg.message })];
      case 'agent_reasoning':
        return msg.text.trim() ? [this.#completed({ type: 'reasoning', text: msg.text })] : [];
      case 'exec_command_begin': {
        const id = this.#itemId();
        const command = shellJoin(msg.command);
        this.#open.set(msg.call_id, { id, command });
        return [{ type: 'item.started', item: { id, type: 'command_execution', command, aggregated_output: '', status: 'in_progress' } }];
      }
      case 'exec_command_end': {
        const open = this.#take(msg.call_id);
        const item: CodexThreadItem = {
          id: open.id,
          type: 'command_execution',
          command: open.command ?? '',
          aggregated_output: msg.aggregated_output,
          exit_code: msg.exit_code,
          status: msg.exit_code === 0 ? 'completed' : 'failed',
        };
        return [{ type: 'item.completed', item }];
      }
      case 'patch_apply_begin':
        this.#open.set(msg.call_id, { id: this.#itemId(), changes: msg.changes });
        return [];
      case 'patch_apply_end': {
        const open = this.#take(msg.call_id);
        const changes = Object.entries(open.changes ?? {}).map(([path, change]) => ({ path, kind: change.type }));
        return [{ type: 'item.completed', item: { id: open.id, type: 'file_change', changes, status: msg.success ? 'completed' : 'failed' } }];
      }
      case 'mcp_tool_call_begin': {
        const id = this.#itemId();
        this.#open.set(msg.call_id, { id, mcp: msg });
        return [
          { type: 'item.started', item: { id, type: 'mcp_tool_call', server: msg.server, tool: msg.tool, arguments: msg.arguments, status: 'in_progress' } },
        ];
      }
      case 'mcp_tool_call_end': {
        const open = this.#take(msg.call_id);
        const begin = open.mcp;
        const base = { id: open.id, type: 'mcp_tool_call' as const, server: begin?.server ?? '', tool: begin?.tool ?? '', arguments: begin?.arguments ?? null };
        const result = asToolResult(msg.result);
        const failed = msg.error !== undefined || result?.isError === true;
        const item: CodexThreadItem = failed
          ? { ...base, error: { message: msg.error ?? (result ? resultText(result) : 'the tool failed') }, status: 'failed' }
          : { ...base, result: mcpResult(result), status: 'completed' };
        return [{ type: 'item.completed', item }];
      }
      case 'plan_update': {
        const items = msg.plan.map((step) => ({ text: step.step, completed: step.status === 'completed' }));
        const started = this.#todo === null;
        this.#todo = { id: this.#todo?.id ?? this.#itemId(), type: 'todo_list', items };
        return [{ type: started ? 'item.started' : 'item.updated', item: this.#todo }];
      }
      case 'token_count':
        if (msg.info) this.#usage = msg.info.total_token_usage;
        return [];
      case 'warning':
        return [this.#completed({ type: 'error', message: msg.message })];
      case 'stream_error':
        return [this.#completed({ type: 'error', message: `model stream failed (attempt ${msg.attempt} of ${msg.max_attempts}): ${msg.message}` })];
      case 'error':
        this.#error ??= msg.message;
        return [{ type: 'error', message: msg.message }];
      case 'task_complete':
        return [
          ...this.#endTurn(),
          this.#error === null ? { type: 'turn.completed', usage: this.#codexUsage() } : { type: 'turn.failed', error: { message: this.#error } },
        ];
      case 'turn_aborted':
        return [...this.#endTurn(), { type: 'turn.failed', error: { message: `the turn was aborted (${msg.reason})` } }];
      default:
        return [];
    }
  }

  #itemId(): string {
    return `item_${this.#nextItem++}`;
  }

  #completed(note: CodexNote): CodexThreadEvent {
    return { type: 'item.completed', item: { id: this.#itemId(), ...note } };
  }

  #take(callId: string): { id: string; command?: string; mcp?: McpBegin; changes?: Record<string, FileChange> } {
    const open = this.#open.get(callId);
    this.#open.delete(callId);
    return open ?? { id: this.#itemId() };
  }

  /** The to-do list completes with the turn. */
  #endTurn(): CodexThreadEvent[] {
    const todo = this.#todo;
    this.#todo = null;
    return todo ? [{ type: 'item.completed', item: todo }] : [];
  }

  #codexUsage(): CodexUsage {
    const usage = this.#usage;
    return {
      input_tokens: usage?.input_tokens ?? 0,
      cached_input_tokens: usage?.cached_input_tokens ?? 0,
      output_tokens: usage?.output_tokens ?? 0,
      reasoning_output_tokens: usage?.reasoning_output_tokens ?? 0,
    };
  }
}

function mcpResult(result: CallToolResult | null): { content: unknown[]; structured_content: unknown } {
  return { content: result?.content ?? [], structured_content: result?.structuredContent ?? null };
}
