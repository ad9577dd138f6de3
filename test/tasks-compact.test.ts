import { describe, expect, it } from 'vitest';
import { ResponseItem } from '../protocol/index.js';
import { ConversationHistory } from '../lib/history/conversation-history.js';
import { isUserTurnStart } from '../actors/tasks/user-turns.js';
import {
  approxItemsTokens,
  approxTokens,
  buildCompactedHistory,
  initialContextOf,
  isSummaryBridge,
  keepTurnItems,
  lastAssistantText,
  SUMMARY_BRIDGE_PREFIX,
  SUMMARY_PROMPT,
  trimForSummarization,
  truncateMiddleToTokens,
} from '../actors/tasks/compact/index.js';

const developer = (text: string): ResponseItem => ({ type: 'message', role: 'developer', content: [{ type: 'input_text', text }] });
const user = (text: string): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const assistant = (text: string): ResponseItem => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
const call = (id: string, args = '{}'): ResponseItem => ({ type: 'function_call', call_id: id, name: 'shell', arguments: args });
const output = (id: string, text = 'ok'): ResponseItem => ({ type: 'function_call_output', call_id: id, output: text });
const env = user('<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>');
const textOf = (item: ResponseItem | undefined): string => (item?.type === 'message' ? item.content.map((p) => ('text' in p ? p.text : '')).join('') : '');

describe('approxTokens and truncateMiddleToTokens', () => {
  it('counts four characters a token, rounding up', () => {
    expect(approxTokens('')).toBe(0);
    expect(approxTokens('abcd')).toBe(1);
    expect(approxTokens('abcde')).toBe(2);
  });

  it('keeps both ends within the budget and says what was cut', () => {
    const text = `START ${'m'.repeat(5000)} END`;
    const cut = truncateMiddleToTokens(text, 100)!;
    expect(approxTokens(cut)).toBeLessThanOrEqual(100);
    expect(cut.startsWith('START ')).toBe(true);
    expect(cut.endsWith(' END')).toBe(true);
    expect(cut).toMatch(/\[… \d+ characters cut from the middle of this message …\]/);
    expect(truncateMiddleToTokens('short', 100)).toBe('short');
    expect(truncateMiddleToTokens(text, 5)).toBeNull();
  });

  it('never splits a surrogate pair', () => {
    const text = '😀'.repeat(3000);
    for (const budget of [60, 61, 62, 63]) {
      const cut = truncateMiddleToTokens(text, budget)!;
      expect(cut).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
    }
  });
});

describe('initialContextOf', () => {
  it('takes the leading developer and environment messages only', () => {
    const history = [developer('be careful'), env, user('<user_instructions>use tabs</user_instructions>'), user('fix it'), developer('later')];
    expect(initialContextOf(history)).toEqual(history.slice(0, 3));
    expect(initialContextOf([user('hi'), developer('x')])).toEqual([]);
    expect(initialContextOf([])).toEqual([]);
  });
});

describe('buildCompactedHistory', () => {
  const history = [
    developer('instructions'),
    env,
    user('first request'),
    assistant('first answer'),
    call('c1'),
    output('c1'),
    user('<user_action>review findings</user_action>'),
    user(`${SUMMARY_BRIDGE_PREFIX}\nold summary\n</conversation_summary>`),
    user('<user_shell_command>\nls\n</user_shell_command>'),
    user('second request'),
    assistant('second answer'),
    user('third request'),
    assistant('third answer'),
  ];

  it('is initial context, then the real user messages, then the bridge', () => {
    const compacted = buildCompactedHistory({ initialContext: initialContextOf(history), history, summary: 'WORK SO FAR', userMessageTokenBudget: 1000 });
    expect(compacted.slice(0, 2)).toEqual(history.slice(0, 2));
    expect(compacted.slice(2, 5).map(textOf)).toEqual(['first request', 'second request', 'third request']);
    expect(compacted).toHaveLength(6);
    const bridge = compacted[5]!;
    expect(isSummaryBridge(bridge)).toBe(true);
    expect(textOf(bridge).startsWith(SUMMARY_BRIDGE_PREFIX)).toBe(true);
    expect(textOf(bridge)).toMatch(/earlier part of this conversation was summarized/);
    expect(textOf(bridge)).toContain('WORK SO FAR');
    // No assistant output or tool traffic survives; every item is valid history.
    expect(compacted.some((item) => item.type !== 'message' || item.role === 'assistant')).toBe(false);
    for (const item of compacted) expect(ResponseItem.safeParse(item).success).toBe(true);
  });

  it('keeps the newest messages that fit, in order, and cuts the one that crosses the budget', () => {
    const long = `BEGIN ${'x'.repeat(4000)} FINISH`;
    const items = [user('oldest'), user(long), user('a'.repeat(40)), user('b'.repeat(40))];
    const compacted = buildCompactedHistory({ initialContext: [], history: items, summary: 's', userMessageTokenBudget: 120 });
    const texts = compacted.slice(0, -1).map(textOf);
    expect(texts).toHaveLength(3);
    expect(texts[1]).toBe('a'.repeat(40));
    expect(texts[2]).toBe('b'.repeat(40));
    expect(texts[0]!.startsWith('BEGIN ')).toBe(true);
    expect(texts[0]!.endsWith(' FINISH')).toBe(true);
    expect(texts.reduce((sum, t) => sum + approxTokens(t), 0)).toBeLessThanOrEqual(120);
    expect(texts).not.toContain('oldest');
  });

  it('keeps no user message with a zero budget, and says so when the summary is empty', () => {
    const compacted = buildCompactedHistory({ initialContext: [env], history, summary: '  ', userMessageTokenBudget: 0 });
    expect(compacted).toHaveLength(2);
    expect(textOf(compacted[1])).toMatch(/summary came back empty/);
  });

  it('compacts again cleanly: the old bridge is replaced, not kept as a user message', () => {
    const once = buildCompactedHistory({ initialContext: [env], history, summary: 'first summary', userMessageTokenBudget: 1000 });
    const later = [...once, user('fourth request'), assistant('fourth answer')];
    const twice = buildCompactedHistory({ initialContext: initialContextOf(later), history: later, summary: 'second summary', userMessageTokenBudget: 1000 });
    expect(twice.filter(isSummaryBridge)).toHaveLength(1);
    expect(textOf(twice.at(-1))).toContain('second summary');
    expect(twice.slice(1, -1).map(textOf)).toEqual(['first request', 'second request', 'third request', 'fourth request']);
  });

  it('drops images and keeps the text of a mixed message', () => {
    const mixed: ResponseItem = {
      type: 'message',
      role: 'user',
      content: [
        { type: 'input_text', text: 'what is wrong here?' },
        { type: 'input_image', image_url: 'data:image/png;base64,AAAA' },
      ],
    };
    const compacted = buildCompactedHistory({ initialContext: [], history: [mixed], summary: 's', userMessageTokenBudget: 100 });
    expect(compacted[0]).toEqual(user('what is wrong here?'));
  });

  it('the bridge is recognised as injected context, never as a user turn', () => {
    const [bridge] = buildCompactedHistory({ initialContext: [], history: [], summary: 's', userMessageTokenBudget: 0 });
    expect(isSummaryBridge(bridge!)).toBe(true);
    expect(isUserTurnStart(bridge!)).toBe(false);
  });
});

