import { createActor, createMachine, waitFor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { fromTask, type TaskOutput } from '../../machines/task.js';

const DONE: TaskOutput = { status: 'completed', lastAgentMessage: 'ok', abortReason: null };
const ABORTED: TaskOutput = { status: 'aborted', lastAgentMessage: null, abortReason: 'interrupted' };

/** A work that runs until its signal aborts, then reports ABORTED; `seen` records the signal. */
function untilAborted(seen: AbortSignal[]) {
  return fromTask<{ name: string }>(
    ({ signal }) =>
      new Promise<TaskOutput>((resolve) => {
        seen.push(signal);
        signal.addEventListener('abort', () => resolve(ABORTED), { once: true });
      }),
  );
}

describe('fromTask', () => {
  it('ends with the output of its work', async () => {
    const actor = createActor(
      fromTask<{ name: string }>(async ({ input }) => ({ ...DONE, lastAgentMessage: input.name })),
      {
        input: { name: 'x' },
      },
    ).start();
    const done = await waitFor(actor, (s) => s.status === 'done');
    expect(done.output).toEqual({ ...DONE, lastAgentMessage: 'x' });
  });

  it('hears ABORT: the signal aborts and the work still says how it ended', async () => {
    const seen: AbortSignal[] = [];
    const actor = createActor(untilAborted(seen), { input: { name: 'x' } }).start();
    actor.send({ type: 'ABORT', reason: 'interrupted' });
    expect(seen[0]?.aborted).toBe(true);
    const done = await waitFor(actor, (s) => s.status === 'done');
    expect(done.output).toEqual(ABORTED);
  });

  it('fails when its work rejects or throws at once', async () => {
    const rejects = createActor(
      fromTask<object>(() => Promise.reject(new Error('later'))),
      { input: {} },
    );
    const throws = createActor(
      fromTask<object>(() => {
        throw new Error('at once');
      }),
      { input: {} },
    );
    const errors = await Promise.all(
      [rejects, throws].map(
        (actor) =>
          new Promise<unknown>((resolve) => {
            actor.subscribe({ error: resolve });
            actor.start();
          }),
      ),
    );
    expect(errors.map((e) => (e as Error).message)).toEqual(['later', 'at once']);
    expect([rejects.getSnapshot().status, throws.getSnapshot().status]).toEqual(['error', 'error']);
  });

  it('is stopped with the state that invoked it: the signal aborts and nothing is reported', async () => {
    const seen: AbortSignal[] = [];
    const reported: string[] = [];
    const parent = createActor(
      createMachine({
        initial: 'running',
        states: {
          running: {
            invoke: { src: untilAborted(seen), input: { name: 'x' }, onDone: { actions: () => reported.push('done') } },
            on: { LEAVE: 'elsewhere' },
          },
          elsewhere: {},
        },
      }),
    ).start();
    parent.send({ type: 'LEAVE' });
    expect(seen[0]?.aborted).toBe(true);
    // Let the work's promise settle: a stopped task reports nothing to anyone.
    await new Promise((resolve) => setImmediate(resolve));
    expect(reported).toEqual([]);
    expect(parent.getSnapshot().value).toBe('elsewhere');
  });
});
