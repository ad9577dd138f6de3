/**
 * Applying a parsed patch to the file system: every file's new content is computed in memory
 * first, so a hunk that does not apply changes nothing; only then is anything written, and a
 * write that fails midway is undone, so a patch lands whole or not at all.
 */
import { chmod, mkdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileChange } from '../../../protocol/index.js';
import { loadHunks, type Hunks } from './hunks.js';
import { findLines } from './match.js';
import { hunkNewLines, hunkOldLines, parsePatch, type Hunk, type PatchOperation } from './parser.js';
import { TroupeError } from '../../../protocol/index.js';

export class PatchApplyError extends TroupeError {
  override readonly name = 'PatchApplyError';
  override readonly code = 'bad_request';
  /** The file the error is about, as the patch names it. */
  readonly path: string | undefined;

  constructor(message: string, filePath?: string, options?: ErrorOptions) {
    super(message, options);
    this.path = filePath;
  }
}

export interface PatchResult {
  /** By absolute path; a move is an `update` of the source with `move_path` set. */
  readonly changes: Record<string, FileChange>;
  /** What every touched path (move destinations included) held before; null = did not exist. */
  readonly before: Map<string, string | null>;
  readonly added: string[];
  readonly modified: string[];
  readonly deleted: string[];
}

/** A patch whose effect is computed but not yet written. */
export interface PreparedPatch extends PatchResult {
  /** Write it. Refuses (writing nothing) if `signal` is already aborted. */
  commit(options?: { signal?: AbortSignal | undefined }): Promise<PatchResult>;
}

export async function applyPatch(patchText: string, cwd: string, options?: { signal?: AbortSignal | undefined }): Promise<PatchResult> {
  const prepared = await preparePatch(patchText, cwd);
  return prepared.commit(options);
}

/** What the patch would change, without touching the disk. */
export async function previewPatch(patchText: string, cwd: string): Promise<PatchResult> {
  const { commit: _commit, ...result } = await preparePatch(patchText, cwd);
  return result;
}

/** Parse (throws PatchParseError) and compute every new file content (throws PatchApplyError). */
export async function preparePatch(patchText: string, cwd: string): Promise<PreparedPatch> {
  return prepareOperations(parsePatch(patchText), cwd);
}

export async function prepareOperations(operations: readonly PatchOperation[], cwd: string): Promise<PreparedPatch> {
  const files = new PendingFiles(cwd);
  for (const op of operations) await files.apply(op);
  const result = files.result(await loadHunks());
  return { ...result, commit: (options) => files.commit(result, options?.signal) };
}

/** The state of one file on disk when the patch was computed. */
interface Original {
  readonly content: string | null;
  readonly mode: number | undefined;
}

/** The files a patch touches: their original state, and their state after the operations so far. */
class PendingFiles {
  readonly #originals = new Map<string, Original>();
  readonly #current = new Map<string, string | null>();
  readonly #names = new Map<string, string>();
  /** source → destination of each move, to report a move rather than a delete and an add. */
  readonly #moves = new Map<string, string>();

  constructor(private readonly cwd: string) {}

  async apply(op: PatchOperation): Promise<void> {
    const target = this.#resolve(op.path);
    const content = await this.#read(target, op.path);
    switch (op.type) {
      case 'add':
        this.#current.set(target, op.content);
        return;
      case 'delete':
        if (content === null) throw new PatchApplyError(`cannot delete ${op.path}: the file does not exist`, op.path);
        this.#current.set(target, null);
        return;
      case 'update': {
        if (content === null) throw new PatchApplyError(`cannot update ${op.path}: the file does not exist`, op.path);
        const updated = applyHunks(content, op.hunks, op.path);
        if (op.moveTo === undefined) {
          this.#current.set(target, updated);
          return;
        }
        const destination = this.#resolve(op.moveTo);
        if (destination === target) {
          this.#current.set(target, updated);
          return;
        }
        await this.#read(destination, op.moveTo);
        this.#current.set(target, null);
        this.#current.set(destination, updated);
        this.#moves.set(target, destination);
        return;
      }
    }
  }

