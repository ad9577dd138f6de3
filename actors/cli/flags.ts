import { parseArgs } from 'node:util';

/** Raised for bad command-line input: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Flags shared by the commands that run sessions. */
export const MODEL_FLAGS = {
  model: { type: 'string' },
  'wire-api': { type: 'string' },
} as const;

export function wireApiFlag(value: string | undefined): 'responses' | 'chat' | undefined {
  if (value === undefined || value === 'responses' || value === 'chat') return value;
  throw new UsageError(`--wire-api must be "responses" or "chat", got "${value}"`);
}

export { parseArgs };
