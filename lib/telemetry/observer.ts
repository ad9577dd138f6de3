import type { SessionPort } from '../../machines/port.js';
import type { EventMsg, Submission, TokenUsage } from '../../protocol/index.js';
import { addUsage } from '../history/conversation-history.js';
import { log, type Logger } from '../log.js';
import type { SessionFacts, SessionSink } from './sink.js';

interface TurnRecord {
  readonly startedAt: number;
  usage: TokenUsage | null;
}

interface CallRecord {
  readonly turnId: string;
  readonly tool: string;
  exitCode?: number;
}

/**
 * Watches one session from outside, for the process log and (when it is on) OpenTelemetry: it
 * reads the session's events (turn ends, approval requests, exit codes, retries) and ops (user
 * prompts, approval decisions), and wraps its port where the events do not say enough (turn
 * starts, model requests in `sample`, tool decisions and durations in `plan` and `execute`). Nothing in the machines or the tools calls it; a session gets
 * one only when its process logs at `info` or telemetry is on.
 */
export class SessionObserver {
  readonly #log: Logger;
  readonly #sink: SessionSink | null;
  readonly #turns = new Map<string, TurnRecord>();
  readonly #calls = new Map<string, CallRecord>();
  #ended = false;

  constructor(facts: SessionFacts, sink: SessionSink | null) {
    this.#log = log.child({ session: facts.sessionId, worker: facts.workerId });
    this.#sink = sink;
  }

  /** A port that tells the observer what the session does, then does it. */
  wrap(port: SessionPort): SessionPort {
    return {
      ...port,
      startTask: (id, model) => {
        this.#turns.set(id, { startedAt: performance.now(), usage: null });
        this.#log.info({ turn: id, model }, 'turn started');
        this.#sink?.turnStarted(id);
        port.startTask(id, model);
      },
      plan: async (input) => {
        this.#calls.set(input.callId, { turnId: input.turnId, tool: input.name });
        this.#sink?.toolPlanned(input.turnId, input.callId, input.name);
        const plan = await port.plan(input);
        if (plan.kind !== 'ask') this.#sink?.toolDecided(input.callId, { source: 'config', decision: plan.kind === 'run' ? 'approved' : 'denied' });
        if (plan.kind === 'reject') this.#log.info({ turn: input.turnId, call: input.callId, tool: input.name, reason: plan.reason }, 'tool call refused');
        return plan;
      },
      execute: async (input, signal) => {
        const start = performance.now();
        const output = await port.execute(input, signal);
        // A sandbox denial that asks to run outside: the call waits for approval and runs again.
        if (output.escalate) return output;
        const durationMs = Math.round(performance.now() - start);
        const call = this.#calls.get(input.callId);
        this.#calls.delete(input.callId);
        const exit = call?.exitCode !== undefined ? { exit_code: call.exitCode } : {};
        this.#log.info(
          { turn: input.turnId, call: input.callId, tool: input.name, duration_ms: durationMs, success: output.success, ...exit },
          'tool call ended',
        );
        this.#sink?.toolEnded(input.callId, { arguments: input.arguments, durationMs, success: output.success, output: output.text });
        return output;
      },
      sample: (step, sendBack) => {
        const { turnId, turn } = step;
        const start = performance.now();
        const request = this.#sink?.request(turnId, step.attempt, turn.model);
        this.#log.debug({ turn: turnId, attempt: step.attempt, model: turn.model }, 'model request');
        let settled = false;
        const cancel = port.sample(step, (event) => {
          if (event.type === 'MODEL.ITEM') request?.streamed('response.output_item.done');
          else if (event.type === 'MODEL.COMPLETED') {
            settled = true;
            const record = this.#turns.get(turnId);
            if (record && event.usage) record.usage = record.usage ? addUsage(record.usage, event.usage) : event.usage;
            this.#log.debug(
              { turn: turnId, attempt: step.attempt, duration_ms: Math.round(performance.now() - start), tokens: event.usage?.total_tokens },
              'model response',
            );
            request?.completed(event.usage);
          } else if (event.type === 'MODEL.FAILED') {
            settled = true;
            this.#log.debug({ turn: turnId, attempt: step.attempt, code: event.failure.code, err: event.failure.message }, 'model request failed');
            request?.failed(event.failure.code, event.failure.message);
          }
          sendBack(event);
        });
        return () => {
          if (!settled) request?.cancelled();
          cancel();
        };
      },
    };
  }

  /** An op the session is about to apply. */
  op(submission: Submission): void {
    const { op } = submission;
    switch (op.type) {
      case 'user_turn':
      case 'user_input': {
        const text = op.items.map((item) => (item.type === 'text' ? item.text : '')).join('\n');
        this.#sink?.userPrompt(text);
        break;
      }
      case 'exec_approval':
      case 'patch_approval':
        this.#log.info({ call: op.id, decision: op.decision }, 'approval decided');
        this.#sink?.toolDecided(op.id, { source: 'user', decision: op.decision });
        break;
      default:
        break;
    }
  }

  /** The traceparent a child session placed by call or task `callId` is started under. */
  traceparent(callId: string): string | undefined {
    return this.#sink?.traceparent(callId);
  }

  /** The session ended on this worker. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#log.info('session ended here');
    this.#sink?.end();
  }

  /** An event on the session's stream (every event, whoever made it), with its submission id. */
  event(id: string | null, msg: EventMsg): void {
    switch (msg.type) {
      case 'task_complete':
      case 'turn_aborted': {
        const record = this.#turns.get(msg.turn_id);
        this.#turns.delete(msg.turn_id);
        const status = msg.type === 'task_complete' ? 'completed' : `aborted (${msg.reason})`;
        const usage = record?.usage ?? null;
        const durationMs = record ? Math.round(performance.now() - record.startedAt) : undefined;
        this.#log.info(
          {
            turn: msg.turn_id,
            status,
            duration_ms: durationMs,
            input_tokens: usage?.input_tokens,
            output_tokens: usage?.output_tokens,
            total_tokens: usage?.total_tokens,
          },
          'turn ended',
        );
        this.#sink?.turnEnded(msg.turn_id, status, usage);
        break;
      }
      case 'exec_approval_request':
      case 'apply_patch_approval_request':
        this.#log.info({ turn: msg.turn_id, call: msg.call_id }, 'waiting for approval');
        this.#sink?.approvalRequested(msg.call_id);
        break;
      case 'exec_command_end': {
        const call = this.#calls.get(msg.call_id);
        if (call) call.exitCode = msg.exit_code;
        break;
      }
      case 'stream_error':
        this.#log.info({ turn: id, attempt: msg.attempt, max_attempts: msg.max_attempts, err: msg.message }, 'model request failed; retrying');
        break;
      default:
        break;
    }
  }
}
