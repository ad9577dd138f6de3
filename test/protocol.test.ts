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

  it('refuse a client tool whose name a model cannot call, or whose parameters are not an object schema', () => {
    const newSession = (tool: Record<string, unknown>) => ({ id: 's', op: { type: 'new_session', config: { client_tools: [tool] } } });
    expect(() => parseOrThrow(Submission, newSession({ name: 'has space', description: 'd', parameters: { type: 'object' } }))).toThrow(
      /op\.config\.client_tools\.0\.name: must be 1 to 64 letters/,
    );
    expect(() => parseOrThrow(Submission, newSession({ name: 'ok', description: 'd', parameters: { type: 'string' } }))).toThrow(
      /op\.config\.client_tools\.0\.parameters\.type/,
    );
    expect(() => parseOrThrow(Submission, newSession({ name: 'ok', description: 'd', parameters: { type: 'object', required: 'q' } }))).toThrow(
      /op\.config\.client_tools\.0\.parameters\.required/,
    );
    const twice = {
      id: 's',
      op: { type: 'new_session', config: { client_tools: [0, 1].map(() => ({ name: 'a', description: 'd', parameters: { type: 'object' } })) } },
    };
    expect(() => parseOrThrow(Submission, twice)).toThrow(/op\.config\.client_tools: two client tools have the same name/);
    expect(() => parseOrThrow(Submission, { id: 's', op: { type: 'client_tool_output', call_id: 'c', output: 'x' } })).toThrow(/op\.success/);
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

  it('describes client tools: the session config, the call event and the output op', () => {
    type Node = { properties: Record<string, Node>; oneOf: Node[]; items: Node; const?: string };
    const { definitions } = wireJsonSchema() as unknown as { definitions: { Submission: Node; Event: Node } };
    const variant = (union: Node, type: string) => union.oneOf.find((v) => v.properties.type?.const === type);
    const clientTools = variant(definitions.Submission.properties.op!, 'new_session')?.properties.config?.properties.client_tools;
    expect(clientTools?.items).toMatchObject({
      type: 'object',
      properties: {
        name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
        description: { type: 'string' },
        parameters: { type: 'object', properties: { type: { const: 'object' }, required: { type: 'array' } }, required: ['type'] },
      },
      required: ['name', 'description', 'parameters'],
    });
    expect(variant(definitions.Submission.properties.op!, 'client_tool_output')).toMatchObject({
      properties: { call_id: { type: 'string' }, output: { type: 'string' }, success: { type: 'boolean' } },
      required: ['type', 'call_id', 'output', 'success'],
    });
    expect(variant(definitions.Event.properties.msg!, 'client_tool_call')).toMatchObject({
      properties: { call_id: { type: 'string' }, turn_id: { type: 'string' }, name: { type: 'string' }, arguments: {} },
      required: ['type', 'call_id', 'turn_id', 'name', 'arguments'],
    });
  });
});
