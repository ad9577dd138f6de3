import { pino, type Logger } from 'pino';

/**
 * The process logger. Logs go to stderr only (stdout carries protocol JSON); the level comes
 * from TROUPE_LOG (default `warn`, so a quiet run prints nothing).
 */
export const log: Logger = pino(
  { name: 'troupe', level: process.env.TROUPE_LOG ?? 'warn', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
);

export type { Logger };
