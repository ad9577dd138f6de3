import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorCode, EventMsg, errorCode, errorEvent, ProtocolError, parseOrThrow, TroupeError, UnknownSessionError } from '../protocol/index.js';
import { BusClosedError, NoRespondersError } from '../lib/bus/index.js';
import { UsageError } from '../cli/flags.js';
import { NotAGitRepoError } from '../lib/git/index.js';
import { ModelError } from '../lib/model/index.js';
import { SandboxUnavailableError } from '../lib/sandbox/index.js';
import { ReviewTargetError } from '../actors/tasks/review/index.js';
import { SessionError, ToolDefinitionError } from '../index.js';

describe('errorEvent: anything thrown as the protocol error event', () => {
  it.each(ErrorCode.options)('keeps a TroupeError with code %s', (code) => {
    const event = errorEvent(new TroupeError('it broke', { code }));
    expect(event).toEqual({ type: 'error', code, message: 'it broke' });
    expect(EventMsg.parse(event)).toEqual(event);
  });

  it('takes the code each error class fixes, or the one it was given', () => {
    expect(errorEvent(new ProtocolError('op.type: invalid'))).toEqual({ type: 'error', code: 'bad_request', message: 'op.type: invalid' });
    expect(errorCode(new UsageError('--model: needs a value'))).toBe('bad_request');
    expect(errorCode(new ToolDefinitionError('bad tool'))).toBe('bad_request');
    expect(errorCode(new ReviewTargetError('no_commits', 'nothing to review'))).toBe('bad_request');
    expect(errorCode(new NotAGitRepoError('/tmp/x'))).toBe('internal');
    expect(errorCode(new SandboxUnavailableError('no bwrap'))).toBe('sandbox_error');
    expect(errorCode(new NoRespondersError('troupe.x'))).toBe('internal');
    expect(errorCode(new BusClosedError())).toBe('internal');
    expect(errorCode(new ModelError('too long', 'context_window_exceeded', false))).toBe('context_window_exceeded');
    expect(errorCode(new SessionError('refused', 'unauthorized'))).toBe('unauthorized');
    expect(errorEvent(new UnknownSessionError('s1'))).toEqual({ type: 'error', code: 'unknown_session', message: 'unknown session s1' });
    // A subclass is still an Error of its own name, and a TroupeError.
    const usage = new UsageError('x');
    expect(usage).toBeInstanceOf(Error);
    expect(usage).toBeInstanceOf(TroupeError);
    expect(usage.name).toBe('UsageError');
  });

  it('puts the context before the message', () => {
    expect(errorEvent(new TroupeError('no user turn to drop', { code: 'bad_request' }), 'thread_rollback')).toEqual({
      type: 'error',
      code: 'bad_request',
      message: 'thread_rollback: no user turn to drop',
    });
  });

  it('reports a zod error as bad_request naming each bad field', () => {
    const Shape = z.object({ op: z.object({ cwd: z.string().startsWith('/', 'must be an absolute path'), n: z.number() }) });
    const parsed = Shape.safeParse({ op: { cwd: 'rel', n: 'one' } });
    expect(parsed.success).toBe(false);
    const event = errorEvent(parsed.error, 'invalid submission');
    expect(event.code).toBe('bad_request');
    expect(event.message).toMatch(/^invalid submission: op\.cwd: must be an absolute path; op\.n: /);
    // parseOrThrow's ProtocolError says the same, with its issues.
    const thrown = (() => {
      try {
        return parseOrThrow(Shape, { op: { cwd: 'rel', n: 1 } }, 'config');
      } catch (error) {
        return error;
      }
    })();
    expect(thrown).toBeInstanceOf(ProtocolError);
    expect(errorEvent(thrown)).toEqual({ type: 'error', code: 'bad_request', message: 'config.op.cwd: must be an absolute path' });
  });

  it('reports anything else as internal, with what it says', () => {
    expect(errorEvent(new TypeError('x is not a function'))).toEqual({ type: 'error', code: 'internal', message: 'x is not a function' });
    expect(errorEvent('a string thrown')).toEqual({ type: 'error', code: 'internal', message: 'a string thrown' });
    expect(errorEvent(undefined, 'the task failed')).toEqual({ type: 'error', code: 'internal', message: 'the task failed: undefined' });
    expect(errorEvent({ weird: true }).code).toBe('internal');
    expect(errorEvent(new TroupeError('no code given')).code).toBe('internal');
  });

  it('keeps causes, and a plain error takes the code of the TroupeError that caused it', () => {
    const root = new SandboxUnavailableError('bubblewrap is missing');
    const wrapped = new TroupeError('the sandbox could not start', { cause: root, code: 'sandbox_error' });
    expect(wrapped.cause).toBe(root);
    const plain = new Error('the tool failed', { cause: new Error('spawning failed', { cause: root }) });
    expect(errorEvent(plain)).toEqual({ type: 'error', code: 'sandbox_error', message: 'the tool failed' });
    // The outermost TroupeError decides, not one deeper down.
    const outer = new TroupeError('the session could not open', { cause: new UsageError('bad flag') });
    expect(errorCode(outer)).toBe('internal');
    // A cycle of causes ends.
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(errorCode(a)).toBe('internal');
    // Options without a cause leave none.
    expect('cause' in new TroupeError('x', { code: 'bad_request' })).toBe(false);
  });
});
