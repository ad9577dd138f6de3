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

/**
 * Let `promise` run on unawaited, where nothing could wait for it (a timer, a listener, a
 * cleanup that must not hold up its caller): a rejection is logged as `<what> failed` instead of
 * going unhandled, which would end the process.
 */
export function inBackground(promise: Promise<unknown>, what: string, logger: Logger = log): void {
  promise.catch((error: unknown) => logger.error({ err: error }, `${what} failed`));
}
