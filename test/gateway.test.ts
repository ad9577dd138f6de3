import { describe, expect, it } from 'vitest';
import { Gateway } from '../actors/gateway/gateway.js';
import { createInProcessBus } from '../lib/bus/index.js';
import type { Event } from '../protocol/index.js';

describe('Gateway', () => {
  it('answers a submission whose handling threw with an error event of its id, and goes on with the next', async () => {
    const bus = createInProcessBus();
    const seen: Event[] = [];
    let throwOnce = true;
    const gateway = new Gateway({
      bus,
      namespace: 'gw-test',
      requestTimeoutMs: 1_000,
      onEvent: (event) => {
        if (throwOnce) {
          throwOnce = false;
          throw new Error('the client handler broke');
        }
        seen.push(event);
      },
    });
    gateway.start();
    try {
      // No host runs sessions, so the op is answered with "unknown session", and that event's
      // delivery throws: the submission fails while it is being handled.
      await expect(gateway.submit({ id: 'first', session_id: 'nobody', op: { type: 'interrupt' } })).resolves.toBeUndefined();
      await gateway.submit({ id: 'second', session_id: 'nobody', op: { type: 'interrupt' } });
      expect(seen.map((event) => [event.id, event.msg.type === 'error' ? event.msg.message : event.msg.type])).toEqual([
        ['first', 'interrupt failed: the client handler broke'],
        ['second', 'unknown session nobody'],
      ]);
      expect(seen.at(-1)?.msg).toMatchObject({ type: 'error', code: 'unknown_session' });
      expect(gateway.undelivered().submissions).toEqual([]);
    } finally {
      await gateway.close();
      await bus.close();
    }
  });
});
