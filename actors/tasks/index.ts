export * from './compact/index.js';
export * from './review/index.js';
export { dropLastUserTurns, type RollbackResult } from './rollback.js';
export { userShellRecord, type UserShellResult } from './user-shell.js';
export { undoNoticeMessage } from './undo.js';
export { isUserTurnStart, messageText, USER_SHELL_PREFIX } from './user-turns.js';
