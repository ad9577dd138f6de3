/**
 * Project instructions: `AGENTS.md` files the user and the repository keep for agents. A new
 * session reads, in this order, `TROUPE_HOME/AGENTS.md` (the user's own, for every project),
 * then each `AGENTS.md` from the top of the git work tree down to the working directory (only
 * the working directory's own outside a repository), so the most specific instructions come
 * last. They reach the model as one user-role `<user_instructions>` message in the initial
 * context, each file under its path, and together no longer than `project_doc_max_bytes`.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ResponseItem } from '../../protocol/index.js';

export const PROJECT_DOC_FILE = 'AGENTS.md';
export const DEFAULT_PROJECT_DOC_MAX_BYTES = 32 * 1024;
export const USER_INSTRUCTIONS_TAG = 'user_instructions';

export interface ProjectDocs {
  /** The files read, in order (real paths). */
  readonly files: readonly string[];
  /** The message for the initial context; null when there was nothing to read. */
  readonly message: ResponseItem | null;
  /** Bytes left out because the files together were larger than the limit. */
  readonly omittedBytes: number;
}

/**
 * The directories whose `AGENTS.md` apply to `cwd`, outermost first: from the top of the git
 * work tree that contains it (a `.git` directory or file) down to `cwd` itself. Symlinks are
 * resolved first, so a cwd reached through a link finds the repository it really is in.
 */
export function projectDocDirs(cwd: string): string[] {
  let real: string;
  try {
    real = realpathSync.native(cwd);
  } catch {
    return [];
  }
  const chain: string[] = [];
  for (let dir = real; ; dir = path.dirname(dir)) {
    chain.unshift(dir);
    if (lstatSync(path.join(dir, '.git'), { throwIfNoEntry: false }) !== undefined) return chain;
    if (path.dirname(dir) === dir) return [real];
  }
}

/**
 * Reads the project instructions for a session in `cwd`; `maxBytes` 0 turns them off.
 *
 * Synchronous: a host places sub-agents fifty at a time, and each reads these files before its
 * first request. Asking for a file that is not there (the usual answer, at most levels) costs
 * microseconds as a sync stat, where an async open queues on libuv's four pool threads behind
 * every other session's file work and builds an error to say ENOENT. The files are small and
 * capped at `maxBytes`.
 */
export function loadProjectDocs(cwd: string, home: string | undefined, maxBytes: number = DEFAULT_PROJECT_DOC_MAX_BYTES): ProjectDocs {
  const none: ProjectDocs = { files: [], message: null, omittedBytes: 0 };
  if (maxBytes <= 0) return none;
  const candidates = [
    ...(home !== undefined ? [path.join(home, PROJECT_DOC_FILE)] : []),
    ...projectDocDirs(cwd).map((dir) => path.join(dir, PROJECT_DOC_FILE)),
  ];
  const files: string[] = [];
  const sections: string[] = [];
  let budget = maxBytes;
  let omitted = 0;
  for (const candidate of new Set(candidates)) {
    const read = readCapped(candidate, budget);
    if (read === null) continue;
    files.push(candidate);
    omitted += read.omitted;
    if (read.text.trim() === '') continue;
    sections.push(`# ${candidate}\n\n${read.text.trimEnd()}`);
    budget -= Buffer.byteLength(read.text);
  }
  if (sections.length === 0) return { ...none, files, omittedBytes: omitted };
  const text = `<${USER_INSTRUCTIONS_TAG}>\n${sections.join('\n\n')}\n</${USER_INSTRUCTIONS_TAG}>`;
  return { files, omittedBytes: omitted, message: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } };
}

/**
 * `loadProjectDocs`, answering the same question again from memory until the current turn of
 * the event loop ends. A parent spawning fifty sub-agents in one response has them placed in
 * one turn; each would otherwise walk up to the repository root and look for every
 * `AGENTS.md` again, fifty times the same system calls before any child's first request.
 * Reading the files once for all of them is what reading them fifty times within that turn
 * would give, short of a change made meanwhile, which either order could miss.
 */
export function projectDocsReader(): typeof loadProjectDocs {
  const known = new Map<string, ProjectDocs>();
  return (cwd, home, maxBytes = DEFAULT_PROJECT_DOC_MAX_BYTES) => {
    const key = JSON.stringify([cwd, home ?? null, maxBytes]);
    let docs = known.get(key);
    if (!docs) {
      docs = loadProjectDocs(cwd, home, maxBytes);
      if (known.size === 0) setImmediate(() => known.clear());
      known.set(key, docs);
    }
    return docs;
  };
}

/**
 * A regular file's text, at most `budget` bytes of it (cut at a character boundary), and how
 * many bytes were left out; null when there is no such file.
 */
function readCapped(file: string, budget: number): { text: string; omitted: number } | null {
  if (statSync(file, { throwIfNoEntry: false })?.isFile() !== true) return null;
  let fd;
  try {
    // Non-blocking: were the file swapped for a FIFO after the stat, the open would otherwise
    // wait for a writer, and hold the whole host. The fstat below then refuses it.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return null;
    const size = stats.size;
    const take = Math.max(0, Math.min(size, budget));
    const buffer = Buffer.alloc(take);
    let bytesRead = 0;
    while (bytesRead < take) {
      const n = readSync(fd, buffer, bytesRead, take - bytesRead, bytesRead);
      if (n === 0) break;
      bytesRead += n;
    }
    // A multi-byte character cut in half would decode to U+FFFD: drop its leading bytes.
    const text = new TextDecoder('utf-8', { fatal: false }).decode(buffer.subarray(0, bytesRead)).replace(/\uFFFD+$/, '');
    return { text, omitted: size - Buffer.byteLength(text) };
  } finally {
    closeSync(fd);
  }
}

/** Whether `item` is the project instructions message this module makes. */
export function isUserInstructions(item: ResponseItem): boolean {
  if (item.type !== 'message' || item.role !== 'user') return false;
  const first = item.content[0];
  return first !== undefined && 'text' in first && first.text.startsWith(`<${USER_INSTRUCTIONS_TAG}>`);
}
