import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pty from 'node-pty';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { troupeBin } from '../support/app-server-process.js';
import { waitFor } from '../support/wait.js';
import { startFakeModelServer, type FakeModelServer } from '../support/index.js';

let model: FakeModelServer;
let home: string;
let workspace: string;

beforeEach(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
});

afterEach(async () => {
  await model.close();
  await rm(home, { recursive: true, force: true });
  await rm(workspace, { recursive: true, force: true });
});

/** `troupe exec` on a real terminal, as a person runs it. */
function execInTerminal(args: string[]): { output: () => string; type: (text: string) => void; exited: Promise<number> } {
  let output = '';
  const term = pty.spawn(process.execPath, ['--conditions=development', troupeBin(), 'exec', ...args], {
    name: 'xterm',
    cols: 120,
    rows: 40,
    cwd: workspace,
    env: { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'k', TROUPE_HOME: home, TROUPE_RETRY_BASE_MS: '1', NO_COLOR: '1' },
  });
  term.onData((data) => {
    output += data;
  });
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  return { output: () => output, type: (text) => term.write(text), exited };
}

describe('troupe exec in a terminal', () => {
  it('asks for approval and runs the command when the user says yes', async () => {
    const file = join(workspace, 'approved.txt');
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['touch', file] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Created it.' }] },
    );
    const run = execInTerminal(['--approval-policy', 'untrusted', '--sandbox', 'danger-full-access', '-C', workspace, 'create the file']);
    await waitFor(() => run.output().includes('[y]es'), 'the approval question');
    expect(run.output()).toContain(`Allow troupe to run \`touch ${file}\``);
    run.type('y\r');
    expect(await run.exited).toBe(0);
    expect(existsSync(file)).toBe(true);
    expect(run.output()).toContain('Created it.');
  });

  it('"n" denies the command and the model is told', async () => {
    const file = join(workspace, 'denied.txt');
    model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['touch', file] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Understood.' }] },
    );
    const run = execInTerminal(['--approval-policy', 'untrusted', '--sandbox', 'danger-full-access', '-C', workspace, 'create the file']);
    await waitFor(() => run.output().includes('[y]es'), 'the approval question');
    run.type('n\r');
    expect(await run.exited).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(JSON.stringify(model.requests[1]!.body.input)).toMatch(/denied/);
  });
});
