import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isTool, type Tool } from './user-tool.js';
import { TroupeError } from '../../protocol/index.js';

/** A `--tools` argument that cannot be used; the message names the file and what is wrong. */
export class ToolModuleError extends TroupeError {
  override readonly name = 'ToolModuleError';
  override readonly code = 'bad_request';
}

const SET_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** A `--tools` argument: `FILE`, named after the file (`./billing.js` is set `billing`), or `NAME=FILE`. */
export interface ToolModuleSpec {
  readonly name: string;
  readonly path: string;
}

export function parseToolModuleSpec(spec: string): ToolModuleSpec {
  const eq = spec.indexOf('=');
  const path = eq > 0 ? spec.slice(eq + 1) : spec;
  const name = eq > 0 ? spec.slice(0, eq) : basename(path, extname(path));
  if (path === '') throw new ToolModuleError(`--tools ${spec}: no file given`);
  if (!SET_NAME.test(name)) throw new ToolModuleError(`--tools ${spec}: the tool set name "${name}" must be 1 to 64 letters, digits, _ or - (write NAME=FILE)`);
  return { name, path: resolve(path) };
}

/**
 * The tools an ES module exports: every export made by `tool()`, or an array of them, the
 * default export included. A module that cannot be imported, or exports no tool, is an error.
 */
export async function loadToolModule(spec: ToolModuleSpec): Promise<Tool[]> {
  let exports: Record<string, unknown>;
  try {
    exports = (await import(pathToFileURL(spec.path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new ToolModuleError(`--tools ${spec.path}: could not load it: ${(error as Error).message}`, { cause: error });
  }
  const tools = new Set<Tool>();
  for (const value of Object.values(exports)) {
    for (const candidate of Array.isArray(value) ? (value as unknown[]) : [value]) if (isTool(candidate)) tools.add(candidate);
  }
  if (tools.size === 0)
    throw new ToolModuleError(`--tools ${spec.path}: the module exports no tools (export values made by tool() from troupe, or an array of them)`);
  return [...tools];
}
