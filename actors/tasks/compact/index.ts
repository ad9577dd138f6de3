export { buildCompactedHistory, DEFAULT_USER_MESSAGE_TOKEN_BUDGET, keepTurnItems, lastAssistantText, type CompactedHistoryInput } from './history.js';
export { SUMMARY_PROMPT, summaryBridgeMessage } from './prompt.js';
export { approxTokens, truncateMiddleToTokens } from './tokens.js';
export { approxItemsTokens, trimForSummarization, type TrimResult } from './trim.js';
export { initialContextOf, isSummaryBridge, SUMMARY_BRIDGE_PREFIX } from '../user-turns.js';
