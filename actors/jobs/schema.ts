import { z } from 'zod';
import { describeZodError } from '../../protocol/index.js';
import { JobInputError } from './input.js';

/** Checks a reported result against the job's `output_schema` (JSON Schema, through zod). */
export interface ResultCheck {
  /** null when the result fits; otherwise what is wrong with it, field by field. */
  problems(result: unknown): string | null;
}

const ANYTHING: ResultCheck = { problems: () => null };

export function resultCheck(schema: Record<string, unknown> | null): ResultCheck {
  if (schema === null) return ANYTHING;
  let validator: z.ZodType;
  try {
    validator = z.fromJSONSchema(schema);
  } catch (error) {
    throw new JobInputError(`output_schema is not a JSON Schema troupe can check results with: ${(error as Error).message}`);
  }
  return {
    problems(result) {
      const parsed = validator.safeParse(result);
      return parsed.success ? null : describeZodError(parsed.error, 'result');
    },
  };
}

/**
 * The result columns of the output: the properties of an object `output_schema`, each in a
 * column of its own; otherwise one `result` column holding the result as JSON.
 */
export function resultColumns(schema: Record<string, unknown> | null): string[] | null {
  if (!schema) return null;
  const properties = schema.properties;
  const isObject = schema.type === 'object' || (schema.type === undefined && properties !== undefined);
  if (!isObject || typeof properties !== 'object' || properties === null || Array.isArray(properties)) return null;
  const names = Object.keys(properties);
  return names.length > 0 ? names : null;
}
