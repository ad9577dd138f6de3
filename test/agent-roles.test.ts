import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../index.js';
import type { AgentRole, Event, EventOf } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer, type RecordedRequest } from '../testing/index.js';
import { inputItems, inputTexts, outputFor } from '../testing/requests.js';

let model: FakeModelServer;
let home: string;
let workspace: string;
let runtime: Runtime;
let events: Event[];

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-roles-home-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-roles-ws-'));
  runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: workspace });
  events = [];
  runtime.onEvent((e) => events.push(e));
});

afterEach(async () => {
  await runtime.close();
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
});

const reviewer: AgentRole = {
  description: 'Reviews a change and reports problems.',
  instructions: 'You review changes. Report problems; fix nothing.',
  model: 'review-model',
  tools: ['read_file', 'list_dir'],
  sandbox_policy: 'read-only',
  approval_policy: 'untrusted',
};

const spawn = (id: string, message: string, agentType?: string) => ({
  kind: 'response' as const,
  items: [{ type: 'function_call' as const, name: 'spawn_agent', call_id: id, arguments: { message, ...(agentType ? { agent_type: agentType } : {}) } }],
});
const say = (text: string, match?: (r: RecordedRequest) => boolean) => ({
  kind: 'response' as const,
  items: [{ type: 'message' as const, text }],
  ...(match ? { match } : {}),
});
const asks = (text: string) => (r: RecordedRequest) => inputTexts(r).includes(text);
const toolNames = (r: RecordedRequest) => ((r.body.tools as { name: string }[] | undefined) ?? []).map((t) => t.name);
const configuredChild = (): EventOf<'session_configured'> =>
  events.map((e) => e.msg).find((m): m is EventOf<'session_configured'> => m.type === 'session_configured' && m.parent_session_id !== null)!;

describe('agent roles', () => {
  it('give a sub-agent its instructions, model, tools and a narrower sandbox and approval policy', async () => {
    const session = await runtime.newSession({ agent_roles: { reviewer }, approval_policy: 'on-request', sandbox_policy: 'workspace-write' });
    model.enqueue(spawn('sp', 'review the change', 'reviewer'), say('reviewed', asks('review the change')), say('parent done'));
    const result = await session.run('get a review');
    expect(result.items).toContainEqual({
      type: 'agent_spawned',
      call_id: 'sp',
      agent_id: expect.any(String),
      nickname: expect.any(String),
      role: 'reviewer',
      prompt: 'review the change',
    });
    const spawnTool = (model.requests[0]!.body.tools as { name: string; description: string }[]).find((t) => t.name === 'spawn_agent')!;
    expect(spawnTool.description).toContain('- reviewer: Reviews a change and reports problems.');
    expect(spawnTool.description).toContain('- explorer: ');
    const child = model.requests.find(asks('review the change'))!;
    expect(child.body.model).toBe('review-model');
    expect(toolNames(child).sort()).toEqual(['list_dir', 'read_file']);
    const developer = inputItems(child).filter((i) => i.role === 'developer');
    expect(JSON.stringify(developer)).toContain('You review changes. Report problems; fix nothing.');
    expect(configuredChild()).toMatchObject({ model: 'review-model', approval_policy: 'untrusted', sandbox_policy: { mode: 'read-only' } });
    const spawned = events.find((e) => e.msg.type === 'agent_spawned')!.msg;
    expect(spawned).toMatchObject({ role: 'reviewer', prompt: 'review the change' });
  });

  it('never widen the parent: a role asking for more keeps the parent sandbox and approval policy', async () => {
    const wide: AgentRole = { description: 'Wants everything.', instructions: 'Do anything.', sandbox_policy: 'danger-full-access', approval_policy: 'never' };
    const session = await runtime.newSession({ agent_roles: { wide }, approval_policy: 'untrusted', sandbox_policy: 'read-only' });
    model.enqueue(spawn('sp', 'do it all', 'wide'), say('did', asks('do it all')), say('parent done'));
    await session.run('go wide');
    expect(configuredChild()).toMatchObject({ approval_policy: 'untrusted', sandbox_policy: { mode: 'read-only' } });
  });

  it('come from TROUPE_HOME/config.json too, and an unknown one is a tool error naming the roles there are', async () => {
    await writeFile(join(home, 'config.json'), JSON.stringify({ agent_roles: { tester: { description: 'Runs the tests.', instructions: 'Run the tests.' } } }));
    const session = await runtime.newSession();
    model.enqueue(spawn('bad', 'x', 'architect'), spawn('good', 'run them', 'tester'), say('tested', asks('run them')), say('done'));
    await session.run('test it');
    expect(outputFor(model.requests[1]!, 'bad')).toBe('cannot spawn: unknown agent_type "architect"; the roles are: default, explorer, worker, tester');
    const child = model.requests.find(asks('run them'))!;
    expect(JSON.stringify(inputItems(child))).toContain('Run the tests.');
  });

  it('refuse a config whose role has an unknown key', async () => {
    await expect(
      runtime.newSession({ agent_roles: { r: { description: 'd', instructions: 'i', sandbox: 'read-only' } as unknown as AgentRole } }),
    ).rejects.toThrow(/agent_roles\.r/);
  });

  it('read the project AGENTS.md unless the role opts out', async () => {
    await writeFile(join(workspace, 'AGENTS.md'), 'Always run the linter.');
    const quiet: AgentRole = { description: 'Ignores project notes.', instructions: 'Work without notes.', project_docs: false };
    const session = await runtime.newSession({ agent_roles: { quiet } });
    model.enqueue(
      spawn('q', 'quiet task', 'quiet'),
      spawn('d', 'plain task'),
      say('q done', asks('quiet task')),
      say('d done', asks('plain task')),
      say('both'),
    );
    await session.run('two children');
    // The parent does not wait for its children: their requests may come after its turn ends.
    await expect.poll(() => [asks('quiet task'), asks('plain task')].every((m) => model.requests.some(m)), { timeout: 30_000 }).toBe(true);
    const mentionsDocs = (r: RecordedRequest) => JSON.stringify(r.body.input).includes('Always run the linter.');
    expect(mentionsDocs(model.requests.find(asks('quiet task'))!)).toBe(false);
    expect(mentionsDocs(model.requests.find(asks('plain task'))!)).toBe(true);
  });
});

