import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventMsg, ResponseItem, RolloutLine, SessionMeta } from '../protocol/index.js';
import {
  findRolloutBySessionId,
  forkHistory,
  historyFromRollout,
  isRealUserMessage,
  listSessions,
  readRollout,
  RolloutError,
  RolloutRecorder,
  rolloutPath,
  shouldPersistEvent,
  troupeHome,
  type RolloutItem,
} from '../lib/rollout/index.js';

let home: string;
let savedHome: string | undefined;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'troupe-rollout-'));
  savedHome = process.env.TROUPE_HOME;
  process.env.TROUPE_HOME = home;
});

afterEach(async () => {
  if (savedHome === undefined) delete process.env.TROUPE_HOME;
  else process.env.TROUPE_HOME = savedHome;
  await rm(home, { recursive: true, force: true });
});

function meta(sessionId: string, createdAt: Date): SessionMeta {
  return {
    session_id: sessionId,
    created_at: createdAt.toISOString(),
    cwd: '/tmp/project',
    model: 'test-model',
    parent_session_id: null,
    depth: 0,
    config: { model: 'test-model', cwd: '/tmp/project' },
  };
}

const user = (text: string): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const assistant = (text: string): ResponseItem => ({
  type: 'message',
  role: 'assistant',
  content: [{ type: 'output_text', text }],
});
const item = (payload: ResponseItem): RolloutItem => ({ type: 'response_item', payload });
const event = (payload: EventMsg): RolloutItem => ({ type: 'event_msg', payload });

async function fileLines(path: string): Promise<Array<{ timestamp: string; type: string; payload: Record<string, unknown> }>> {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { timestamp: string; type: string; payload: Record<string, unknown> });
}

async function newSession(id: string, createdAt: Date, items: RolloutItem[] = []): Promise<string> {
  const path = rolloutPath(troupeHome(), id, createdAt);
  const recorder = RolloutRecorder.create(path, meta(id, createdAt));
  recorder.record(...items);
  await recorder.close();
  return path;
}

describe('paths', () => {
  it('uses TROUPE_HOME, else ~/.troupe', () => {
    expect(troupeHome()).toBe(home);
    expect(troupeHome({ HOME: '/home/someone' })).toMatch(/\.troupe$/);
    expect(troupeHome({ TROUPE_HOME: '/srv/troupe' })).toBe('/srv/troupe');
  });

  it('lays rollouts out by UTC date with a colon-free timestamp', () => {
    const path = rolloutPath('/h', '0199a-b2c3', new Date('2026-11-22T02:04:25.678Z'));
    expect(path).toBe('/h/sessions/2026/11/22/rollout-2026-11-22T02-04-25-0199a-b2c3.jsonl');
  });

  it('refuses session ids that would escape the sessions directory', () => {
    expect(() => rolloutPath('/h', '../evil', new Date())).toThrow(RolloutError);
    expect(() => rolloutPath('/h', '', new Date())).toThrow(RolloutError);
  });
});

