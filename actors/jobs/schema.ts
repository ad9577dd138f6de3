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
  const regex = regexKeyword(schema, 'output_schema');
  if (regex !== null) {
    throw new JobInputError(
      `output_schema uses "${regex.keyword}" at ${regex.at}: troupe does not match results against regular expressions (a backtracking pattern and a result made for it can stall the process), so describe the format in the instruction instead`,
    );
  }
  const endless = endlessRef(schema);
  if (endless !== null) {
    throw new JobInputError(
      `output_schema refers to itself without end at ${endless}: its $ref leads only to other $refs and back; a recursive schema must go through a property or an array's items`,
    );
  }
  // A reported result is parsed as a JSON record, which drops this key: the column would stay empty.
  if (resultColumns(schema)?.includes('__proto__'))
    throw new JobInputError('output_schema has a property named "__proto__", which a result cannot carry; rename it');
  let validator: z.ZodType;
  try {
    validator = z.fromJSONSchema(schema);
    // One that the schema library cannot check even an empty object against is no use either.
    validator.safeParse({});
  } catch (error) {
    throw new JobInputError(`output_schema is not a JSON Schema troupe can check results with: ${(error as Error).message}`);
  }
  return {
    problems(result) {
      let parsed: ReturnType<typeof validator.safeParse>;
      try {
        parsed = validator.safeParse(result);
      } catch (error) {
        return `it could not be checked against output_schema (${(error as Error).message})`;
      }
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

/** Deeper schemas are refused (a result is an item's answer, not a document format). */
export const MAX_SCHEMA_DEPTH = 32;

/** Keywords whose values are subschemas, by how they hold them. */
const ONE_SCHEMA = [
  'items',
  'additionalItems',
  'additionalProperties',
  'not',
  'if',
  'then',
  'else',
  'contains',
  'propertyNames',
  'unevaluatedItems',
  'unevaluatedProperties',
];
const SCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items'];
const SCHEMA_MAPS = ['properties', '$defs', 'definitions', 'dependentSchemas'];

/**
 * The first `pattern` or `patternProperties` keyword of a JSON Schema, walking its subschemas
 * only (a property named "pattern" is not the keyword). Results are checked in troupe's own
 * process with JavaScript's backtracking regular expressions, where a pattern such as
 * `^(a+)+$` and a 30-character result take minutes: the reporting agent is untrusted.
 */
function regexKeyword(schema: unknown, at: string): { keyword: string; at: string } | null {
  return firstInSchema(schema, at, (node, where) => {
    // Any value: the schema library makes a regular expression of a non-string too (['(a+)+$']).
    if (node.pattern !== undefined) return { keyword: 'pattern', at: where };
    if (node.patternProperties !== undefined) return { keyword: 'patternProperties', at: where };
    return null;
  });
}

/**
 * Where a `$ref` leads only to other `$ref`s and back to one already followed (`{"$ref": "#"}`,
 * or two definitions naming each other): a schema without end, which the schema library
 * follows until the stack runs out, when it is built or only when a result reaches it. A
 * recursive schema whose `$ref` sits under a property or an array's items is fine.
 */
function endlessRef(schema: Record<string, unknown>): string | null {
  return firstInSchema(schema, 'output_schema', (node, where) => {
    const followed = new Set<string>();
    let ref = node.$ref;
    while (typeof ref === 'string') {
      if (followed.has(ref)) return where;
      followed.add(ref);
      ref = pointedAt(schema, ref)?.$ref;
    }
    return null;
  });
}

/** The subschema a local `$ref` (`#`, `#/$defs/name`, …) points at in `root`, if there is one. */
function pointedAt(root: Record<string, unknown>, ref: string): Record<string, unknown> | undefined {
  if (ref !== '#' && !ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const token of ref === '#' ? [] : ref.slice(2).split('/')) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[decodeURIComponent(token).replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>) : undefined;
}

/** `visit`'s first answer for `schema` or one of its subschemas (itself first), with where each is. */
function firstInSchema<T>(schema: unknown, at: string, visit: (node: Record<string, unknown>, at: string) => T | null, depth = 0): T | null {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return null;
  if (depth > MAX_SCHEMA_DEPTH) throw new JobInputError(`output_schema nests subschemas deeper than ${MAX_SCHEMA_DEPTH} levels (at ${at})`);
  const node = schema as Record<string, unknown>;
  const own = visit(node, at);
  if (own !== null) return own;
  const found = (value: unknown, where: string) => firstInSchema(value, where, visit, depth + 1);
  for (const key of ONE_SCHEMA) {
    const hit = found(node[key], `${at}.${key}`);
    if (hit !== null) return hit;
  }
  for (const key of SCHEMA_LISTS) {
    const list = node[key];
    if (!Array.isArray(list)) continue;
    for (const [i, value] of list.entries()) {
      const hit = found(value, `${at}.${key}[${i}]`);
      if (hit !== null) return hit;
    }
  }
  for (const key of SCHEMA_MAPS) {
    const map = node[key];
    if (typeof map !== 'object' || map === null || Array.isArray(map)) continue;
    for (const [name, value] of Object.entries(map)) {
      const hit = found(value, `${at}.${key}.${name}`);
      if (hit !== null) return hit;
    }
  }
  return null;
}
