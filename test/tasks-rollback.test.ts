import { describe, expect, it } from 'vitest';
import type { ResponseItem } from '../protocol/index.js';
import { isRealUserMessage } from '../lib/rollout/reader.js';
import { buildCompactedHistory } from '../actors/tasks/compact/index.js';
import { dropLastUserTurns } from '../actors/tasks/rollback.js';
import { undoNoticeMessage } from '../actors/tasks/undo.js';
import { userShellRecord } from '../actors/tasks/user-shell.js';
import { isUserTurnStart, USER_SHELL_PREFIX } from '../actors/tasks/user-turns.js';

const developer = (text: string): ResponseItem => ({ type: 'message', role: 'developer', content: [{ type: 'input_text', text }] });
const user = (text: string): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const assistant = (text: string): ResponseItem => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
const call = (id: string): ResponseItem => ({ type: 'function_call', call_id: id, name: 'shell', arguments: '{}' });
const output = (id: string): ResponseItem => ({ type: 'function_call_output', call_id: id, output: 'ok' });
const env = user('<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>');
const textOf = (item: ResponseItem | undefined): string => (item?.type === 'message' ? item.content.map((p) => ('text' in p ? p.text : '')).join('') : '');

const initial = [developer('rules'), env];
const turn1 = [user('one'), assistant('a1')];
const shell = userShellRecord('git status', { exitCode: 0, output: 'clean' });
const turn2 = [user('two'), call('c2'), output('c2'), assistant('a2'), user('<user_action>review</user_action>')];
const turn3 = [user('three'), assistant('a3')];
const history = [...initial, ...turn1, ...shell, ...turn2, ...turn3];

describe('dropLastUserTurns', () => {
  it('drops the last turn with everything after its user message', () => {
    expect(dropLastUserTurns(history, 1)).toEqual({ history: [...initial, ...turn1, ...shell, ...turn2], dropped: 1 });
  });

  it('drops several turns; injected messages inside a turn go with it', () => {
    expect(dropLastUserTurns(history, 2)).toEqual({ history: [...initial, ...turn1, ...shell], dropped: 2 });
  });

  it('asked for more turns than exist, keeps only the initial context', () => {
    expect(dropLastUserTurns(history, 3)).toEqual({ history: initial, dropped: 3 });
    expect(dropLastUserTurns(history, 10)).toEqual({ history: initial, dropped: 3 });
    expect(dropLastUserTurns(initial, 1)).toEqual({ history: initial, dropped: 0 });
  });

  it('zero turns changes nothing; a negative or fractional count is refused', () => {
    expect(dropLastUserTurns(history, 0)).toEqual({ history, dropped: 0 });
    expect(() => dropLastUserTurns(history, -1)).toThrow(RangeError);
    expect(() => dropLastUserTurns(history, 1.5)).toThrow(RangeError);
  });

  it('does not reach behind a compaction, and never drops the summary', () => {
    const compacted = buildCompactedHistory({ initialContext: initial, history, summary: 'S', userMessageTokenBudget: 1000 });
    expect(dropLastUserTurns(compacted, 1)).toEqual({ history: compacted, dropped: 0 });
    const later = [...compacted, user('four'), assistant('a4'), user('five'), assistant('a5')];
    expect(dropLastUserTurns(later, 5)).toEqual({ history: compacted, dropped: 2 });
  });

  it('does not modify its input', () => {
    const copy = structuredClone(history);
    dropLastUserTurns(history, 2);
    expect(history).toEqual(copy);
  });
});

describe('userShellRecord', () => {
  it('records the command and its output as one injected user message', () => {
    const items = userShellRecord('npm test', { exitCode: 1, output: 'FAIL src/a.test.ts\n', durationMs: 1234, cwd: '/repo' });
    expect(items).toHaveLength(1);
    const [item] = items;
    expect(item).toMatchObject({ type: 'message', role: 'user' });
    const text = textOf(item);
    expect(text.startsWith(USER_SHELL_PREFIX)).toBe(true);
    expect(text).toContain('<command>\nnpm test\n</command>');
    expect(text).toContain('exit code: 1');
    expect(text).toContain('duration: 1.2 s');
    expect(text).toContain('<cwd>/repo</cwd>');
    expect(text).toContain('FAIL src/a.test.ts');
    expect(text.trimEnd().endsWith('</user_shell_command>')).toBe(true);
    expect(isUserTurnStart(item!)).toBe(false);
  });

  it('bounds a huge output, keeping its start and end', () => {
    const huge = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n');
    const text = textOf(userShellRecord('seq 5000', { exitCode: null, output: huge })[0]);
    expect(text).toContain('line 0\n');
    expect(text).toContain('line 4999');
    expect(text.length).toBeLessThan(12_000);
    expect(text).toContain('exit code: none');
  });
});

describe('undoNoticeMessage', () => {
  it('is injected context telling the model the files went back', () => {
    const notice = undoNoticeMessage();
    expect(isRealUserMessage(notice)).toBe(false);
    expect(textOf(notice)).toMatch(/^<user_action>/);
    expect(textOf(notice)).toMatch(/undid the previous turn/);
  });
});