describe('RolloutRecorder', () => {
  it('writes session_meta first, then every line in record order under concurrent records', async () => {
    const path = rolloutPath(home, 's-order', new Date());
    const recorder = RolloutRecorder.create(path, meta('s-order', new Date()));
    // The order of record calls is the ground truth; capture it as independent tasks interleave.
    const expected: string[] = [];
    const original = recorder.record.bind(recorder);
    recorder.record = (...items: RolloutItem[]) => {
      for (const it of items) if (it.type === 'event_msg' && it.payload.type === 'agent_message') expected.push(it.payload.message);
      original(...items);
    };
    const writers = Array.from({ length: 20 }, (_, w) =>
      (async () => {
        for (let i = 0; i < 25; i += 1) {
          recorder.record(event({ type: 'agent_message', message: `w${w}-${i}` }));
          if (i % 3 === w % 3) await new Promise<void>((resolve) => setImmediate(resolve));
        }
      })(),
    );
    await Promise.all(writers);
    const flushes = [recorder.flush(), recorder.flush()];
    recorder.record(item(assistant('last')));
    await Promise.all(flushes);
    await recorder.close();

    const lines = await fileLines(path);
    expect(lines[0]?.type).toBe('session_meta');
    expect(lines[0]?.payload.session_id).toBe('s-order');
    const messages = lines.filter((l) => l.type === 'event_msg').map((l) => l.payload.message);
    expect(messages).toHaveLength(500);
    expect(messages).toEqual(expected);
    // The tasks really did interleave, so the order above was not trivially sequential.
    expect(expected.slice(0, 25).every((m) => m.startsWith('w0-'))).toBe(false);
    expect(lines.at(-1)?.type).toBe('response_item');
    for (const line of lines) expect(typeof line.timestamp).toBe('string');
  });

  it('keeps a strict order for lines recorded from one caller, even across many batches', async () => {
    const path = rolloutPath(home, 's-seq', new Date());
    const recorder = RolloutRecorder.create(path, meta('s-seq', new Date()));
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 300; i += 1) {
      recorder.record(event({ type: 'background_event', message: String(i) }));
      if (i % 37 === 0) pending.push(recorder.flush());
    }
    await Promise.all(pending);
    await recorder.close();
    const lines = await fileLines(path);
    expect(lines.slice(1).map((l) => Number(l.payload.message))).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('does not persist streaming deltas or session lists', async () => {
    expect(shouldPersistEvent({ type: 'agent_message_delta', delta: 'x' })).toBe(false);
    expect(shouldPersistEvent({ type: 'agent_reasoning_delta', delta: 'x' })).toBe(false);
    expect(shouldPersistEvent({ type: 'exec_command_output_delta', call_id: 'c', stream: 'stdout', chunk: 'x' })).toBe(false);
    expect(shouldPersistEvent({ type: 'session_list', sessions: [] })).toBe(false);
    expect(shouldPersistEvent({ type: 'agent_message', message: 'x' })).toBe(true);
    expect(shouldPersistEvent({ type: 'user_message', message: 'x' })).toBe(true);

    const path = await newSession('s-delta', new Date(), [
      event({ type: 'agent_message_delta', delta: 'he' }),
      event({ type: 'exec_command_output_delta', call_id: 'c1', stream: 'stdout', chunk: 'out' }),
      event({ type: 'agent_reasoning_delta', delta: 'hm' }),
      event({ type: 'agent_message', message: 'hello' }),
    ]);
    const lines = await fileLines(path);
    expect(lines.map((l) => l.type)).toEqual(['session_meta', 'event_msg']);
    expect(lines[1]?.payload).toEqual({ type: 'agent_message', message: 'hello' });
  });

  it('flush resolves with everything recorded on disk; close stops recording', async () => {
    const path = rolloutPath(home, 's-flush', new Date());
    const recorder = RolloutRecorder.create(path, meta('s-flush', new Date()));
    recorder.record(item(user('hi')), {
      type: 'turn_context',
      payload: { turn_id: 't1', cwd: '/tmp', model: 'm', approval_policy: 'never', sandbox_policy: 'read-only' },
    });
    await recorder.flush();
    expect((await fileLines(path)).map((l) => l.type)).toEqual(['session_meta', 'response_item', 'turn_context']);
    await recorder.flush(); // nothing pending: resolves at once
    await recorder.close();
    await recorder.close(); // idempotent

    expect(() => recorder.record(item(user('too late')))).not.toThrow();
    await expect(recorder.flush()).rejects.toThrow(/closed/);
    expect(await fileLines(path)).toHaveLength(3);
  });

  it('surfaces a bad payload from flush, naming the field, and keeps writing good lines', async () => {
    const path = rolloutPath(home, 's-bad', new Date());
    const recorder = RolloutRecorder.create(path, meta('s-bad', new Date()));
    const bad = { type: 'event_msg', payload: { type: 'agent_message', message: 42 } } as unknown as RolloutItem;
    expect(() => recorder.record(item(user('before')), bad, item(user('after')))).not.toThrow();
    const error = await recorder.flush().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RolloutError);
    expect((error as RolloutError).message).toMatch(/payload\.message/);
    expect((error as RolloutError).path).toBe(path);
    // Reported once: the next flush is clean.
    await expect(recorder.flush()).resolves.toBeUndefined();
    await recorder.close();
    const lines = await fileLines(path);
    expect(lines.map((l) => l.type)).toEqual(['session_meta', 'response_item', 'response_item']);
    expect(lines.some((l) => l.payload.message === 42)).toBe(false);
  });

  it('writes a payload as it was when recorded, and judges it by that, whatever happens to it afterwards', async () => {
    const path = rolloutPath(home, 's-later', new Date());
    const recorder = RolloutRecorder.create(path, meta('s-later', new Date()));
    const changed = { type: 'agent_message', message: 'as recorded' };
    const broken = { type: 'agent_message', message: 7 };
    recorder.record({ type: 'event_msg', payload: changed as EventMsg }, { type: 'event_msg', payload: broken as unknown as EventMsg });
    // Both change before the writer has run: the first into an invalid event, the second into a valid one.
    changed.message = 42 as unknown as string;
    broken.message = 'mended too late' as unknown as number;
    await expect(recorder.flush()).rejects.toThrow(/payload\.message/);
    await recorder.close();
    const lines = await fileLines(path);
    expect(lines.map((l) => l.payload.message ?? null)).toEqual([null, 'as recorded']);
  });

  it('refuses an invalid session_meta and an existing file at create', async () => {
    const path = rolloutPath(home, 's-meta', new Date());
    const broken = { ...meta('s-meta', new Date()), depth: -1 };
    expect(() => RolloutRecorder.create(path, broken)).toThrow(/payload\.depth/);
    const first = RolloutRecorder.create(path, meta('s-meta', new Date()));
    await first.ready;
    await first.close();
    const second = RolloutRecorder.create(path, meta('s-meta', new Date()));
    await expect(second.ready).rejects.toThrow(RolloutError);
    await expect(second.close()).rejects.toThrow(RolloutError);
  });

  it('makes the day directory again when it was removed after an earlier session made it', async () => {
    const createdAt = new Date();
    const first = await newSession('s-dir-1', createdAt);
    await rm(join(first, '..'), { recursive: true });
    const second = await newSession('s-dir-2', createdAt);
    expect((await fileLines(second)).map((l) => l.payload.session_id)).toEqual(['s-dir-2']);
  });

  it('open() appends to an existing rollout, after a torn last line if there is one', async () => {
    const path = await newSession('s-resume', new Date(), [item(user('first'))]);
    const resumed = await RolloutRecorder.open(path);
    resumed.record(item(assistant('second')));
    await resumed.close();
    const lines = await fileLines(path);
    expect(lines.map((l) => l.type)).toEqual(['session_meta', 'response_item', 'response_item']);
    expect(lines.filter((l) => l.payload.session_id === 's-resume')).toHaveLength(1);

    await appendFile(path, '{"timestamp":"2026-01-01T00:00:00.000Z","type":"respo');
    const again = await RolloutRecorder.open(path);
    again.record(item(user('third')));
    await again.close();
    const rollout = await readRollout(path);
    expect(rollout.skipped).toHaveLength(1);
    expect(historyFromRollout(rollout.lines)).toEqual([user('first'), assistant('second'), user('third')]);

    await expect(RolloutRecorder.open(join(home, 'missing.jsonl'))).rejects.toThrow(RolloutError);
  });
});

