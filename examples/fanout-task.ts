/**
 * The fan-out task of the `fanout` and `distributed` examples: audit three modules in parallel,
 * one sub-agent of the `auditor` role per module, each using the count_todos tool.
 */
import type { AgentRole } from '../protocol/index.js';
import { outputFor, spawnedAgentIds, type RecordedRequest, type ScriptStep } from '../testing/index.js';

export const MODULES = ['auth.js', 'billing.js', 'search.js'] as const;

export const FILES: Readonly<Record<string, string>> = {
  'auth.js': 'export function login(user) {\n  // TODO: rate-limit failed attempts\n  return user.password === "secret";\n}\n',
  'billing.js': 'export function charge(cents) {\n  // TODO: handle currencies\n  // FIXME: rounding loses a cent\n  return Math.round(cents);\n}\n',
  'search.js': 'export function search(items, q) {\n  return items.filter((i) => i.includes(q));\n}\n',
};

export const ROLES: Readonly<Record<string, AgentRole>> = {
  auditor: {
    description: 'Audits one module for unfinished work and reports what it found.',
    instructions: 'You audit one module. Use count_todos on it, then answer in one line: the file, how many TODO or FIXME comments, and what they say.',
    tools: ['count_todos', 'read_file'],
    sandbox_policy: 'read-only',
  },
};

export const PROMPT = `Audit the modules ${MODULES.join(', ')} in parallel: spawn one auditor agent per module, wait for all of them, then summarize how much unfinished work each one has.`;

/** What the scripted model does: the moves a capable model would make. */
export function script(): ScriptStep[] {
  const isRoot = (r: RecordedRequest) => JSON.stringify(r.body.input).includes('Audit the modules');
  const auditing = (file: string) => (r: RecordedRequest) => !isRoot(r) && JSON.stringify(r.body.input).includes(`Audit ${file}`);
  return [
    {
      kind: 'response',
      match: (r) => isRoot(r) && outputFor(r, 'spawn-auth.js') === undefined,
      items: MODULES.map((file) => ({
        type: 'function_call' as const,
        name: 'spawn_agent',
        call_id: `spawn-${file}`,
        arguments: { message: `Audit ${file}.`, agent_type: 'auditor' },
      })),
    },
    {
      kind: 'reply',
      match: (r) => isRoot(r) && outputFor(r, 'spawn-auth.js') !== undefined && outputFor(r, 'wait') === undefined,
      handler: (r) => ({
        kind: 'response',
        items: [{ type: 'function_call', name: 'wait_agent', call_id: 'wait', arguments: { agent_ids: spawnedAgentIds(r) } }],
      }),
    },
    {
      kind: 'reply',
      match: (r) => isRoot(r) && outputFor(r, 'wait') !== undefined,
      handler: (r) => {
        const waited = JSON.parse(outputFor(r, 'wait') ?? '{}') as { agents?: { message: string | null }[] };
        const lines = (waited.agents ?? []).map((a) => `- ${a.message ?? '(no answer)'}`);
        return { kind: 'response', items: [{ type: 'message', text: `Unfinished work by module:\n${lines.join('\n')}` }] };
      },
    },
    ...MODULES.flatMap((file): ScriptStep[] => [
      {
        kind: 'response',
        match: (r) => auditing(file)(r) && outputFor(r, 'count') === undefined,
        items: [{ type: 'function_call', name: 'count_todos', call_id: 'count', arguments: { file } }],
      },
      {
        kind: 'reply',
        match: (r) => auditing(file)(r) && outputFor(r, 'count') !== undefined,
        handler: (r) => {
          const found = JSON.parse(outputFor(r, 'count') ?? '{}') as { count?: number; todos?: { text: string }[] };
          const what = (found.todos ?? []).map((t) => t.text.replace(/^\/\/\s*/, '')).join('; ');
          return { kind: 'response', items: [{ type: 'message', text: `${file}: ${found.count ?? 0} open (${what || 'nothing'})` }] };
        },
      },
    ]),
  ];
}
