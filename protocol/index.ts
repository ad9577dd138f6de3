/**
 * troupe/protocol: the wire contract as zod schemas and their inferred types. PROTOCOL.md is
 * its prose form. Nothing here has runtime behaviour beyond validation.
 */
export * from './common.js';
export * from './config.js';
export * from './items.js';
export * from './ops.js';
export * from './events.js';
export * from './approvals.js';
export * from './tools.js';
export * from './rollout.js';
export * from './bus.js';
export * from './errors.js';
export * from './json-schema.js';

export const PROTOCOL_VERSION = 1;
