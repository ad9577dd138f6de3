import { describe, expect, it } from 'vitest';
import { CodexEventMapper } from '../cli/codex-json.js';
import type { Event, EventMsg } from '../protocol/index.js';

// The paths of the Codex event mapping that a scripted run does not reach easily; the rest is
// covered end to end with the real SDK (test/e2e/codex-sdk.test.ts).

const ROOT = 'root-session';
const at = (msg: EventMsg, session: string = ROOT): Event => ({ id: null, session_id: session, seq: 1, msg });

function mapAll(...events: Event[]) {
  const mapper = new CodexEventMapper(() => ROOT);
  return events.flatMap((event) => mapper.map(event));
}

describe('CodexEventMapper', () => {
  it('an aborted turn fails with its reason; warnings and retries are error items, not failures', () => {
    expect(
      mapAll(
        at({ type: 'task_started', turn_id: 't', model_context_window: null }),
        at({ type: 'warning', message: 'AGENTS.md was cut' }),
        at({ type: 'stream_error', message: 'HTTP 500; retrying', attempt: 1, max_attempts: 5 }),
        at({ type: 'turn_aborted', turn_id: 't', reason: 'interrupted' }),
      ),
    ).toEqual([
      { type: 'turn.started' },
      { type: 'item.completed', item: { id: 'item_0', type: 'error', message: 'AGENTS.md was cut' } },
      { type: 'item.completed', item: { id: 'item_1', type: 'error', message: 'model stream failed (attempt 1 of 5): HTTP 500; retrying' } },
      { type: 'turn.failed', error: { message: 'the turn was aborted (interrupted)' } },
    ]);
  });

  it('an error in the turn makes it fail with that error; the next turn starts clean', () => {
    const mapper = new CodexEventMapper(() => ROOT);
    const turn = (...msgs: EventMsg[]) => msgs.flatMap((msg) => mapper.map(at(msg)));
    expect(
      turn(
        { type: 'task_started', turn_id: 't1', model_context_window: null },
        { type: 'error', message: 'the key was refused', code: 'unauthorized' },
        { type: 'task_complete', turn_id: 't1', last_agent_message: null },
      ),
    ).toEqual([
      { type: 'turn.started' },
      { type: 'error', message: 'the key was refused' },
      { type: 'turn.failed', error: { message: 'the key was refused' } },
    ]);
    expect(
      turn({ type: 'task_started', turn_id: 't2', model_context_window: null }, { type: 'task_complete', turn_id: 't2', last_agent_message: null }),
    ).toEqual([
      { type: 'turn.started' },
      { type: 'turn.completed', usage: { input_tokens: 0, cached_input_tokens: 0, output_tokens: 0, reasoning_output_tokens: 0 } },
    ]);
  });

  it("maps only the root session's events: a sub-agent's commands and errors stay out", () => {
    expect(
      mapAll(
        at({ type: 'exec_command_begin', call_id: 'c', turn_id: 't', command: ['ls'], cwd: '/' }, 'child'),
        at({ type: 'error', message: 'child failed', code: 'internal' }, 'child'),
        at({ type: 'agent_message', message: 'from the child' }, 'child'),
      ),
    ).toEqual([]);
  });

  it('a refused patch is a failed file change listing its files', () => {
    expect(
      mapAll(
        at({ type: 'patch_apply_begin', call_id: 'p', auto_approved: true, changes: { '/w/a.txt': { type: 'add', content: 'x' } } }),
        at({ type: 'patch_apply_end', call_id: 'p', success: false, stdout: '', stderr: 'no such file' }),
      ),
    ).toEqual([{ type: 'item.completed', item: { id: 'item_0', type: 'file_change', changes: [{ path: '/w/a.txt', kind: 'add' }], status: 'failed' } }]);
  });
});