  result(hunks: Hunks): PatchResult {
    const changes: Record<string, FileChange> = {};
    const before = new Map<string, string | null>();
    const added: string[] = [];
    const modified: string[] = [];
    const deleted: string[] = [];
    // A move is reported once, on its source; its destination is not a change of its own.
    const destinations = new Map<string, string>();
    for (const [file, original] of this.#originals) {
      before.set(file, original.content);
      const destination = original.content !== null && this.#final(file) === null ? this.#moveDestination(file) : undefined;
      if (destination !== undefined) destinations.set(file, destination);
    }
    const claimed = new Set(destinations.values());
    for (const [file, original] of this.#originals) {
      if (claimed.has(file)) continue;
      const now = this.#final(file);
      const destination = destinations.get(file);
      if (original.content !== null && destination !== undefined) {
        const moved = this.#final(destination) ?? '';
        changes[file] = { type: 'update', unified_diff: hunksOnly(hunks, original.content, moved), move_path: destination };
        modified.push(destination);
      } else if (original.content === null && now !== null) {
        changes[file] = { type: 'add', content: now };
        added.push(file);
      } else if (original.content !== null && now === null) {
        changes[file] = { type: 'delete' };
        deleted.push(file);
      } else if (original.content !== null && now !== null) {
        changes[file] = { type: 'update', unified_diff: hunksOnly(hunks, original.content, now) };
        modified.push(file);
      }
    }
    return { changes, before, added, modified, deleted };
  }