describe('readRollout', () => {
  it('tolerates a torn last line and reports it', async () => {
    const path = await newSession('s-torn', new Date(), [item(user('hello')), item(assistant('hi'))]);
    await appendFile(path, '{"timestamp":"2026-01-01T00:00:00.000Z","type":"response_item","payload":{"type":"mess');
    const rollout = await readRollout(path);
    expect(rollout.meta.session_id).toBe('s-torn');
    expect(rollout.lines.map((l) => l.type)).toEqual(['session_meta', 'response_item', 'response_item']);
    expect(rollout.skipped).toHaveLength(1);
    expect(rollout.skipped[0]?.line).toBe(4);
    expect(rollout.skipped[0]?.error).toMatch(/JSON/);
  });

  it('skips a line that parses but does not validate, naming the field', async () => {
    const path = await newSession('s-invalid', new Date(), [item(user('hello'))]);
    await appendFile(path, `${JSON.stringify({ timestamp: 'x', type: 'event_msg', payload: { type: 'agent_message' } })}\n`);
    const rollout = await readRollout(path);
    expect(rollout.skipped).toEqual([{ line: 3, error: expect.stringMatching(/payload\.message/) }]);
  });

  it('fails clearly without a session_meta first line', async () => {
    const path = join(home, 'no-meta.jsonl');
    await writeFile(path, `${JSON.stringify({ timestamp: 't', type: 'response_item', payload: user('x') })}\n`);
    await expect(readRollout(path)).rejects.toThrow(RolloutError);
    await expect(readRollout(path)).rejects.toThrow(path);
    await writeFile(path, '');
    await expect(readRollout(path)).rejects.toThrow(/no-meta\.jsonl/);
    await expect(readRollout(join(home, 'absent.jsonl'))).rejects.toThrow(/absent\.jsonl/);
  });
});

