/** The `apply_patch` format: parsing, applying, and the turn's cumulative diff. */
export { parsePatch, PatchParseError, hunkNewLines, hunkOldLines } from './parser.js';
export type { Hunk, HunkLine, PatchOperation } from './parser.js';
export { applyPatch, previewPatch, preparePatch, prepareOperations, applyHunks, PatchApplyError } from './apply.js';
export type { PatchResult, PreparedPatch } from './apply.js';
export { findLines } from './match.js';
export { TurnDiffTracker } from './turn-diff.js';
