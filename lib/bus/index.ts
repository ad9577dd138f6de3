/**
 * The bus: one interface (`Bus`), the subject names every transport shares, and the
 * in-process transport. The NATS transport lives beside it and implements the same interface.
 */
export * from './bus.js';
export * from './subjects.js';
export * from './in-process.js';
export * from './nats.js';
