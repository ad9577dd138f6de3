import { z } from 'zod';
import { ReviewFinding, ReviewOutput } from '../../../protocol/index.js';

/**
 * The JSON schema of ReviewOutput, for the provider's structured-output format. The `$schema`
 * key and zod's safe-integer bounds on plain integers are left out: providers that accept a
 * subset of JSON Schema reject or ignore them, and they say nothing useful here.
 */
export const REVIEW_OUTPUT_JSON_SCHEMA: Readonly<Record<string, unknown>> = (() => {
  const schema = z.toJSONSchema(ReviewOutput, { io: 'output', target: 'draft-2020-12' }) as Record<string, unknown>;
  delete schema.$schema;
  return stripSafeIntegerBounds(schema) as Record<string, unknown>;
})();

function stripSafeIntegerBounds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripSafeIntegerBounds);
  if (node === null || typeof node !== 'object') return node;
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'minimum' || key === 'maximum') && Math.abs(Number(value)) === Number.MAX_SAFE_INTEGER) continue;
    result[key] = stripSafeIntegerBounds(value);
  }
  return result;
}

/**
 * What a reply that holds no review object becomes. There is no "unknown" verdict, so the
 * default fails closed: calling an unreviewed patch correct could let it through an automated
 * gate, while "incorrect" with confidence 0 sends a reader to the explanation, which is the
 * reviewer's whole reply.
 */
export const FALLBACK_CORRECTNESS: ReviewOutput['overall_correctness'] = 'patch is incorrect';

/** How many `{` positions to try when the reply wraps its JSON in prose. */
const MAX_OBJECT_STARTS = 20;

/**
 * The reviewer's final message as a ReviewOutput. Never throws: strict JSON first, then the
 * outermost `{…}` in the text (a fenced or prefaced object), then the whole text as the
 * explanation with no findings. An object that is nearly right (a missing score, one bad
 * finding) keeps what is usable rather than being thrown away.
 */
export function parseReviewOutput(text: string): ReviewOutput {
  const trimmed = text.trim();
  const direct = fromJson(trimmed);
  if (direct) return direct;
  const end = trimmed.lastIndexOf('}');
  let start = trimmed.indexOf('{');
  for (let tries = 0; start !== -1 && start < end && tries < MAX_OBJECT_STARTS; tries += 1) {
    const found = fromJson(trimmed.slice(start, end + 1));
    if (found) return found;
    start = trimmed.indexOf('{', start + 1);
  }
  return {
    findings: [],
    overall_correctness: FALLBACK_CORRECTNESS,
    overall_explanation: trimmed,
    overall_confidence_score: 0,
  };
}

function fromJson(candidate: string): ReviewOutput | null {
  if (!candidate.startsWith('{')) return null;
  let value: unknown;
  try {
    value = JSON.parse(candidate);
  } catch {
    return null;
  }
  const strict = ReviewOutput.safeParse(value);
  if (strict.success) return strict.data;
  return salvage(value);
}

type Loose = Record<string, unknown>;

function isObject(value: unknown): value is Loose {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Rebuilds a review from an object with the right idea but not the exact shape. */
function salvage(value: unknown): ReviewOutput | null {
  if (!isObject(value)) return null;
  const known = ['findings', 'overall_correctness', 'overall_explanation', 'overall_confidence_score'];
  if (!known.some((key) => key in value)) return null;
  const findings = Array.isArray(value.findings) ? value.findings.map(salvageFinding).filter((finding): finding is ReviewFinding => finding !== null) : [];
  const correctness = ReviewOutput.shape.overall_correctness.safeParse(value.overall_correctness);
  return {
    findings,
    overall_correctness: correctness.success ? correctness.data : FALLBACK_CORRECTNESS,
    overall_explanation: typeof value.overall_explanation === 'string' ? value.overall_explanation : '',
    overall_confidence_score: score(value.overall_confidence_score),
  };
}

function salvageFinding(value: unknown): ReviewFinding | null {
  const strict = ReviewFinding.safeParse(value);
  if (strict.success) return strict.data;
  if (!isObject(value)) return null;
  const title = typeof value.title === 'string' ? value.title : null;
  const body = typeof value.body === 'string' ? value.body : null;
  if (title === null && body === null) return null;
  const location = isObject(value.code_location) ? value.code_location : {};
  const range = isObject(location.line_range) ? location.line_range : {};
  const start = integer(range.start) ?? 0;
  return {
    title: title ?? body!.slice(0, 80),
    body: body ?? '',
    confidence_score: score(value.confidence_score),
    priority: priority(value.priority),
    code_location: {
      absolute_file_path: typeof location.absolute_file_path === 'string' ? location.absolute_file_path : '',
      line_range: { start, end: integer(range.end) ?? start },
    },
  };
}

function score(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
}

function integer(value: unknown): number | null {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? Math.trunc(n) : null;
}

/** Accepts 2, "2" and "P2"; anything else is the lowest priority rather than a false alarm. */
function priority(value: unknown): number {
  const digits = typeof value === 'string' ? /\d/.exec(value)?.[0] : value;
  const n = integer(digits);
  return n === null ? 3 : Math.min(3, Math.max(0, n));
}
