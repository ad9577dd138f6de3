import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useTroupeCli, type CliResult } from '../support/troupe-cli.js';
import { Event, type EventOf } from '../../protocol/index.js';
import { AppServerProcess, troupeBin } from '../support/app-server-process.js';
import { mentions } from '../../testing/requests.js';
import { useScratch } from '../support/e2e.js';

const runFile = promisify(execFile);
const scratch = useScratch();

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {
    ...process.env,
    OPENAI_BASE_URL: scratch.model.url,
    OPENAI_API_KEY: 'k',
    TROUPE_HOME: scratch.home,
    TROUPE_RETRY_BASE_MS: '1',
  };
  for (const name of ['TROUPE_MODEL', 'TROUPE_WIRE_API', 'TROUPE_PROFILE', 'TROUPE_NATS_URL']) delete base[name];
  return { ...base, ...extra };
}

const cli = useTroupeCli();
const troupe = (args: string[], environment: NodeJS.ProcessEnv = env()): Promise<CliResult> => cli.run(args, environment);

const configPath = () => join(scratch.home, 'config.json');
const writeConfig = (config: unknown) => writeFile(configPath(), typeof config === 'string' ? config : JSON.stringify(config));

/** A file with top-level defaults and two profiles. */
const LAYERED = {
  model: 'file-model',
  reasoning_effort: 'low',
  reasoning_summary: 'concise',
  approval_policy: 'untrusted',
  sandbox_policy: { mode: 'read-only', network_access: true },
  profiles: {
    fast: { model: 'profile-model', reasoning_effort: 'high', approval_policy: 'never' },
    other: { model: 'other-model', approval_policy: 'on-failure' },
  },
};

let turns = 0;

/**
 * Run one `troupe exec --json` turn; what the model was sent and the session it ran in. Each
 * run sends a prompt of its own and makes one model request, the one that carries the prompt,
 * so runs may go side by side.
 */
async function execTurn(args: string[], environment: NodeJS.ProcessEnv = env()) {
  const prompt = `<hi ${++turns}>`;
  scratch.model.enqueue({ kind: 'response', match: (r) => mentions(r, prompt), items: [{ type: 'message', text: 'ok' }] });
  const result = await troupe(['exec', '--json', '-C', scratch.workspace, ...args, prompt], environment);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const sent = scratch.model.requests.filter((r) => mentions(r, prompt));
  expect(sent).toHaveLength(1);
  const configured = result.stdout
    .trim()
    .split('\n')
    .map((line) => Event.parse(JSON.parse(line)))
    .find((e) => e.msg.type === 'session_configured')!.msg as EventOf<'session_configured'>;
  return { body: sent[0]!.body, configured };
}