describe('list_agents', () => {
  it('lists the live agents of the whole tree, from the root and from a sub-agent', async () => {
    const session = await runtime.newSession();
    model.enqueue(
      {
        kind: 'response',
        items: [
          { type: 'function_call', name: 'spawn_agent', call_id: 'a', arguments: { message: 'first task', agent_type: 'explorer' } },
          { type: 'function_call', name: 'spawn_agent', call_id: 'b', arguments: { message: 'second task' } },
        ],
      },
      { kind: 'response', items: [{ type: 'function_call', name: 'list_agents', call_id: 'la', arguments: {} }], match: asks('first task') },
      say('first done', (r) => asks('first task')(r) && outputFor(r, 'la') !== undefined),
      say('second done', asks('second task')),
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'list_agents', call_id: 'root-list', arguments: {} }],
        match: (r) => outputFor(r, 'b') !== undefined,
      },
      say('all listed'),
    );
    await session.run('fan out');
    const fromChild = JSON.parse(
      outputFor(
        model.requests.find((r) => outputFor(r, 'la') !== undefined)!,
        'la',
      )!,
    ) as { agents: unknown[] };
    const fromRoot = JSON.parse(
      outputFor(
        model.requests.find((r) => outputFor(r, 'root-list') !== undefined)!,
        'root-list',
      )!,
    ) as { agents: unknown[] };
    const expected = [
      { agent_id: expect.any(String), nickname: expect.any(String), role: 'explorer', status: expect.any(String), depth: 1, parent_session_id: session.id },
      { agent_id: expect.any(String), nickname: expect.any(String), role: null, status: expect.any(String), depth: 1, parent_session_id: session.id },
    ];
    expect(fromChild.agents).toEqual(expect.arrayContaining(expected));
    expect(fromRoot.agents).toEqual(expect.arrayContaining(expected));
    expect(fromRoot.agents).toHaveLength(2);
  });
});

describe('a role never widens the sandbox of the session that spawns it', () => {
  it('drops a role writable root that only looks inside the parent writable roots ("<root>/../elsewhere")', async () => {
    // Outside the session's working directory: the parent may write to allowed/, not to secret/.
    // Not under the temp directory either, which every sandbox may write to.
    await mkdir('/var/tmp', { recursive: true });
    const outsideBase = await mkdtemp('/var/tmp/troupe-attack-roots-');
    try {
      const allowed = join(outsideBase, 'allowed');
      const secret = join(outsideBase, 'secret');
      await mkdir(allowed);
      await mkdir(secret);
      // A textual prefix of the parent's root, but resolving outside it.
      const escape: AgentRole = {
        description: 'Writes where it should not.',
        instructions: 'Write anywhere.',
        sandbox_policy: { mode: 'workspace-write', writable_roots: [`${allowed}/../secret`] },
      };
      const session = await runtime.newSession({
        agent_roles: { escape },
        approval_policy: 'never',
        sandbox_policy: { mode: 'workspace-write', writable_roots: [allowed] },
      });
      const target = join(secret, 'written-by-child');
      const control = join(secret, 'written-by-parent');
      const parentAsks = (r: RecordedRequest, call: string) => asks('spawn the escaping role')(r) && outputFor(r, call) === undefined;
      model.enqueue(
        {
          kind: 'response',
          match: (r) => parentAsks(r, 'p'),
          items: [{ type: 'function_call', name: 'shell', call_id: 'p', arguments: { command: ['touch', control] } }],
        },
        { ...spawn('sp', 'ESCAPE TASK', 'escape'), match: (r: RecordedRequest) => parentAsks(r, 'sp') },
        {
          kind: 'response',
          match: (r) => asks('ESCAPE TASK')(r) && outputFor(r, 'w') === undefined,
          items: [{ type: 'function_call', name: 'shell', call_id: 'w', arguments: { command: ['touch', target] } }],
        },
        say('child done', (r) => asks('ESCAPE TASK')(r) && outputFor(r, 'w') !== undefined),
        say('parent done', asks('spawn the escaping role')),
      );
      await session.run('spawn the escaping role');
      // The control: the parent's own sandbox keeps it out of secret/.
      expect(existsSync(control), 'the parent itself could write to secret/; the test is not meaningful').toBe(false);
      const asked = model.requests.find((r) => outputFor(r, 'w') !== undefined);
      // The parent may not write there, so neither may the child it started.
      expect(existsSync(target), `the child wrote ${target}: ${asked ? outputFor(asked, 'w') : 'no output'}`).toBe(false);
      // Its writable roots are the parent's, or inside them, as real directories.
      expect(configuredChild().sandbox_policy).toMatchObject({ writable_roots: [] });
    } finally {
      await rm(outsideBase, { recursive: true, force: true });
    }
  });
});
