export { PtyUnavailableError, spawnExecProcess, type ExecProcess, type SpawnOptions } from './exec-process.js';
export { killSession, sessionMembers } from './kill.js';
export {
  ExecSession,
  MAX_CALL_OUTPUT_BYTES,
  MAX_EXEC_SESSIONS,
  PtySessionManager,
  TooManyExecSessionsError,
  type CollectResult,
  type ExecSessionHooks,
} from './session-manager.js';
