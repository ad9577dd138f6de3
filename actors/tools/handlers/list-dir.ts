import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ListDirArgs } from '../../../protocol/index.js';
import { defineTool, type ToolHandler, type ToolOutput } from '../tool.js';

export const DEFAULT_LIST_DEPTH = 2;
export const DEFAULT_LIST_LIMIT = 25;
/** A deep listing of a huge tree (or of `/`) must not exhaust memory before pagination. */
const MAX_COLLECTED_ENTRIES = 10_000;

const DESCRIPTION =
  'List a directory as an indented tree. `dir_path` must be absolute. Descends `depth` levels ' +
  `(default ${DEFAULT_LIST_DEPTH}); directories end with "/", symbolic links with "@" (not followed). ` +
  `Returns \`limit\` entries (default ${DEFAULT_LIST_LIMIT}) from entry \`offset\` (1-based); use offset to page.`;

interface Entry {
  /** Path components below the listed directory; their order is the display order. */
  readonly segments: string[];
  readonly suffix: '' | '/' | '@';
}

const failure = (text: string): ToolOutput => ({ text, success: false });

export async function listDirectory(args: ListDirArgs): Promise<ToolOutput> {
  if (!path.isAbsolute(args.dir_path)) return failure(`dir_path must be an absolute path; got "${args.dir_path}"`);
  const root = path.resolve(args.dir_path);
  const depth = args.depth ?? DEFAULT_LIST_DEPTH;
  const offset = args.offset ?? 1;
  const limit = args.limit ?? DEFAULT_LIST_LIMIT;

  try {
    if (!(await stat(root)).isDirectory()) return failure(`${root} is not a directory`);
  } catch (error) {
    return failure(`cannot list ${root}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (error as Error).message}`);
  }

  let collected: { entries: Entry[]; capped: boolean };
  try {
    collected = await collect(root, depth);
  } catch (error) {
    return failure(`cannot list ${root}: ${(error as Error).message}`);
  }
  const { entries, capped } = collected;
  entries.sort((a, b) => compareSegments(a.segments, b.segments));

  if (entries.length > 0 && offset > entries.length) {
    return failure(`offset ${offset} is past the end: ${root} has ${entries.length} entries to depth ${depth}`);
  }
  const page = entries.slice(offset - 1, offset - 1 + limit);
  const lines = [root, ...page.map(formatEntry)];
  const shownThrough = offset - 1 + page.length;
  if (shownThrough < entries.length) {
    lines.push(`[${entries.length - shownThrough} more entries; continue with offset ${shownThrough + 1}]`);
  }
  if (capped) lines.push(`[stopped after ${MAX_COLLECTED_ENTRIES} entries; list a subdirectory or use a smaller depth]`);
  return { text: lines.join('\n'), success: true };
}

/** Breadth-first, so a cap on the number of entries cuts the deepest levels first. */
async function collect(root: string, depth: number): Promise<{ entries: Entry[]; capped: boolean }> {
  const entries: Entry[] = [];
  let level: string[][] = [[]];
  for (let d = 1; d <= depth && level.length > 0; d++) {
    const next: string[][] = [];
    for (const segments of level) {
      let dirents;
      try {
        dirents = await readdir(path.join(root, ...segments), { withFileTypes: true });
      } catch (error) {
        // The root must be readable; a subdirectory we may not enter is simply not expanded.
        if (segments.length === 0) throw error;
        continue;
      }
      for (const dirent of dirents) {
        const child = [...segments, dirent.name];
        const suffix = dirent.isSymbolicLink() ? '@' : dirent.isDirectory() ? '/' : '';
        entries.push({ segments: child, suffix });
        if (entries.length >= MAX_COLLECTED_ENTRIES) return { entries, capped: true };
        if (suffix === '/') next.push(child);
      }
    }
    level = next;
  }
  return { entries, capped: false };
}

/** Component-wise order puts every directory's contents right after it, as in a tree. */
function compareSegments(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

function formatEntry(entry: Entry): string {
  return `${'  '.repeat(entry.segments.length - 1)}${entry.segments[entry.segments.length - 1]}${entry.suffix}`;
}

export const listDirHandler: ToolHandler<ListDirArgs> = {
  name: 'list_dir',
  description: DESCRIPTION,
  args: ListDirArgs,
  run: (args) => listDirectory(args),
};

export const listDirTool = defineTool(listDirHandler);
