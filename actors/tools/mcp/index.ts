export {
  McpManager,
  DEFAULT_MCP_CALL_TIMEOUT_MS,
  DEFAULT_MCP_START_TIMEOUT_MS,
  type ElicitationDecision,
  type McpManagerHooks,
  type McpManagerOptions,
} from './manager.js';
export { McpCallError, McpStartError, UnknownElicitationError } from './errors.js';
export { assignToolNames, sanitizeNamePart, MAX_TOOL_NAME_LENGTH, type McpToolRef } from './tool-names.js';
export { resultText } from './result-text.js';