describe('historyFromRollout', () => {
  const ts = '2026-01-01T00:00:00.000Z';
  const r = (payload: ResponseItem): RolloutLine => ({ timestamp: ts, type: 'response_item', payload });

  it('is the response items in order, ignoring other lines', () => {
    const lines: RolloutLine[] = [
      { timestamp: ts, type: 'session_meta', payload: meta('s', new Date(ts)) },
      r(user('a')),
      { timestamp: ts, type: 'event_msg', payload: { type: 'agent_message', message: 'b' } },
      r(assistant('b')),
      { timestamp: ts, type: 'compacted', payload: { message: 'summary only' } },
      r(user('c')),
    ];
    expect(historyFromRollout(lines)).toEqual([user('a'), assistant('b'), user('c')]);
  });

  it('replaces everything before a compacted line that carries a replacement history', () => {
    const lines: RolloutLine[] = [
      r(user('a')),
      r(assistant('b')),
      { timestamp: ts, type: 'compacted', payload: { message: 's', replacement_history: [user('summary of a and b')] } },
      r(user('c')),
      { timestamp: ts, type: 'compacted', payload: { message: 's2', replacement_history: [user('s2'), user('c')] } },
      r(assistant('d')),
    ];
    expect(historyFromRollout(lines)).toEqual([user('s2'), user('c'), assistant('d')]);
  });

  it('round-trips through a real file', async () => {
    const path = await newSession('s-compact', new Date(), [
      item(user('a')),
      item(assistant('b')),
      { type: 'compacted', payload: { message: 'x', replacement_history: [user('sum')] } },
      item(user('c')),
    ]);
    const { lines } = await readRollout(path);
    expect(historyFromRollout(lines)).toEqual([user('sum'), user('c')]);
  });
});

