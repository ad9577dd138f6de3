import type { TurnEvent } from '../../machines/turn.js';
import type { EventMsg } from '../../protocol/index.js';
import { retryDelayMs } from '../../lib/model/backoff.js';
import { ModelError } from '../../lib/model/errors.js';
import type { ModelClient, Prompt } from '../../lib/model/types.js';
import type { FlowSignal } from '../../lib/flow/flow-gate.js';
import { inBackground } from '../../lib/log.js';

export interface SamplingRequest {
  readonly model: ModelClient;
  /** Built when the request goes out, so it sees everything recorded until then. */
  readonly prompt: () => Prompt;
  /** Which attempt this is, for the backoff of the next one. */
  readonly attempt: number;
  readonly retryBaseMs: number;
  /**
   * Closed while the reader of the events is behind. The request waits for it before it goes
   * out and before each next event is pulled from the stream: an unread body stays in the
   * socket, and the provider's writes back up to its end.
   */
  readonly flow: FlowSignal;
  /** Where the turn hears about the stream (the sampler actor's sendBack). */
  readonly report: (event: TurnEvent) => void;
  /**
   * Where text and reasoning deltas go. The turn only passes them on, and a response can hold
   * thousands: they go straight to the session's stream instead of through the statechart.
   */
  readonly emit: (msg: EventMsg) => void;
}

/**
 * One sampling attempt, told to the turn as SamplerEvents: deltas, finished items, usage, or
 * one failure (with the delay before a retry). Returns the function that cancels it.
 */
export function sample(request: SamplingRequest): () => void {
  const controller = new AbortController();
  // Once the response is complete there is nothing to cancel; the stream just runs out.
  let completed = false;
  let settled = false;
  const report = (event: TurnEvent) => {
    if (!controller.signal.aborted) request.report(event);
  };
  const emit = (msg: EventMsg) => {
    if (!controller.signal.aborted) request.emit(msg);
  };
  inBackground(
    (async () => {
      try {
        // XState starts an invoked child before it runs the entry actions of the same step,
        // so wait a tick: the request must include what those actions recorded (the user input).
        await Promise.resolve();
        const { flow } = request;
        if (!flow.open) await flow.whenOpen(controller.signal);
        if (controller.signal.aborted) return;
        // Read the stream to its natural end even after `completed`: leaving it early cancels
        // the HTTP body, and with it the kept-alive connection the next request would reuse.
        for await (const ev of request.model.stream(request.prompt(), controller.signal)) {
          switch (ev.type) {
            case 'output_text_delta':
              emit({ type: 'agent_message_delta', delta: ev.delta });
              break;
            case 'reasoning_delta':
              emit({ type: 'agent_reasoning_delta', delta: ev.delta });
              break;
            case 'output_item_done':
              report({ type: 'MODEL.ITEM', item: ev.item });
              break;
            case 'rate_limits':
              report({ type: 'MODEL.RATE_LIMITS', snapshot: ev.snapshot });
              break;
            case 'completed':
              completed = true;
              report({ type: 'MODEL.COMPLETED', usage: ev.usage });
              break;
            case 'created':
              break;
          }
          if (!flow.open) await flow.whenOpen(controller.signal);
        }
        if (!completed) throw new ModelError('the model stream ended before the response was complete', 'stream_failed', true);
      } catch (error) {
        if (controller.signal.aborted || completed) return;
        const failure =
          error instanceof ModelError ? error : new ModelError(`model request failed: ${String(error)}`, 'stream_failed', true, null, { cause: error });
        report({
          type: 'MODEL.FAILED',
          failure: {
            code: failure.code,
            message: failure.message,
            retryable: failure.retryable,
            retryDelayMs: retryDelayMs(request.attempt, failure.retryAfterMs, request.retryBaseMs),
          },
        });
      } finally {
        settled = true;
      }
    })(),
    'a sampling attempt',
  );
  // Stopping the sampler (interrupt, or the turn moving on) cancels a request still in flight.
  return () => {
    if (!settled && !completed) controller.abort();
  };
}
