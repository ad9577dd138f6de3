/**
 * After any compaction, the request that follows carries what the turn is about: the user's
 * input of the current turn verbatim and, mid-turn, the calls and outputs the turn made so far,
 * beside the summary. Automatic at turn start, automatic mid-turn, manual, and across a resume.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SUMMARY_PROMPT } from '../../actors/tasks/index.js';
import { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { inputItems, inputTexts, mentions, outputFor } from '../../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});
afterEach(() => finishE2E({ model, server, workspace }));

const isSummary = (r: RecordedRequest) => inputTexts(r).at(-1) === SUMMARY_PROMPT;
const notSummary = (r: RecordedRequest) => !isSummary(r);
const say = (text: string, match?: (r: RecordedRequest) => boolean, usage?: { input_tokens: number; output_tokens: number }): ScriptStep => ({
  kind: 'response',
  items: [{ type: 'message', text }],
  ...(match ? { match } : {}),
  ...(usage ? { usage } : {}),
});
const lastNonSummary = () => model.requests.filter(notSummary).at(-1)!;
/** The position of the first input message containing `text`, or -1. */
const positionOf = (r: RecordedRequest, text: string) =>
  inputItems(r).findIndex((item) => item.type === 'message' && JSON.stringify(item.content).includes(text));

describe('compaction keeps the current turn', () => {
  it('automatic at turn start: the new question is in the next request, after the summary', async () => {
    model.enqueue(say('OLD ANSWER', notSummary, { input_tokens: 5000, output_tokens: 10 }), say('SUMMARY OF THE PAST', isSummary), say('answered', notSummary));
    const session = await server.newSession({ cwd: workspace, auto_compact_token_limit: 1000 });
    await server.turn(session, 'the first question');
    await server.turn(session, 'THE NEW QUESTION, verbatim');
    expect(model.requests.filter(isSummary)).toHaveLength(1);
    const next = lastNonSummary();
    expect(inputTexts(next)).toContain('THE NEW QUESTION, verbatim');
    expect(mentions(next, 'SUMMARY OF THE PAST')).toBe(true);
    expect(mentions(next, 'OLD ANSWER')).toBe(false);
    // The question is what the model reads last: after the summary, not before it.
    expect(positionOf(next, 'THE NEW QUESTION')).toBeGreaterThan(positionOf(next, 'SUMMARY OF THE PAST'));
  });

  it('automatic mid-turn: the question and the calls and outputs so far are kept', async () => {
    model.enqueue(
      {
        kind: 'response',
        match: (r) => notSummary(r) && outputFor(r, 'c1') === undefined,
        usage: { input_tokens: 5000, output_tokens: 10 },
        items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['echo', 'OUTPUT OF THE FIRST CALL'] } }],
      },
      say('MID-TURN SUMMARY', isSummary),
      say('done', notSummary),
    );
    const session = await server.newSession({ cwd: workspace, auto_compact_token_limit: 1000 });
    await server.turn(session, 'THE BIG TASK, verbatim');
    const next = lastNonSummary();
    expect(inputTexts(next)).toContain('THE BIG TASK, verbatim');
    expect(mentions(next, 'MID-TURN SUMMARY')).toBe(true);
    expect(inputItems(next).some((i) => i.type === 'function_call' && i.call_id === 'c1')).toBe(true);
    expect(outputFor(next, 'c1')).toContain('OUTPUT OF THE FIRST CALL');
  });

  it('manual: the next turn carries its question and the summary', async () => {
    model.enqueue(say('OLD ANSWER', notSummary), say('MANUAL SUMMARY', isSummary), say('next', notSummary));
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'before compacting');
    const id = server.submit({ type: 'compact' }, session);
    await server.waitForMsg('task_complete', { session, id });
    await server.turn(session, 'AFTER COMPACTING, verbatim');
    const next = lastNonSummary();
    expect(inputTexts(next)).toContain('AFTER COMPACTING, verbatim');
    expect(mentions(next, 'MANUAL SUMMARY')).toBe(true);
    expect(positionOf(next, 'AFTER COMPACTING')).toBeGreaterThan(positionOf(next, 'MANUAL SUMMARY'));
  });

  it('across a resume of a session compacted at turn start', async () => {
    model.enqueue(say('OLD ANSWER', notSummary, { input_tokens: 5000, output_tokens: 10 }), say('RESUMED SUMMARY', isSummary), say('answered', notSummary));
    const session = await server.newSession({ cwd: workspace, auto_compact_token_limit: 1000 });
    await server.turn(session, 'the first question');
    await server.turn(session, 'THE QUESTION BEFORE THE RESTART');
    expect(await server.end()).toBe(0);

    const resumed = await AppServerProcess.start({ modelUrl: model.url, home: server.home });
    try {
      const resumeId = resumed.submit({ type: 'resume_session', session_id: session });
      await resumed.waitForMsg('session_configured', { id: resumeId });
      model.enqueue(say('after the restart', notSummary));
      await resumed.turn(session, 'THE QUESTION AFTER THE RESTART');
      const next = lastNonSummary();
      const texts = inputTexts(next);
      expect(texts).toContain('THE QUESTION BEFORE THE RESTART');
      expect(texts).toContain('THE QUESTION AFTER THE RESTART');
      expect(mentions(next, 'RESUMED SUMMARY')).toBe(true);
      expect(mentions(next, 'OLD ANSWER')).toBe(false);
    } finally {
      await resumed.dispose();
    }
  });
});
