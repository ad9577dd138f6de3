/**
 * The events of one command attempt (PROTOCOL.md: `exec_command_begin`, `_output_delta`,
 * `_end`), made in one place for every tool that runs a command. The order is kept here, not
 * by each tool: one begin, then deltas, then one end; anything out of that order is dropped.
 */
import type { EventMsg } from '../../protocol/index.js';
import type { ToolContext } from './tool.js';

/** A command printing one byte at a time must not flood the bus with events. */
export const MAX_OUTPUT_DELTAS = 10_000;

export type ExecStream = 'stdout' | 'stderr';

/** How the command ended, as the end event tells it. */
export interface ExecEnd {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Both streams in the order they arrived. */
  readonly aggregated: string;
  readonly durationMs: number;
}

type Phase = 'before' | 'running' | 'ended';

export class ExecEvents {
  #phase: Phase = 'before';
  #deltas = 0;

  constructor(
    private readonly ctx: Pick<ToolContext, 'callId' | 'turn' | 'flow' | 'emit'>,
    /** The command as the user approved it (not the sandbox's argv around it). */
    private readonly command: readonly string[],
    private readonly cwd: string,
  ) {}

  /** The command started. Only the first call counts. */
  begin(): void {
    if (this.#phase !== 'before') return;
    this.#phase = 'running';
    this.#send({ type: 'exec_command_begin', call_id: this.ctx.callId, turn_id: this.ctx.turn.turn_id, command: [...this.command], cwd: this.cwd });
  }

  /**
   * Output as it arrives, a live view only: the end event carries the output whole. So a delta
   * is skipped while the reader of the session's events is behind (the flow gate is closed),
   * and after MAX_OUTPUT_DELTAS of them.
   */
  output(stream: ExecStream, chunk: string): void {
    if (this.#phase !== 'running' || chunk.length === 0) return;
    if (this.#deltas >= MAX_OUTPUT_DELTAS || this.ctx.flow?.open === false) return;
    this.#deltas++;
    this.#send({ type: 'exec_command_output_delta', call_id: this.ctx.callId, stream, chunk });
  }

  /** The command ended. Only the first call counts; a begin not sent yet goes first. */
  end(result: ExecEnd): void {
    if (this.#phase === 'ended') return;
    this.begin();
    this.#phase = 'ended';
    this.#send({
      type: 'exec_command_end',
      call_id: this.ctx.callId,
      turn_id: this.ctx.turn.turn_id,
      exit_code: result.exitCode,
      stdout: result.stdout,
      stderr: result.stderr,
      aggregated_output: result.aggregated,
      duration_ms: result.durationMs,
    });
  }

  #send(msg: EventMsg): void {
    try {
      this.ctx.emit(msg);
    } catch {
      // A program can outlive its call and its session (exec sessions): an event that has
      // nowhere to go any more is dropped, never thrown into the program's output handling.
    }
  }
}
