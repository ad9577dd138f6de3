import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';
import { detectSandbox } from '../../lib/sandbox/detect.js';
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

// Without a sandbox backend the demo runs unsandboxed, and nothing in it needs the user's approval.
const sandboxed = (await detectSandbox()).ok;

describe('troupe demo in a terminal', () => {
  it.skipIf(!sandboxed)('holds the other agents back while the approval question is open, and shows them once it is answered', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TROUPE_HOME: scratch.home, NO_COLOR: '1' };
    delete env.OPENAI_API_KEY;
    delete env.OPENAI_BASE_URL;
    let output = '';
    const term = pty.spawn(process.execPath, ['--conditions=development', troupeBin(), 'demo'], { name: 'xterm', cols: 200, rows: 50, env });
    term.onData((data) => {
      output += data;
    });
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      await waitFor(() => output.includes('[q]uit turn: '), 'the approval question', 30_000);
      const dir = /drives real tools in (\S+)/.exec(output)?.[1];
      expect(dir).toBeDefined();
      const asked = output.length;
      // Meanwhile the test runner reports and the fixer fixes the bug: on disk, not on screen.
      await waitFor(() => readFileSync(join(dir!, 'stats.js'), 'utf8').includes('/ values.length;'), 'the fix', 30_000);
      // Readline may still place the cursor after the question (a control sequence, nothing shown).
      expect(stripVTControlCharacters(output.slice(asked))).toBe('');
      term.write('y\r');
      expect(await exited).toBe(0);
      const after = stripVTControlCharacters(output.slice(asked));
      // The answer, then what was held.
      expect(after).toMatch(/^y\r*\n/);
      expect(after).toContain('[Cleo] Fixed: mean() now divides by values.length.');
      expect(after).toMatch(/- Basil: Node\.js v\d+\.\d+\.\d+ is installed\./);
    } finally {
      term.kill();
    }
  });
});
