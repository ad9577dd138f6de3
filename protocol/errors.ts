import type { z } from 'zod';

/** One line per issue, each naming the field it is about: `op.config.cwd: must be an absolute path`. */
export function describeZodError(error: z.ZodError, root?: string): string {
  return error.issues
    .map((issue) => {
      const path = [root, ...issue.path.map(String)].filter((p) => p !== undefined && p !== '').join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

/** Raised when a message does not match its schema; `message` names the offending fields. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    message: string,
    readonly issues: readonly z.core.$ZodIssue[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Parse `value` with `schema`, or throw a ProtocolError whose message names each bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, root?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ProtocolError(describeZodError(result.error, root), result.error.issues);
}
