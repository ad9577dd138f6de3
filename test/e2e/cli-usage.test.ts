/**
 * `troupe --help` and bad arguments: each case is a process of its own that must send nothing,
 * so they share one fake model (which must get no request at all) and run side by side.
 * (cli.test.ts has the commands that do their work.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTroupeCli, type CliResult } from '../support/troupe-cli.js';
import { startFakeModelServer, type FakeModelServer } from '../../testing/fake-model-server.js';

let model: FakeModelServer;
let home: string;
// The tests run side by side: what one leaves running is killed once all are done.
const cli = useTroupeCli('file');

beforeAll(async () => {
  model = await startFakeModelServer();
  home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
});

afterAll(async () => {
  try {
    expect(model.requests).toHaveLength(0);
  } finally {
    await model.close();
    await rm(home, { recursive: true, force: true });
  }
});

/** Run `troupe <args>` with no terminal and an empty stdin, against the file's model. */
function troupe(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return cli.run(args, { ...process.env, OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'k', TROUPE_HOME: home, TROUPE_RETRY_BASE_MS: '1', ...env });
}

// One test per command, each with its own time: the processes start side by side, and a busy
// machine starts each slowly.
describe.concurrent('every command answers --help with its own usage, listing its flags', () => {
  const flags: Record<string, string[]> = {
    'app-server': ['--model', '--wire-api', '--nats', '--namespace', '--inspect[=PORT]', '--tools'],
    exec: [
      '--json',
      '--approval-policy',
      '--sandbox',
      '-C, --cd',
      '--model',
      '--nats-creds',
      '--experimental-json',
      '--output-schema',
      '-c, --config',
      '--add-dir',
      '--inspect[=PORT]',
      '--tools',
    ],
    worker: ['--worker-id', '--capacity', '--ready-file', '--nats-tls-ca', '--inspect[=PORT]', '--tools'],
    inspect: ['--nats', '--port', '--namespace'],
    'mcp-server': ['--model', '--wire-api'],
    resume: ['--last', '--json', '-C, --cd', '--sandbox'],
    review: ['--uncommitted', '--base', '--commit', '--json'],
    sessions: ['--all', '--json', '--nats'],
    demo: ['--keep', '--model'],
    schema: [],
  };
  for (const [command, expected] of Object.entries(flags)) {
    it(command, async ({ expect }) => {
      const helps = ['--help', '-h'];
      const results = await Promise.all(helps.map((help) => troupe([command, help])));
      results.forEach((result, i) => {
        const label = `${command} ${helps[i]}`;
        expect(result.code, label).toBe(0);
        expect(result.stdout.slice(0, `Usage: troupe ${command}`.length), `${label} (stderr: ${result.stderr})`).toBe(`Usage: troupe ${command}`);
        for (const flag of expected) expect(result.stdout, label).toContain(flag);
      });
    });
  }
  it('troupe --help names them all, and help COMMAND is COMMAND --help', async ({ expect }) => {
    const [top, help] = await Promise.all([troupe(['--help']), troupe(['help', 'worker'])]);
    expect(top.code).toBe(0);
    for (const command of Object.keys(flags)) expect(top.stdout).toContain(`troupe ${command}`);
    expect(help.stdout.startsWith('Usage: troupe worker')).toBe(true);
  });
});

describe.concurrent('bad arguments exit 2 with one line naming what was wrong, and no stack', () => {
  const cases: [string[], RegExp][] = [
    [['exec', '-C', '/nonexistent/dir', 'hi'], /^troupe exec: -C \/nonexistent\/dir: not a directory \(see troupe exec --help\)\n$/],
    [['exec', '--bogus', 'hi'], /^troupe exec: Unknown option '--bogus'.*\(see troupe exec --help\)\n$/],
    [['exec', '--sandbox', 'open', 'hi'], /^troupe exec: --sandbox must be one of read-only, workspace-write, danger-full-access/],
    [['exec', '--output-schema', '/nonexistent/schema.json', 'hi'], /^troupe exec: --output-schema \/nonexistent\/schema.json: no such file/],
    [
      ['exec', '--config', 'approval_policy="sometimes"', 'hi'],
      /^troupe exec: --config approval_policy must be one of untrusted, on-failure, on-request, never, got "sometimes"/,
    ],
    [
      ['exec', '--config', 'sandbox_workspace_write.network_access="yes"', 'hi'],
      /^troupe exec: --config sandbox_workspace_write.network_access must be true or false/,
    ],
    [['exec', '--image', '/nonexistent.png', 'hi'], /^troupe exec: --image \/nonexistent.png: no such file/],
    [['exec', '--json', '--experimental-json', 'hi'], /^troupe exec: --json and --experimental-json cannot be used together/],
    [['exec', 'resume'], /^troupe exec: exec resume needs a session id, or --last/],
    [['worker'], /^troupe worker: worker needs --nats URL/],
    [['app-server', '--wire-api', 'soap'], /^troupe app-server: --wire-api must be "responses" or "chat"/],
    [['frobnicate'], /^troupe: unknown command "frobnicate" \(see troupe --help\)\n$/],
  ];
  // Settings from the environment, named in the message as the flags are.
  const environmentCases: [string[], string, string, RegExp][] = [
    [['exec', 'hi'], 'TROUPE_WIRE_API', 'soap', /^troupe exec: TROUPE_WIRE_API must be "responses" or "chat", got "soap"\n$/],
    [['app-server'], 'TROUPE_RETRY_BASE_MS', 'soon', /^troupe app-server: TROUPE_RETRY_BASE_MS must be a non-negative number, got "soon"\n$/],
  ];
  for (const [args, name, value, message] of environmentCases) {
    it(`${name}=${value} troupe ${args.join(' ')}`, async ({ expect }) => {
      const result = await troupe(args, { [name]: value });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).toBe('');
      expect(model.requests).toHaveLength(0);
    });
  }
  for (const [args, message] of cases) {
    it(args.join(' '), async ({ expect }) => {
      const result = await troupe(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stdout).toBe('');
      // The model is shared by the file's cases: it must have had no request from any of them.
      expect(model.requests).toHaveLength(0);
    });
  }
});