describe('forkHistory', () => {
  const env = user('<environment_context>\n  <cwd>/tmp</cwd>\n</environment_context>');
  const instructions = user('<user_instructions>be nice</user_instructions>');
  const action = user('<user_action>review</user_action>');
  const call: ResponseItem = { type: 'function_call', call_id: 'c1', name: 'shell', arguments: '{}' };
  const output: ResponseItem = { type: 'function_call_output', call_id: 'c1', output: 'ok' };
  const history: ResponseItem[] = [
    instructions,
    env,
    user('first'),
    call,
    output,
    assistant('done 1'),
    action,
    user('second'),
    assistant('done 2'),
    user('third'),
    assistant('done 3'),
  ];

  it('cuts before the nth real user message', () => {
    expect(forkHistory(history, 0)).toEqual([instructions, env]);
    expect(forkHistory(history, 1)).toEqual([instructions, env, user('first'), call, output, assistant('done 1'), action]);
    expect(forkHistory(history, 2)).toEqual(history.slice(0, 9));
  });

  it('keeps everything when nth is omitted or beyond the last user message', () => {
    expect(forkHistory(history)).toEqual(history);
    expect(forkHistory(history, 3)).toEqual(history);
    expect(forkHistory(history, 99)).toEqual(history);
    expect(forkHistory([], 0)).toEqual([]);
    expect(forkHistory(history)).not.toBe(history);
  });

  it('rejects a negative nth', () => {
    expect(() => forkHistory(history, -1)).toThrow(RangeError);
  });

  it('tells real user messages from injected context', () => {
    expect(isRealUserMessage(user('hello'))).toBe(true);
    expect(isRealUserMessage(env)).toBe(false);
    expect(isRealUserMessage(instructions)).toBe(false);
    expect(isRealUserMessage(action)).toBe(false);
    expect(isRealUserMessage(assistant('<environment_context>'))).toBe(false);
    expect(isRealUserMessage(call)).toBe(false);
    expect(isRealUserMessage({ type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:' }] })).toBe(true);
    expect(
      isRealUserMessage({
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_image', image_url: 'data:' },
          { type: 'input_text', text: '<environment_context></environment_context>' },
        ],
      }),
    ).toBe(false);
  });
});

describe('findRolloutBySessionId', () => {
  it('finds a rollout by id alone, without confusing ids that share a suffix', async () => {
    const a = await newSession('019a-1234', new Date('2026-03-01T10:00:00Z'));
    const b = await newSession('1234', new Date('2026-04-02T11:00:00Z'));
    expect(await findRolloutBySessionId(home, '019a-1234')).toBe(a);
    expect(await findRolloutBySessionId(home, '1234')).toBe(b);
    expect(await findRolloutBySessionId(home, 'nope')).toBeNull();
    expect(await findRolloutBySessionId(home, '../1234')).toBeNull();
    expect(await findRolloutBySessionId(join(home, 'elsewhere'), '1234')).toBeNull();
  });
});

describe('listSessions', () => {
  it('lists newest first with the first user message, skipping unreadable files', async () => {
    const old = await newSession('s-old', new Date('2025-12-31T23:59:59.000Z'), [event({ type: 'user_message', message: 'old question' })]);
    const mid = await newSession('s-mid', new Date('2026-02-01T08:00:00.100Z'), [
      item(user('<environment_context></environment_context>')),
      event({ type: 'task_started', turn_id: 't', model_context_window: null }),
      event({ type: 'user_message', message: 'first question' }),
      event({ type: 'user_message', message: 'second question' }),
    ]);
    // Same second as s-mid, later by milliseconds: the meta decides the order.
    const midLater = await newSession('s-mid-later', new Date('2026-02-01T08:00:00.900Z'));
    const fresh = await newSession('s-new', new Date('2026-06-15T12:00:00.000Z'), [
      event({ type: 'agent_message', message: 'user_message is mentioned here but is not one' }),
    ]);
    const junkDir = join(home, 'sessions', '2026', '07', '01');
    await mkdir(junkDir, { recursive: true });
    await writeFile(join(junkDir, 'rollout-2026-07-01T00-00-00-s-junk.jsonl'), 'not json\n');
    await writeFile(join(junkDir, 'notes.txt'), 'ignored');

    const all = await listSessions(home);
    expect(all.map((s) => s.session_id)).toEqual(['s-new', 's-mid-later', 's-mid', 's-old']);
    expect(all.map((s) => s.rollout_path)).toEqual([fresh, midLater, mid, old]);
    expect(all.map((s) => s.first_user_message)).toEqual([null, null, 'first question', 'old question']);
    expect(all[0]?.created_at).toBe('2026-06-15T12:00:00.000Z');

    expect((await listSessions(home, { limit: 2 })).map((s) => s.session_id)).toEqual(['s-new', 's-mid-later']);
    expect((await listSessions(home, { limit: 1 })).map((s) => s.session_id)).toEqual(['s-new']);
    expect(await listSessions(home, { limit: 0 })).toEqual([]);
  });

  it('returns nothing when there is no sessions directory', async () => {
    expect(await listSessions(join(home, 'nothing-here'))).toEqual([]);
  });
});
