/**
 * Rollout files (PROTOCOL.md §8): where a session's history and events are persisted, and how
 * a session is resumed, forked or listed from them.
 */
export { RolloutError } from './errors.js';
export { isFileSafeId, parseRolloutFileName, rolloutPath, rolloutTimestamp, sessionsDir, troupeHome } from './paths.js';
export { RolloutRecorder, shouldPersistEvent, type RolloutItem } from './recorder.js';
export {
  findRolloutBySessionId,
  forkHistory,
  historyFromRollout,
  isRealUserMessage,
  lastSeqOf,
  listSessions,
  readRollout,
  type ListSessionsOptions,
  type Rollout,
  type SkippedLine,
} from './reader.js';
