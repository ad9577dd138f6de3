import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';
import { troupeBin } from '../support/app-server-process.js';
import { waitFor } from '../support/wait.js';
import { useScratch } from '../support/e2e.js';

const scratch = useScratch();

/** `troupe exec` on a real terminal, as a person runs it. */
function execInTerminal(args: string[]): { output: () => string; type: (text: string) => void; exited: Promise<number> } {
  let output = '';
  const term = pty.spawn(process.execPath, ['--conditions=development', troupeBin(), 'exec', ...args], {
    name: 'xterm',
    cols: 120,
    rows: 40,
    cwd: scratch.workspace,
    env: { ...process.env, OPENAI_BASE_URL: scratch.model.url, OPENAI_API_KEY: 'k', TROUPE_HOME: scratch.home, TROUPE_RETRY_BASE_MS: '1', NO_COLOR: '1' },
  });
  term.onData((data) => {
    output += data;
  });
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  return { output: () => output, type: (text) => term.write(text), exited };
}

describe('troupe exec in a terminal', () => {
  it('asks for approval and runs the command when the user says yes', async () => {
    const file = join(scratch.workspace, 'approved.txt');
    scratch.model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['touch', file] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Created it.' }] },
    );
    const run = execInTerminal(['--approval-policy', 'untrusted', '--sandbox', 'danger-full-access', '-C', scratch.workspace, 'create the file']);
    await waitFor(() => run.output().includes('[y]es'), 'the approval question');
    expect(run.output()).toContain(`Allow troupe to run \`touch ${file}\``);
    run.type('y\r');
    expect(await run.exited).toBe(0);
    expect(existsSync(file)).toBe(true);
    expect(run.output()).toContain('Created it.');
  });

  it('"n" denies the command and the scratch.model is told', async () => {
    const file = join(scratch.workspace, 'denied.txt');
    scratch.model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['touch', file] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Understood.' }] },
    );
    const run = execInTerminal(['--approval-policy', 'untrusted', '--sandbox', 'danger-full-access', '-C', scratch.workspace, 'create the file']);
    await waitFor(() => run.output().includes('[y]es'), 'the approval question');
    run.type('n\r');
    expect(await run.exited).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(JSON.stringify(scratch.model.requests[1]!.body.input)).toMatch(/denied/);
  });
});
