import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TranscriptRenderer } from '../cli/render.js';
import { progressLine, ProgressThrottle, type JobProgress } from '../actors/jobs/progress.js';
import { waitFor } from './support/wait.js';

const progress = (over: Partial<JobProgress>): JobProgress => ({
  job_id: '9e1c7f0a-2b3d-4e5f-8a9b-0c1d2e3f4a5b',
  status: 'running',
  total: 20,
  pending: 12,
  running: 4,
  completed: 3,
  failed: 1,
  eta_ms: 26_000,
  ...over,
});

describe('job progress', () => {
  it('is one line: a bar, done of total, running, failed, time left', () => {
    expect(progressLine(progress({}), 10)).toBe('job 9e1c7f0a [██░░░░░░░░] 4/20 · 4 running · 1 failed · about 26s left');
    expect(progressLine(progress({ status: 'completed', pending: 0, running: 0, completed: 19, eta_ms: 0 }), 10)).toBe(
      'job 9e1c7f0a [██████████] 20/20 · completed · 1 failed',
    );
    expect(progressLine(progress({ eta_ms: 3_723_000 }), 10)).toContain('about 1h02m left');
  });

  it('the transcript shows a job once when it starts and once when it ends, when it cannot redraw a line', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const renderer = new TranscriptRenderer(out as unknown as NodeJS.WriteStream);
    const event = (p: JobProgress) => ({ id: 't', session_id: 's', seq: 1, msg: { type: 'agent_job_progress' as const, ...p } });
    renderer.render(event(progress({ completed: 0, failed: 0, pending: 16, eta_ms: null })));
    renderer.render(event(progress({})));
    renderer.render(event(progress({ status: 'completed', pending: 0, running: 0, completed: 20, failed: 0, eta_ms: 0 })));
    renderer.close();
    expect(text.trim().split('\n')).toEqual([
      expect.stringMatching(/^job 9e1c7f0a \[░+\] 0\/20 · 4 running$/),
      expect.stringMatching(/^job 9e1c7f0a \[█+\] 20\/20 · completed$/),
    ]);
  });

  it('coalesces changes: at most one event an interval, and the last state is always sent', async () => {
    let state = progress({ completed: 0 });
    const sent: JobProgress[] = [];
    const throttle = new ProgressThrottle(
      () => state,
      (p) => sent.push(p),
      50,
    );
    throttle.flush();
    for (let i = 1; i <= 5; i++) {
      state = progress({ completed: i });
      throttle.changed();
    }
    expect(sent.map((p) => p.completed)).toEqual([0]);
    await waitFor(() => sent.length === 2, 'the coalesced event');
    expect(sent.map((p) => p.completed)).toEqual([0, 5]);
    throttle.stop();
  });
});
