export { confineCommand, type ConfinedCommand, type ConfineOptions } from './confine.js';
export { isLikelySandboxDenial, missingProgramInSandbox, type FinishedCommand } from './denial.js';
export { BACKEND_ENV, detectSandbox, requireSandbox, sandboxedArgv, unavailableMessage, type SandboxAvailability, type SandboxBackend } from './detect.js';
export { SandboxUnavailableError } from './errors.js';
export { escapesCwd, isWithin, isWritable, writableRoots } from './paths.js';
export { bubblewrapArgs, type BubblewrapOptions } from './bubblewrap.js';
export { seatbeltCommand, seatbeltProfile, SANDBOX_EXEC_PATH, type SeatbeltProfile } from './seatbelt.js';
export { sandboxSpecFor, type SandboxSpec } from './spec.js';
export { checkWritable, realPathOf, type WriteVerdict } from './writable.js';
