import { z } from 'zod';
import type { ErrorCode, EventOf } from './events.js';

/** One line per issue, each naming the field it is about: `op.config.cwd: must be an absolute path`. */
export function describeZodError(error: z.ZodError, root?: string): string {
  return error.issues
    .map((issue) => {
      const path = [root, ...issue.path.map(String)].filter((p) => p !== undefined && p !== '').join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

export interface TroupeErrorOptions extends ErrorOptions {
  /** The code, for a class whose failures do not all have the same one (default `internal`). */
  readonly code?: ErrorCode;
}

/**
 * The base of every error troupe throws. `code` is the protocol's error code the failure is
 * reported with when it reaches a client (`errorEvent`): a class whose failures are all of one
 * kind fixes it (`override readonly code = 'bad_request'`), others take it as an option.
 */
export class TroupeError extends Error {
  override name = 'TroupeError';
  readonly code: ErrorCode;
  constructor(message: string, options?: TroupeErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = options?.code ?? 'internal';
  }
}

/** Raised when a message does not match its schema; `message` names the offending fields. */
export class ProtocolError extends TroupeError {
  override readonly name = 'ProtocolError';
  override readonly code = 'bad_request';
  constructor(
    message: string,
    readonly issues: readonly z.core.$ZodIssue[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An op for a session no host has (never opened, or shut down already): `unknown session <id>`. */
export class UnknownSessionError extends TroupeError {
  override readonly name = 'UnknownSessionError';
  override readonly code = 'unknown_session';
  constructor(readonly sessionId: string) {
    super(`unknown session ${sessionId}`);
  }
}

/** Parse `value` with `schema`, or throw a ProtocolError whose message names each bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, root?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ProtocolError(describeZodError(result.error, root), result.error.issues);
}

/** The code a thrown value is reported with: its own, that of the first TroupeError among its causes, or `internal`. */
export function errorCode(error: unknown): ErrorCode {
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof TroupeError) return e.code;
    if (e instanceof z.ZodError) return 'bad_request';
    if (!(e instanceof Error)) break;
  }
  return 'internal';
}

/**
 * The protocol's `error` event for anything thrown, or for a failure described on the spot: the
 * one place a failure becomes what a client sees. A TroupeError keeps its code (a plain Error
 * takes the code of a TroupeError it was caused by), a ZodError is a `bad_request` naming each
 * bad field, anything else is `internal`. `context` goes before the message: `context: message`.
 */
export function errorEvent(error: unknown, context?: string): EventOf<'error'> {
  const detail = error instanceof z.ZodError ? describeZodError(error) : error instanceof Error ? error.message : String(error);
  return { type: 'error', code: errorCode(error), message: context === undefined ? detail : `${context}: ${detail}` };
}