describe('defaults from TROUPE_HOME/config.json', () => {
  it('flag beats environment beats profile beats file beats built-in default, in what the model is sent and the session gets', async () => {
    // Built-in defaults: no file.
    let turn = await execTurn([]);
    expect(turn.body.model).toBe('gpt-5-codex');
    expect(turn.body).not.toHaveProperty('reasoning');
    expect(turn.configured).toMatchObject({ approval_policy: 'on-request', sandbox_policy: { mode: 'workspace-write', network_access: false } });

    await writeConfig(LAYERED);
    // The runs over the file go side by side.
    const [fromFile, fromProfile, overProfile, fromFlags] = await Promise.all([
      execTurn([]),
      execTurn([], env({ TROUPE_PROFILE: 'fast' })),
      execTurn(['--profile', 'fast'], env({ TROUPE_PROFILE: 'other', TROUPE_MODEL: 'env-model' })),
      execTurn(
        [
          '--profile',
          'fast',
          '--model',
          'flag-model',
          '--approval-policy',
          'on-failure',
          '--sandbox',
          'danger-full-access',
          '-c',
          'model_reasoning_effort=minimal',
        ],
        env({ TROUPE_MODEL: 'env-model' }),
      ),
    ]);
    // The file over the defaults.
    turn = fromFile;
    expect(turn.body.model).toBe('file-model');
    expect(turn.body.reasoning).toEqual({ effort: 'low', summary: 'concise' });
    expect(turn.body.include).toEqual(['reasoning.encrypted_content']);
    expect(turn.configured).toMatchObject({ model: 'file-model', approval_policy: 'untrusted', sandbox_policy: { mode: 'read-only', network_access: true } });

    // A profile (TROUPE_PROFILE) over the file; what it leaves out stays the file's.
    turn = fromProfile;
    expect(turn.body.model).toBe('profile-model');
    expect(turn.body.reasoning).toEqual({ effort: 'high', summary: 'concise' });
    expect(turn.configured).toMatchObject({ approval_policy: 'never', sandbox_policy: { mode: 'read-only', network_access: true } });

    // --profile over TROUPE_PROFILE; TROUPE_MODEL over the profile.
    turn = overProfile;
    expect(turn.body.model).toBe('env-model');
    expect(turn.configured).toMatchObject({ model: 'env-model', approval_policy: 'never' });

    // Flags over everything.
    turn = fromFlags;
    expect(turn.body.model).toBe('flag-model');
    expect(turn.body.reasoning).toEqual({ effort: 'minimal', summary: 'concise' });
    expect(turn.configured).toMatchObject({ model: 'flag-model', approval_policy: 'on-failure', sandbox_policy: { mode: 'danger-full-access' } });
  }, 180_000);

  it('a resumed session keeps the policies it was created with, whatever profile the resume has', async () => {
    await writeConfig(LAYERED);
    const created = await execTurn([], env({ TROUPE_PROFILE: 'fast' }));
    expect(created.configured).toMatchObject({ approval_policy: 'never' });
    const resumed = await execTurn(['resume', '--last'], env({ TROUPE_PROFILE: 'other' }));
    expect(resumed.configured).toMatchObject({ session_id: created.configured.session_id, approval_policy: 'never' });
    expect(resumed.body.reasoning).toEqual({ effort: 'high', summary: 'concise' });
  }, 120_000);

  it('app-server: a new_session takes the profile and file for what it leaves out, and its own fields win', async () => {
    await writeConfig(LAYERED);
    const server = await AppServerProcess.start({ modelUrl: scratch.model.url, home: scratch.home, args: ['--profile', 'fast'], env: { TROUPE_MODEL: '' } });
    try {
      scratch.model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] }, { kind: 'response', items: [{ type: 'message', text: 'ok' }] });
      const plain = await server.newSession({ cwd: scratch.workspace });
      expect(server.events.find((e) => e.session_id === plain && e.msg.type === 'session_configured')!.msg).toMatchObject({
        model: 'profile-model',
        approval_policy: 'never',
        sandbox_policy: { mode: 'read-only', network_access: true },
      });
      await server.turn(plain, 'hi');
      expect(scratch.model.requests.at(-1)!.body).toMatchObject({ model: 'profile-model', reasoning: { effort: 'high', summary: 'concise' } });

      const own = await server.newSession({ cwd: scratch.workspace, model: 'client-model', approval_policy: 'on-request', reasoning_summary: 'none' });
      expect(server.events.find((e) => e.session_id === own && e.msg.type === 'session_configured')!.msg).toMatchObject({
        model: 'client-model',
        approval_policy: 'on-request',
      });
      await server.turn(own, 'hi');
      expect(scratch.model.requests.at(-1)!.body).toMatchObject({ model: 'client-model', reasoning: { effort: 'high' } });
      expect(scratch.model.requests.at(-1)!.body.reasoning).not.toHaveProperty('summary');
      expect(await server.end()).toBe(0);
    } finally {
      await server.dispose();
    }
  });
});

