import { createHash } from 'node:crypto';

/**
 * Function names the model providers accept: OpenAI's Responses and Chat Completions APIs both
 * require `^[a-zA-Z0-9_-]{1,64}$`.
 */
export const MAX_TOOL_NAME_LENGTH = 64;
/** Separates the server from the tool in a model-facing name (PROTOCOL.md §6). */
export const SERVER_TOOL_SEPARATOR = '__';
/** `_` plus this many hex digits of a hash replace the end of a name that is too long or taken. */
const HASH_DIGITS = 8;

/** One MCP tool to be named for the model. */
export interface McpToolRef {
  readonly server: string;
  readonly tool: string;
}

/** Every character outside the allowed set becomes `_`. */
export function sanitizeNamePart(part: string): string {
  const clean = part.replace(/[^a-zA-Z0-9_-]/g, '_');
  return clean === '' ? '_' : clean;
}

function hashSuffix(ref: McpToolRef): string {
  // The hash is of the raw names, so two tools that sanitize alike still get different suffixes.
  const digest = createHash('sha256').update(`${ref.server}\u0000${ref.tool}`).digest('hex');
  return `_${digest.slice(0, HASH_DIGITS)}`;
}

function withHash(base: string, ref: McpToolRef): string {
  const suffix = hashSuffix(ref);
  return `${base.slice(0, MAX_TOOL_NAME_LENGTH - suffix.length)}${suffix}`;
}

/**
 * Model-facing names for MCP tools: `<server>__<tool>`, sanitized to the providers' charset.
 * A name longer than 64 characters keeps its first 55 and ends with `_` and 8 hex digits of a
 * hash of the raw server and tool names. When two tools still end up with the same name (or
 * one a core tool already has), the one that comes first in (server, tool) order keeps it and
 * the others get the hash suffix, so the result does not depend on the order servers answered.
 */
export function assignToolNames(refs: readonly McpToolRef[], taken: ReadonlySet<string> = new Set()): Map<string, McpToolRef> {
  const sorted = [...refs].sort((a, b) => compare(a.server, b.server) || compare(a.tool, b.tool));
  const names = new Map<string, McpToolRef>();
  for (const ref of sorted) {
    const plain = `${sanitizeNamePart(ref.server)}${SERVER_TOOL_SEPARATOR}${sanitizeNamePart(ref.tool)}`;
    let name = plain.length <= MAX_TOOL_NAME_LENGTH ? plain : withHash(plain, ref);
    if (names.has(name) || taken.has(name)) name = withHash(plain, ref);
    // Only a hash collision gets here; counting up keeps the names distinct regardless.
    for (let n = 2; names.has(name) || taken.has(name); n++) name = withHash(`${plain}_${n}`, { server: ref.server, tool: `${ref.tool}\u0000${n}` });
    names.set(name, ref);
  }
  return names;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