describe('keepTurnItems', () => {
  it('keeps every user message, and the newest calls with their outputs while they fit', () => {
    const big = 'x'.repeat(4000);
    const turn = [
      env,
      user('THE TASK'),
      call('a'),
      output('a', big),
      call('b'),
      output('b', 'small'),
      user('steer'),
      assistant('working'),
      call('c'),
      output('c', 'last'),
    ];
    const kept = keepTurnItems(turn, 200);
    expect(kept.map((item) => ('call_id' in item ? `${item.type}:${item.call_id}` : textOf(item)))).toEqual([
      textOf(env),
      'THE TASK',
      'function_call:b',
      'function_call_output:b',
      'steer',
      'working',
      'function_call:c',
      'function_call_output:c',
    ]);
    // A call is never kept without its output, nor an output without its call.
    const history = new ConversationHistory(keepTurnItems(turn, 0));
    expect(history.items().filter((item) => item.type === 'function_call' || item.type === 'function_call_output')).toEqual([]);
  });
});

describe('trimForSummarization', () => {
  const big = (n: number) => 'z'.repeat(n);

  it('drops the oldest items until under the limit, keeping the initial context', () => {
    const items = [developer('rules'), env, user(big(400)), assistant(big(400)), user('recent'), assistant('recent answer')];
    const limit = approxItemsTokens(items) - 150;
    const result = trimForSummarization(items, limit);
    expect(result.fits).toBe(true);
    expect(result.dropped).toBe(2);
    expect(result.items).toEqual([developer('rules'), env, user('recent'), assistant('recent answer')]);
    expect(approxItemsTokens(result.items)).toBeLessThanOrEqual(limit);
  });

  it('drops nothing when the history already fits', () => {
    const items = [env, user('a')];
    expect(trimForSummarization(items, 10_000)).toEqual({ items, dropped: 0, fits: true });
  });

  it('never separates a call from its output, even when they are not adjacent', () => {
    const items = [env, call('a', big(200)), call('b'), output('a', 'A'), output('b', big(200)), user('next'), assistant('done')];
    const result = trimForSummarization(items, approxItemsTokens(items) - 10);
    // Dropping call a must take output a along; call b stays with output b.
    expect(result.items).toEqual([env, call('b'), output('b', big(200)), user('next'), assistant('done')]);
    expect(result.dropped).toBe(2);
    const history = new ConversationHistory(result.items);
    const repairs: string[] = [];
    history.forPrompt((detail) => repairs.push(detail));
    expect(repairs).toEqual([]);
  });

  it('the retry loop terminates: each round drops something or reports that nothing is left', () => {
    let items: ResponseItem[] = [developer(big(2000))];
    for (let i = 0; i < 30; i += 1) items.push(user(`u${i} ${big(100)}`), call(`c${i}`), output(`c${i}`, big(300)), assistant(big(50)));
    let rounds = 0;
    // Simulate a provider whose window is smaller than even the initial context.
    for (;;) {
      rounds += 1;
      const limit = Math.floor(approxItemsTokens(items) * 0.75);
      const result = trimForSummarization(items, limit);
      if (result.dropped === 0) break;
      items = result.items;
      expect(rounds).toBeLessThan(200);
    }
    expect(items).toEqual([developer(big(2000))]);
    expect(trimForSummarization(items, 10).fits).toBe(false);
  });
});

describe('summary helpers', () => {
  it('the prompt asks for a handoff summary and lastAssistantText picks the answer', () => {
    expect(SUMMARY_PROMPT).toMatch(/summary/i);
    expect(SUMMARY_PROMPT).toMatch(/handoff/i);
    expect(lastAssistantText([user('q'), assistant('first'), call('x'), output('x'), assistant('the summary')])).toBe('the summary');
    expect(lastAssistantText([user('q')])).toBe('');
  });
});
