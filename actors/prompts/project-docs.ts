/**
 * Project instructions: `AGENTS.md` files the user and the repository keep for agents. A new
 * session reads, in this order, `TROUPE_HOME/AGENTS.md` (the user's own, for every project),
 * then each `AGENTS.md` from the top of the git work tree down to the working directory (only
 * the working directory's own outside a repository), so the most specific instructions come
 * last. They reach the model as one user-role `<user_instructions>` message in the initial
 * context, each file under its path, and together no longer than `project_doc_max_bytes`.
 */
import { lstatSync, realpathSync } from 'node:fs';
import { open } from 'node:fs/promises';
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
    real = realpathSync(cwd);
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

/** Reads the project instructions for a session in `cwd`; `maxBytes` 0 turns them off. */
export async function loadProjectDocs(cwd: string, home: string | undefined, maxBytes: number = DEFAULT_PROJECT_DOC_MAX_BYTES): Promise<ProjectDocs> {
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
    const read = await readCapped(candidate, budget);
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
 * A regular file's text, at most `budget` bytes of it (cut at a character boundary), and how
 * many bytes were left out; null when there is no such file.
 */
async function readCapped(file: string, budget: number): Promise<{ text: string; omitted: number } | null> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return null;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return null;
    const size = stats.size;
    const take = Math.max(0, Math.min(size, budget));
    const buffer = Buffer.alloc(take);
    const { bytesRead } = await handle.read(buffer, 0, take, 0);
    // A multi-byte character cut in half would decode to U+FFFD: drop its leading bytes.
    const text = new TextDecoder('utf-8', { fatal: false }).decode(buffer.subarray(0, bytesRead)).replace(/\uFFFD+$/, '');
    return { text, omitted: size - Buffer.byteLength(text) };
  } finally {
    await handle.close();
  }
}

/** Whether `item` is the project instructions message this module makes. */
export function isUserInstructions(item: ResponseItem): boolean {
  if (item.type !== 'message' || item.role !== 'user') return false;
  const first = item.content[0];
  return first !== undefined && 'text' in first && first.text.startsWith(`<${USER_INSTRUCTIONS_TAG}>`);
}