describe('a config file troupe cannot use', () => {
  /**
   * Run `args` with `config` as the config file, in a TROUPE_HOME of its own (so the cases of a
   * test run side by side); the refusal's stderr and the file's path.
   */
  const refused = async (config: unknown, args: string[], pattern: RegExp, extra: NodeJS.ProcessEnv = {}) => {
    const home = await mkdtemp(join(scratch.home, 'case-'));
    const file = join(home, 'config.json');
    await writeFile(file, typeof config === 'string' ? config : JSON.stringify(config));
    const result = await troupe(args, env({ TROUPE_HOME: home, ...extra }));
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    // One line, no stack: the file, the key path, what was expected.
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stderr).toMatch(pattern);
    // Nothing ran.
    expect(scratch.model.requests).toHaveLength(0);
    expect(existsSync(join(home, 'sessions'))).toBe(false);
    return { stderr: result.stderr, file };
  };

  it('an unknown key, at the top level or nested, exits 2 naming the file and the key path', async () => {
    const [top, nested] = await Promise.all([
      refused({ modle: 'x' }, ['exec', '-C', scratch.workspace, 'hi'], /modle: unknown key \(expected one of: model, wire_api,/),
      refused(
        { profiles: { fast: { sandbox_policy: { mode: 'read-only', network: true } } } },
        ['exec', '-C', scratch.workspace, 'hi'],
        /profiles\.fast\.sandbox_policy\.network: unknown key \(expected one of: mode, writable_roots, network_access/,
      ),
      refused({ shell_environment_policy: { inherit: 'all', exlude: ['X'] } }, ['app-server'], /shell_environment_policy\.exlude/),
    ]);
    expect(top.stderr).toContain(top.file);
    expect(nested.stderr).toContain(nested.file);
  }, 120_000);

  it('a bad value exits 2 naming the key path and what was expected', async () => {
    await Promise.all([
      refused({ project_doc_max_bytes: 'big' }, ['exec', '-C', scratch.workspace, 'hi'], /project_doc_max_bytes: .*expected number/),
      refused(
        { profiles: { fast: { sandbox_policy: { mode: 'read-only', network_access: 'yes' } } } },
        ['review'],
        /profiles\.fast\.sandbox_policy\.network_access: .*expected boolean/,
      ),
      refused({ sandbox_policy: 'open' }, ['config'], /sandbox_policy: expected one of read-only, workspace-write, danger-full-access, or an object/),
      refused({ reasoning_effort: 'max' }, ['jobs', 'run', '--csv', 'x.csv', '--instruction', 'x'], /reasoning_effort: /),
      refused('{ "model": ', ['mcp-server'], /not valid JSON/),
    ]);
  }, 120_000);

  it('an unknown profile exits 2 naming the profiles there are', async () => {
    await Promise.all([
      refused(LAYERED, ['exec', '--profile', 'slow', '-C', scratch.workspace, 'hi'], /no profile "slow" in .*config\.json \(its profiles: fast, other\)/),
      refused(LAYERED, ['resume', '--last', 'hi'], /no profile "slo"/, { TROUPE_PROFILE: 'slo' }),
      refused({}, ['config', '--profile', 'fast'], /no profile "fast" .*it has no profiles/),
    ]);
  }, 120_000);
});

describe('troupe config', () => {
  it('prints each effective setting and where it came from', async () => {
    await writeConfig({ ...LAYERED, mcp_servers: { tool: { command: 'echo' } } });
    const [{ stdout }, text] = await Promise.all([
      runFile(process.execPath, ['--conditions=development', troupeBin(), 'config', '--profile', 'fast', '--json'], {
        env: env({ TROUPE_MODEL: 'env-model', TROUPE_PROFILE: 'other' }),
      }),
      runFile(process.execPath, ['--conditions=development', troupeBin(), 'config', '--model', 'flag-model', '--wire-api', 'chat'], {
        env: env({ TROUPE_PROFILE: 'other' }),
      }),
    ]);
    const shown = JSON.parse(stdout) as { file: string; profile: string; profile_source: string; settings: Record<string, { value: unknown; source: string }> };
    expect(shown).toMatchObject({ file: configPath(), profile: 'fast', profile_source: 'flag --profile' });
    expect(shown.settings).toMatchObject({
      model: { value: 'env-model', source: 'env TROUPE_MODEL' },
      wire_api: { value: 'responses', source: 'default' },
      approval_policy: { value: 'never', source: `profile fast (${configPath()})` },
      reasoning_effort: { value: 'high', source: `profile fast (${configPath()})` },
      reasoning_summary: { value: 'concise', source: configPath() },
      sandbox_policy: { value: { mode: 'read-only', network_access: true }, source: configPath() },
      project_doc_max_bytes: { value: 32768, source: 'default' },
      mcp_servers: { value: { tool: { command: 'echo' } }, source: configPath() },
    });

    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe(`config file: ${configPath()}`);
    expect(lines[1]).toBe('profile: other (env TROUPE_PROFILE)');
    expect(lines.find((l) => l.startsWith('model '))).toMatch(/^model\s+flag-model\s+flag --model$/);
    expect(lines.find((l) => l.startsWith('wire_api '))).toMatch(/^wire_api\s+chat\s+flag --wire-api$/);
    expect(lines.find((l) => l.startsWith('approval_policy '))).toMatch(/^approval_policy\s+on-failure\s+profile other \(/);
    expect(lines.find((l) => l.startsWith('reasoning_effort '))).toMatch(/^reasoning_effort\s+low\s+\//);
  });

  it('every command that starts sessions lists --profile in its help', async () => {
    const help = (args: string[]) => runFile(process.execPath, ['--conditions=development', troupeBin(), ...args, '--help'], { env: env() });
    const commands = ['exec', 'resume', 'review', 'app-server', 'worker', 'jobs', 'mcp-server', 'config'];
    const [top, ...helps] = await Promise.all([help([]), ...commands.map((command) => help([command]))]);
    helps.forEach(({ stdout }, i) => expect(stdout, commands[i]).toMatch(/--profile NAME/));
    expect(top.stdout).toMatch(/troupe config/);
  }, 120_000);
});
