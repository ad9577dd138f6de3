import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  Event,
  EventMsg,
  FileChange,
  Op,
  ReviewTarget,
  SandboxPolicy,
  Submission,
  UserInput,
  describeZodError,
  parseOrThrow,
  wireJsonSchema,
} from '../protocol/index.js';

const PROTOCOL_MD = fileURLToPath(new URL('../docs/PROTOCOL.md', import.meta.url));

/** Every JSON value written in PROTOCOL.md: ```json blocks and inline `{ … }` snippets. */
function jsonExamples(markdown: string): unknown[] {
  const snippets = [...[...markdown.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!), ...[...markdown.matchAll(/`(\{[^`]*\})`/g)].map((m) => m[1]!)];
  return snippets.flatMap((text) => {
    try {
      return [JSON.parse(text) as unknown];
    } catch {
      return []; // shape sketches such as `{ "type": "add", "content" }` are prose, not JSON
    }
  });
}

const opTypes: string[] = Op.options.map((o) => o.shape.type.value);
const eventTypes: string[] = EventMsg.options.map((o) => o.shape.type.value);

/** An envelope whose op or msg is abbreviated with a `"...": "..."` placeholder. */
function abbreviated(value: Record<string, unknown>): boolean {
  const inner = (value.op ?? value.msg) as Record<string, unknown> | undefined;
  return inner !== undefined && '...' in inner;
}

function validate(value: unknown): string | null {
  const record = value as Record<string, unknown>;
  if ('op' in record && abbreviated(record)) {
    const type = (record.op as { type: string }).type;
    return opTypes.includes(type) ? null : `unknown op type ${type}`;
  }
  if ('msg' in record && abbreviated(record)) {
    const type = (record.msg as { type: string }).type;
    const envelope = Event.omit({ msg: true }).safeParse(record);
    if (!envelope.success) return describeZodError(envelope.error);
    return eventTypes.includes(type) ? null : `unknown event type ${type}`;
  }
  for (const schema of [Submission, Event, UserInput, SandboxPolicy, ReviewTarget, FileChange] as z.ZodType[]) {
    if (schema.safeParse(value).success) return null;
  }
  return `matches no protocol schema: ${JSON.stringify(value)}`;
}

describe('PROTOCOL.md', () => {
  it.skipIf(!existsSync(PROTOCOL_MD))('every JSON example in it is valid', () => {
    const examples = jsonExamples(readFileSync(PROTOCOL_MD, 'utf8'));
    expect(examples.length).toBeGreaterThanOrEqual(10);
    expect(examples.map(validate).filter((e) => e !== null)).toEqual([]);
  });

  it.skipIf(!existsSync(PROTOCOL_MD))('names every op and event of the schema', () => {
    const text = readFileSync(PROTOCOL_MD, 'utf8');
    for (const type of [...opTypes, ...eventTypes]) expect(text, type).toContain(`\`${type}\``);
  });
});

describe('validation errors', () => {
  it('name the field that was wrong', () => {
    expect(() => parseOrThrow(Submission, { id: 's', op: { type: 'new_session', config: { cwd: 'rel', agent_max_depth: -1 } } })).toThrow(
      /op\.config\.cwd: must be an absolute path; op\.config\.agent_max_depth/,
    );
    expect(() => parseOrThrow(Submission, { id: 's', op: { type: 'exec_approval', id: 'c', decision: 'maybe' } })).toThrow(/op\.decision/);
    expect(() => parseOrThrow(Submission, { op: { type: 'interrupt' } })).toThrow(/^id:/);
  });

  it('accept unknown fields and reject unknown types', () => {
    expect(Submission.parse({ id: 's', session_id: 'x', extra: 1, op: { type: 'interrupt', extra: true } }).op).toEqual({ type: 'interrupt' });
    expect(Submission.safeParse({ id: 's', op: { type: 'dance' } }).success).toBe(false);
  });

  it('require a rollout path or a session id to resume or fork', () => {
    expect(() => parseOrThrow(Submission, { id: 's', op: { type: 'resume_session' } })).toThrow(/op\.rollout_path: needs rollout_path or session_id/);
    expect(Submission.safeParse({ id: 's', op: { type: 'fork_session', session_id: 'abc', nth_user_message: 1 } }).success).toBe(true);
  });
});

describe('the JSON Schema', () => {
  it('is generated from the zod schemas and covers the envelopes', () => {
    const schema = wireJsonSchema() as { definitions: Record<string, unknown> };
    expect(Object.keys(schema.definitions)).toEqual(['Submission', 'Event', 'RolloutLine', 'BusMessage']);
    const text = JSON.stringify(schema);
    for (const type of [...opTypes, ...eventTypes]) expect(text).toContain(`"${type}"`);
  });
});
