import type { Host } from '../actors/host/host.js';
import { ToolSetError } from '../actors/host/tool-sets.js';
import { loadToolModule, parseToolModuleSpec, ToolModuleError, type ToolModuleSpec } from '../actors/tools/tool-module.js';
import { ToolDefinitionError } from '../actors/tools/user-tool.js';
import { UsageError } from './flags.js';

/** `--tools FILE` (repeatable): ES modules of tools written with tool(), each a tool set named after its file, or NAME=FILE. */
export const TOOLS_FLAG = { tools: { type: 'string', multiple: true } } as const;

/** The tool sets the flags name; a bad one is a usage error. */
export function toolSetSpecs(values: { readonly tools?: readonly string[] | undefined }): ToolModuleSpec[] {
  return (values.tools ?? []).map((spec) => {
    try {
      return parseToolModuleSpec(spec);
    } catch (error) {
      throw asUsageError(error);
    }
  });
}

/** Import each module and load it into the host as a tool set; a module that cannot be used is a usage error. */
export async function loadToolSets(host: Host, specs: readonly ToolModuleSpec[]): Promise<void> {
  for (const spec of specs) {
    try {
      host.toolSets.add(spec.name, await loadToolModule(spec));
    } catch (error) {
      throw asUsageError(error);
    }
  }
}

function asUsageError(error: unknown): unknown {
  const known = error instanceof ToolModuleError || error instanceof ToolSetError || error instanceof ToolDefinitionError;
  return known ? new UsageError(error.message) : error;
}
