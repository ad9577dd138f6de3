/**
 * The cumulative diff of a turn (`turn_diff`): what every file the turn's patches touched
 * looked like the first time, against what is on disk now. Comparing with the disk rather than
 * replaying patches means edits made some other way (a shell command) between two patches to
 * a tracked file show up too.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileChange } from '../../../protocol/index.js';
import { loadHunks, type Hunks } from './hunks.js';

interface Baseline {
  /** Where the file was when first touched (differs from its current path after a move). */
  readonly origin: string;
  /** Its content then; null = it did not exist. */
  readonly content: string | null;
}

export class TurnDiffTracker {
  /** Keyed by the file's current path. */
  readonly #baselines = new Map<string, Baseline>();

  constructor(private readonly cwd: string) {}

  /** Record a successful patch: `before` holds each touched path's content before it. */
  track(before: ReadonlyMap<string, string | null>, changes: Record<string, FileChange>): void {
    for (const [file, change] of Object.entries(changes)) {
      const source = path.resolve(file);
      const destination = change.type === 'update' && change.move_path !== undefined ? path.resolve(change.move_path) : undefined;
      if (destination === undefined || destination === source) {
        this.#remember(source, before);
        continue;
      }
      const destinationExisted = this.#baselines.has(destination) || (before.get(destination) ?? null) !== null;
      if (destinationExisted) {
        // The move overwrote a file: show it as the source deleted and the destination changed.
        this.#remember(source, before);
        this.#remember(destination, before);
        continue;
      }
      const baseline = this.#baselines.get(source) ?? { origin: source, content: before.get(source) ?? null };
      this.#baselines.delete(source);
      this.#baselines.set(destination, baseline);
    }
  }

  /** Git-style diff of every touched file whose content differs from its baseline. */
  async unifiedDiff(): Promise<string> {
    const entries = [...this.#baselines].sort(([a], [b]) => compare(this.#rel(a), this.#rel(b)));
    const parts: string[] = [];
    const hunks = await loadHunks();
    for (const [current, baseline] of entries) {
      const now = await readCurrent(current);
      const part = this.#diffOne(hunks, baseline, current, now);
      if (part !== '') parts.push(part);
    }
    return parts.join('');
  }

  #remember(file: string, before: ReadonlyMap<string, string | null>): void {
    if (!this.#baselines.has(file)) this.#baselines.set(file, { origin: file, content: before.get(file) ?? null });
  }

  #diffOne(hunks: Hunks, baseline: Baseline, current: string, now: string | null): string {
    const moved = baseline.origin !== current;
    if (baseline.content === null && now === null) return '';
    if (!moved && baseline.content === now) return '';
    const oldRel = this.#rel(baseline.origin);
    const newRel = this.#rel(current);
    if (moved && baseline.content !== null && now !== null) {
      const header = `diff --git a/${oldRel} b/${newRel}\nrename from ${oldRel}\nrename to ${newRel}\n`;
      if (baseline.content === now) return header;
      return header + body(hunks, `a/${oldRel}`, `b/${newRel}`, baseline.content, now);
    }
    if (baseline.content === null) {
      return `diff --git a/${newRel} b/${newRel}\nnew file mode 100644\n` + body(hunks, '/dev/null', `b/${newRel}`, '', now ?? '');
    }
    if (now === null) {
      // A moved file that has since disappeared is a deletion of where it came from.
      return `diff --git a/${oldRel} b/${oldRel}\ndeleted file mode 100644\n` + body(hunks, `a/${oldRel}`, '/dev/null', baseline.content, '');
    }
    return `diff --git a/${oldRel} b/${newRel}\n` + body(hunks, `a/${oldRel}`, `b/${newRel}`, baseline.content, now);
  }

  #rel(file: string): string {
    return path.relative(this.cwd, file).split(path.sep).join('/');
  }
}

/** `--- old`, `+++ new` and the hunks; nothing when both sides are empty. */
function body(hunks: Hunks, oldName: string, newName: string, before: string, after: string): string {
  const text = hunks(before, after);
  if (text.trim() === '') return '';
  return `--- ${oldName}\n+++ ${newName}\n${text}`;
}

async function readCurrent(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return null;
    throw error;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
