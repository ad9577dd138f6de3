/**
 * Hostile tests of the isolation between agent trees, sessions and roles. Each states the
 * behaviour expected; they fail where the runtime lets a role or a sub-agent reach further
 * than the session that started it.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../index.js';
import type { AgentRole, Event, EventOf } from '../protocol/index.js';
import { startFakeModelServer, type FakeModelServer, type RecordedRequest } from '../testing/index.js';
import { inputTexts, outputFor } from '../testing/requests.js';

let model: FakeModelServer;
let home: string;
let workspace: string;
let runtime: Runtime;
let events: Event[];
let cleanups: Array<() => Promise<void>>;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-attack-home-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-attack-ws-'));
  runtime = createRuntime({ baseURL: model.url, apiKey: 'k', home, cwd: workspace });
  events = [];
  cleanups = [];
  runtime.onEvent((e) => events.push(e));
});

afterEach(async () => {
  await runtime.close();
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
  for (const cleanup of cleanups) await cleanup();
});

const spawn = (id: string, message: string, agentType?: string, match?: (r: RecordedRequest) => boolean) => ({
  kind: 'response' as const,
  items: [{ type: 'function_call' as const, name: 'spawn_agent', call_id: id, arguments: { message, ...(agentType ? { agent_type: agentType } : {}) } }],
  ...(match ? { match } : {}),
});
const say = (text: string, match?: (r: RecordedRequest) => boolean) => ({
  kind: 'response' as const,
  items: [{ type: 'message' as const, text }],
  ...(match ? { match } : {}),
});
const asks = (text: string) => (r: RecordedRequest) => inputTexts(r).includes(text);
const configured = (depth: number): EventOf<'session_configured'> | undefined =>
  events.map((e) => e.msg).find((m): m is EventOf<'session_configured'> => m.type === 'session_configured' && m.depth === depth);

describe('a role never widens the sandbox of the session that spawns it', () => {
  it('drops a role writable root that only looks inside the parent writable roots ("<root>/../elsewhere")', async () => {
    // Outside the session's working directory: the parent may write to allowed/, not to secret/.
    // Not under the temp directory either, which every sandbox may write to.
    await mkdir('/var/tmp', { recursive: true });
    const outsideBase = await mkdtemp('/var/tmp/troupe-attack-roots-');
    cleanups.push(() => rm(outsideBase, { recursive: true, force: true }));
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
    const parentRoots = [allowed];
    const session = await runtime.newSession({
      agent_roles: { escape },
      approval_policy: 'never',
      sandbox_policy: { mode: 'workspace-write', writable_roots: parentRoots },
    });
    const target = join(secret, 'written-by-child');
    const control = join(secret, 'written-by-parent');
    model.enqueue(
      {
        kind: 'response',
        match: (r) => asks('spawn the escaping role')(r) && outputFor(r, 'p') === undefined,
        items: [{ type: 'function_call', name: 'shell', call_id: 'p', arguments: { command: ['touch', control] } }],
      },
      spawn('sp', 'ESCAPE TASK', 'escape', (r) => asks('spawn the escaping role')(r) && outputFor(r, 'sp') === undefined),
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
    await expect.poll(() => model.requests.some((r) => outputFor(r, 'w') !== undefined), { timeout: 30_000 }).toBe(true);
    const shellOutput = outputFor(
      model.requests.find((r) => outputFor(r, 'w') !== undefined)!,
      'w',
    );
    // The parent may not write there, so neither may the child it started.
    expect(existsSync(target), `the child wrote ${target}: ${shellOutput}`).toBe(false);
    const child = configured(1)!;
    const policy = child.sandbox_policy as { writable_roots?: string[] };
    // Every writable root of the child must be one of the parent's, or inside one of them, once resolved.
    const within = (root: string) => [workspace, ...parentRoots].some((p) => resolve(root) === p || resolve(root).startsWith(p + sep));
    const outside = (policy.writable_roots ?? []).filter((r) => !within(r));
    expect(outside, `the child may write to ${outside.join(', ')} (${outside.map((r) => resolve(r)).join(', ')}), which its parent may not`).toEqual([]);
  });
});
