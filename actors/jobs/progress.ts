import type { EventOf } from '../../protocol/index.js';

export type JobProgress = Omit<EventOf<'agent_job_progress'>, 'type'>;

/** At most one progress event this often; a change in between is sent when the interval ends. */
export const PROGRESS_INTERVAL_MS = 250;

/**
 * Sends `agent_job_progress` on every change of an item's state, coalescing the changes of one
 * interval into one event (the last state wins), so a job of thousands of items does not flood
 * its parent's stream. `flush` sends the current state at once (a job's first and last events).
 */
export class ProgressThrottle {
  #last = 0;
  #timer: NodeJS.Timeout | null = null;
  #lastSent: string | null = null;

  constructor(
    private readonly snapshot: () => JobProgress,
    private readonly send: (progress: JobProgress) => void,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  /** Something changed. */
  changed(): void {
    if (this.#timer) return;
    const wait = this.#last + this.intervalMs - Date.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush();
    }, wait);
  }

  /** Send the current state now (unless it is what was sent last). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#last = Date.now();
    const progress = this.snapshot();
    const key = JSON.stringify({ ...progress, eta_ms: null });
    if (key === this.#lastSent) return;
    this.#lastSent = key;
    this.send(progress);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/** One line for a terminal: `job 1a2b3c4d [████░░░░] 12/20 · 4 running · 1 failed · about 30s left`. */
export function progressLine(progress: JobProgress, width = 24): string {
  const done = progress.completed + progress.failed;
  const filled = progress.total === 0 ? width : Math.round((done / progress.total) * width);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  const parts = [`job ${progress.job_id.slice(0, 8)} [${bar}] ${done}/${progress.total}`];
  if (progress.status !== 'running') parts.push(progress.status);
  if (progress.running > 0) parts.push(`${progress.running} running`);
  if (progress.failed > 0) parts.push(`${progress.failed} failed`);
  if (progress.status === 'running' && progress.eta_ms !== null) parts.push(`about ${formatDuration(progress.eta_ms)} left`);
  return parts.join(' · ');
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
