import { applyPatchTool } from './handlers/apply-patch.js';
import { execCommandTool } from './handlers/exec-command.js';
import { listDirTool } from './handlers/list-dir.js';
import { readFileTool } from './handlers/read-file.js';
import { shellTool } from './handlers/shell.js';
import { updatePlanTool } from './handlers/update-plan.js';
import { writeStdinTool } from './handlers/write-stdin.js';
import { ToolRegistry } from './registry.js';

export { ToolRegistry, type RoutedCall } from './registry.js';
export type { ApprovalMemory, RunPlan, ToolContext, ToolHandler } from './tool.js';
export { defineTool } from './tool.js';

/** The tools every session has (PROTOCOL.md §6). */
export function coreTools(): ToolRegistry {
  return new ToolRegistry([shellTool, applyPatchTool, readFileTool, listDirTool, updatePlanTool, execCommandTool, writeStdinTool]);
}