  async commit(result: PatchResult, signal: AbortSignal | undefined): Promise<PatchResult> {
    if (signal?.aborted) throw new PatchApplyError('the call was aborted before anything was written', undefined, { cause: signal.reason });
    const moveSources = new Map([...this.#moves].map(([from, to]) => [to, from]));
    const touched = [...this.#originals.keys()].filter((file) => this.#final(file) !== this.#originals.get(file)?.content);
    // Writes before deletions: a failing write then happens before anything was removed.
    const order = [...touched.filter((f) => this.#final(f) !== null), ...touched.filter((f) => this.#final(f) === null)];
    const written: string[] = [];
    const createdDirs: string[] = [];
    try {
      for (const file of order) {
        written.push(file);
        const content = this.#final(file);
        if (content === null) {
          await rm(file, { force: true });
          continue;
        }
        const firstCreated = await mkdir(path.dirname(file), { recursive: true });
        if (firstCreated !== undefined) createdDirs.push(...dirsBetween(firstCreated, path.dirname(file)));
        await writeFile(file, content);
        const source = moveSources.get(file);
        const sourceMode = source === undefined ? undefined : this.#originals.get(source)?.mode;
        if (this.#originals.get(file)?.content === null && sourceMode !== undefined) await chmod(file, sourceMode);
      }
    } catch (error) {
      await this.#rollback(written, createdDirs);
      const file = written[written.length - 1];
      const name = file === undefined ? 'a file' : (this.#names.get(file) ?? file);
      throw new PatchApplyError(`writing ${name} failed (${(error as Error).message}); the files already written were restored`, name, { cause: error });
    }
    return result;
  }

  async #rollback(written: readonly string[], createdDirs: readonly string[]): Promise<void> {
    for (const file of [...written].reverse()) {
      const original = this.#originals.get(file);
      try {
        if (original === undefined || original.content === null) await rm(file, { force: true });
        else {
          await writeFile(file, original.content);
          if (original.mode !== undefined) await chmod(file, original.mode);
        }
      } catch {
        // Best effort: keep restoring the others.
      }
    }
    // Deepest first, and only if empty: something else may have appeared there meanwhile.
    for (const dir of [...createdDirs].sort((a, b) => b.length - a.length)) await rmdir(dir).catch(() => undefined);
  }

  #final(file: string): string | null {
    if (this.#current.has(file)) return this.#current.get(file) ?? null;
    return this.#originals.get(file)?.content ?? null;
  }

  /** Where a moved file ended up, following a chain of moves within one patch. */
  #moveDestination(file: string): string | undefined {
    const seen = new Set<string>([file]);
    let at = this.#moves.get(file);
    while (at !== undefined && this.#final(at) === null && !seen.has(at)) {
      seen.add(at);
      at = this.#moves.get(at);
    }
    return at !== undefined && this.#final(at) !== null ? at : undefined;
  }

  #resolve(name: string): string {
    return path.resolve(this.cwd, name);
  }

  async #read(file: string, name: string): Promise<string | null> {
    if (!this.#names.has(file)) this.#names.set(file, name);
    if (this.#current.has(file)) return this.#current.get(file) ?? null;
    const known = this.#originals.get(file);
    if (known !== undefined) return known.content;
    const original = await readOriginal(file, name);
    this.#originals.set(file, original);
    return original.content;
  }
}

async function readOriginal(file: string, name: string): Promise<Original> {
  try {
    const info = await stat(file);
    if (info.isDirectory()) throw new PatchApplyError(`${name} is a directory, not a file`, name);
    return { content: await readFile(file, 'utf8'), mode: info.mode & 0o7777 };
  } catch (error) {
    if (error instanceof PatchApplyError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { content: null, mode: undefined };
    throw new PatchApplyError(`cannot read ${name}: ${(error as Error).message}`, name, { cause: error });
  }
}

/** `from` and every directory below it down to `to` (both included). */
function dirsBetween(from: string, to: string): string[] {
  const dirs: string[] = [];
  for (let dir = to; dir.length >= from.length; dir = path.dirname(dir)) {
    dirs.push(dir);
    if (dir === from || dir === path.dirname(dir)) break;
  }
  return dirs;
}

function hunksOnly(hunks: Hunks, before: string, after: string): string {
  const text = hunks(before, after);
  return text.trim() === '' ? '' : text;
}

/** The new content of a file after its hunks, in order; each hunk is searched after the previous one. */
export function applyHunks(content: string, hunks: readonly Hunk[], name: string): string {
  const eol = content.includes('\r\n') ? '\r\n' : '\n';
  const lines = content.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (eol === '\r\n') for (let i = 0; i < lines.length; i++) lines[i] = (lines[i] ?? '').replace(/\r$/, '');

  const replacements: Array<{ at: number; remove: number; insert: string[] }> = [];
  let cursor = 0;
  hunks.forEach((hunk, n) => {
    for (const anchor of hunk.anchors) {
      const found = findLines(lines, [anchor], cursor);
      if (found < 0) {
        throw new PatchApplyError(
          `failed to apply hunk ${n + 1} (patch line ${hunk.patchLine}) to ${name}: the context line ${JSON.stringify(anchor)} from its '@@' header was not found${cursor > 0 ? ' after the previous hunk' : ''}`,
          name,
        );
      }
      cursor = found + 1;
    }
    let expected = hunkOldLines(hunk);
    const replacement = hunkNewLines(hunk);
    if (expected.length === 0) {
      // Pure insertion: after the anchor when there is one, else at the end of the file.
      replacements.push({ at: hunk.anchors.length > 0 && !hunk.atEndOfFile ? cursor : lines.length, remove: 0, insert: replacement });
      return;
    }
    let at = findLines(lines, expected, cursor, hunk.atEndOfFile);
    // A trailing empty line in the hunk often stands for the end of the file, not a blank line.
    if (at < 0 && expected[expected.length - 1] === '') {
      expected = expected.slice(0, -1);
      at = findLines(lines, expected, cursor, hunk.atEndOfFile);
    }
    if (at < 0) {
      const where = [
        hunk.anchors.length > 0 ? `after ${hunk.anchors.map((a) => JSON.stringify(a)).join(', ')}` : '',
        hunk.atEndOfFile ? 'at the end of the file' : '',
      ]
        .filter(Boolean)
        .join(' ');
      throw new PatchApplyError(
        `failed to apply hunk ${n + 1} (patch line ${hunk.patchLine}) to ${name}: these lines were not found${where ? ` ${where}` : ''}:\n${expected.join('\n')}`,
        name,
      );
    }
    replacements.push({ at, remove: expected.length, insert: rebuild(hunk, lines.slice(at, at + expected.length)) });
    cursor = at + expected.length;
  });

  // Back to front, so earlier indices stay valid; ties keep the patch's order.
  const ordered = replacements.map((r, i) => ({ ...r, i })).sort((a, b) => b.at - a.at || b.i - a.i);
  for (const r of ordered) lines.splice(r.at, r.remove, ...r.insert);
  return lines.length === 0 ? '' : lines.join(eol) + eol;
}

/**
 * The lines replacing a matched region: context lines are kept as the file has them (a
 * loosely matched context line must not be rewritten to the model's approximation of it).
 * Old lines beyond the region are the trailing empty line dropped while matching.
 */
function rebuild(hunk: Hunk, region: readonly string[]): string[] {
  const out: string[] = [];
  let old = 0;
  for (const line of hunk.lines) {
    if (line.kind === 'add') {
      out.push(line.text);
      continue;
    }
    const original = region[old++];
    if (line.kind === 'context' && original !== undefined) out.push(original);
  }
  return out;
}
