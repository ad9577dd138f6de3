import { describe, expect, it } from 'vitest';
import { ABORTED_OUTPUT, ConversationHistory } from '../lib/history/conversation-history.js';
import type { ResponseItem } from '../protocol/index.js';

const user = (text: string): ResponseItem => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
const call = (id: string): ResponseItem => ({ type: 'function_call', call_id: id, name: 'shell', arguments: '{}' });
const output = (id: string, text = 'ok'): ResponseItem => ({ type: 'function_call_output', call_id: id, output: text });

describe('ConversationHistory', () => {
  it('gives every call exactly one output in what the model is sent, and says what it repaired', () => {
    const history = new ConversationHistory([user('go'), call('a'), call('b'), output('b'), output('b', 'again'), output('ghost')]);
    const repairs: string[] = [];
    const prompt = history.forPrompt((detail) => repairs.push(detail));
    expect(prompt).toEqual([user('go'), call('a'), output('a', ABORTED_OUTPUT), call('b'), output('b')]);
    expect(repairs).toEqual(['call without output: a', 'dropped output without a matching call: b', 'dropped output without a matching call: ghost']);
    // The recorded history itself is untouched: repairs only shape the request.
    expect(history.length).toBe(6);
  });

  it('keeps its own frozen copies, so no caller can change the history behind its back', () => {
    const item = user('original');
    const history = new ConversationHistory();
    history.record(item);
    (item as { content: { text: string }[] }).content[0]!.text = 'changed by the caller';
    expect(history.items()[0]).toEqual(user('original'));
    expect(Object.isFrozen(history.items()[0])).toBe(true);
    history.replace([user('fresh')]);
    expect(history.forPrompt()).toEqual([user('fresh')]);
  });
});
