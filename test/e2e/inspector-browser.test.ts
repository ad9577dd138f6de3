import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import { inspectorUrlIn } from '../support/inspector-client.js';
import { waitFor } from '../support/wait.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';

/** Debian's Chromium (`apt-get install -y chromium`), or the one TROUPE_CHROMIUM names. */
function findChromium(): string | null {
  for (const candidate of [process.env.TROUPE_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const CHROMIUM = findChromium();
if (CHROMIUM === null) console.warn('inspector browser test skipped: no Chromium found (apt-get install -y chromium, or set TROUPE_CHROMIUM)');

/** Flags that let Chromium run headless in a container without reaching out anywhere. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
let browser: BrowserContext | null = null;
let profile: string | null = null;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E({ args: ['--inspect'] }));
});

afterEach(async () => {
  await browser?.close();
  browser = null;
  if (profile) await rm(profile, { recursive: true, force: true });
  profile = null;
  await finishE2E({ model, server, workspace });
});

const say = (text: string, match: (r: RecordedRequest) => boolean): ScriptStep => ({ kind: 'response', items: [{ type: 'message', text }], match });
const spawn = (callId: string, message: string) => ({ type: 'function_call' as const, name: 'spawn_agent', call_id: callId, arguments: { message } });
const lastCallIs = (callId: string) => (r: RecordedRequest) => outputFor(r, callId) !== undefined;
/** Text the model controls, shown on the page: it must stay text. */
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

describe.skipIf(CHROMIUM === null)('troupe app-server --inspect in a browser', () => {
  it('shows a fan-out of three agents, one awaiting approval, and approves it from the keyboard', async () => {
    const file = join(workspace, 'approved.txt');
    model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'fan out') && !mentions(r, 'CHILD'),
        items: [spawn('s1', 'CHILD lint'), spawn('s2', `CHILD build ${HOSTILE}`), spawn('s3', 'CHILD test')],
      },
      say('lint is clean', (r) => mentions(r, 'CHILD lint')),
      say('tests pass', (r) => mentions(r, 'CHILD test')),
      {
        kind: 'response',
        match: (r) => mentions(r, 'CHILD build') && outputFor(r, 'touch') === undefined,
        items: [{ type: 'function_call', name: 'shell', call_id: 'touch', arguments: { command: ['touch', file] } }],
      },
      say('built', lastCallIs('touch')),
      {
        kind: 'reply',
        match: lastCallIs('s3'),
        handler: (request) => ({
          kind: 'response',
          items: [{ type: 'function_call', name: 'wait_agent', call_id: 'wait', arguments: { agent_ids: spawnedAgentIds(request) } }],
        }),
      },
      say('all three reported', lastCallIs('wait')),
    );
    await waitFor(() => inspectorUrlIn(server.stderr) !== undefined, 'the inspector address on stderr');
    const url = inspectorUrlIn(server.stderr)!;

    const parent = await server.newSession({ cwd: workspace, approval_policy: 'untrusted' });
    const turn = server.submit({ type: 'user_turn', items: [{ type: 'text', text: 'fan out the checks' }] }, parent);
    const request = await server.waitForMsg('exec_approval_request', { where: (m) => m.call_id === 'touch' });

    profile = await mkdtemp(join(tmpdir(), 'troupe-chromium-'));
    // A fresh profile each run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM!, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 800 } });
    const page = await browser.newPage();
    await page.goto(url);

    // The tree: the root, and its three children under it, each with the worker it runs on.
    const root = page.locator('#tree > li');
    await expect.poll(() => root.count()).toBe(1);
    await expect.poll(() => root.locator(':scope > ul > li').count()).toBe(3);
    await expect.poll(() => root.locator(':scope > .node').innerText()).toContain('on local');
    const waiting = page.locator(`#tree [data-session="${request.session_id!}"]`);
    await expect.poll(() => waiting.innerText()).toContain('awaiting approval');

    // The pending approval shows its command, and the model's text stays text.
    const approval = page.locator(`#approvals .approval[data-call="touch"]`);
    await expect.poll(() => approval.innerText()).toContain(`touch ${file}`);
    await waiting.click();
    await expect.poll(() => page.locator('#detail').innerText()).toContain(HOSTILE);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();

    const screenshot = await page.screenshot();
    expect(screenshot.subarray(1, 4).toString('latin1')).toBe('PNG');
    const keep = process.env.TROUPE_INSPECTOR_SCREENSHOT;
    if (keep) await writeFile(keep, screenshot);

    // The event log filters.
    await page.keyboard.press('/');
    await page.keyboard.type('agent_spawned');
    await expect.poll(() => page.locator('#log li').count()).toBe(3);
    await page.keyboard.press('Escape');

    // `a` approves the first pending request: the same exec_approval op any client sends.
    await page.keyboard.press('a');
    const end = await server.waitForMsg('task_complete', { session: parent, id: turn });
    expect(end.msg.last_agent_message).toBe('all three reported');
    expect(existsSync(file)).toBe(true);
    expect(
      outputFor(
        model.requests.find((r) => mentions(r, 'CHILD build') && outputFor(r, 'touch') !== undefined)!,
        'touch',
      ),
    ).toBeDefined();
    await expect.poll(() => page.locator('#approvals .approval').count()).toBe(0);
    await expect.poll(() => root.locator(':scope > .node').innerText()).toContain('idle');
  });
});
