/**
 * shell_environment_policy: the pure filter (globs, case, order of the steps), its schema and
 * error messages, and the per-policy memo the handlers use.
 */
import { describe, expect, it } from 'vitest';
import { commandEnvironment, filterEnvironment, matchesAny, coreEnvironment } from '../actors/tools/environment-policy.js';
import { normalizeShellEnvironmentPolicy, settingsFromConfig, shellEnvironmentPolicyConfig } from '../machines/turn-context.js';
import { describeZodError, HomeConfig, SessionConfig, ShellEnvironmentPolicy, Submission, wireJsonSchema } from '../protocol/index.js';

/** An environment as an attacker would hope to find it, with a few harmless names. */
const SOURCE: NodeJS.ProcessEnv = {
  PATH: '/usr/bin:/bin',
  HOME: '/home/me',
  USER: 'me',
  LANG: 'C.UTF-8',
  LC_ALL: 'C.UTF-8',
  LC_TIME: 'en_GB.UTF-8',
  TERM: 'xterm',
  TMPDIR: '/tmp',
  SHELL: '/bin/bash',
  EDITOR: 'vi',
  OPENAI_API_KEY: 'sk-live-1',
  openai_api_key: 'sk-live-2',
  OPENAI_BASE_URL: 'https://user:pw@proxy.example/v1',
  OpenAI_Org: 'org-1',
  TROUPE_NATS_URL: 'nats://user:pw@nats:4222',
  troupe_nats_password: 'pw',
  TROUPE_HOME: '/home/me/.troupe',
  GITHUB_TOKEN: 'ghp_1',
  MY_Token_2: 't2',
  AWS_SECRET_ACCESS_KEY: 'aws-s',
  AWS_ACCESS_KEY_ID: 'aws-k',
  PGPASSWORD: 'pg',
  GOOGLE_APPLICATION_CREDENTIALS: '/creds.json',
  MONKEY_BUSINESS: 'matched by *KEY*',
  DATABASE_URL: 'postgres://app:hunter2@db/app',
  'A.B': 'dot',
  AXB: 'x',
  UNSET: undefined,
};

const names = (env: Readonly<Record<string, string>>) => Object.keys(env).sort();

describe('filterEnvironment', () => {
  it("by default removes names that look like secrets, in any case, and troupe's own", () => {
    const env = filterEnvironment(undefined, SOURCE);
    expect(names(env)).toEqual(
      ['A.B', 'AXB', 'DATABASE_URL', 'EDITOR', 'HOME', 'LANG', 'LC_ALL', 'LC_TIME', 'PATH', 'SHELL', 'TERM', 'TMPDIR', 'TROUPE_HOME', 'USER'].sort(),
    );
    // Filtering is by name: a credential inside an innocuous name's value passes.
    expect(env.DATABASE_URL).toBe('postgres://app:hunter2@db/app');
    expect(Object.values(env)).not.toContain('sk-live-1');
  });

  it("ignore_default_excludes keeps *TOKEN* and the like, never troupe's own unless `set` names them", () => {
    const env = filterEnvironment({ ignore_default_excludes: true }, SOURCE);
    expect(env).toMatchObject({ GITHUB_TOKEN: 'ghp_1', MY_Token_2: 't2', PGPASSWORD: 'pg', AWS_SECRET_ACCESS_KEY: 'aws-s' });
    for (const own of ['OPENAI_API_KEY', 'openai_api_key', 'OPENAI_BASE_URL', 'OpenAI_Org', 'TROUPE_NATS_URL', 'troupe_nats_password']) {
      expect(env).not.toHaveProperty(own);
    }
    const readded = filterEnvironment({ ignore_default_excludes: true, set: { OPENAI_API_KEY: 'a-key-for-the-command' } }, SOURCE);
    expect(readded.OPENAI_API_KEY).toBe('a-key-for-the-command');
  });

  it('inherit core keeps the core names (exactly) and LC_*; none keeps nothing but `set`', () => {
    const core = filterEnvironment({ inherit: 'core' }, { ...SOURCE, path: '/lower', LC_SECRET_TOKEN: 'x', HOMEDIR: '/h' });
    expect(names(core)).toEqual(['HOME', 'LANG', 'LC_ALL', 'LC_TIME', 'PATH', 'SHELL', 'TERM', 'TMPDIR', 'USER']);
    expect(filterEnvironment({ inherit: 'none' }, SOURCE)).toEqual({});
    expect(filterEnvironment({ inherit: 'none', set: { ONLY: '1' } }, SOURCE)).toEqual({ ONLY: '1' });
  });

  it('exclude: * is any run, ? one character, case-insensitive, everything else literal', () => {
    expect(names(filterEnvironment({ inherit: 'core', exclude: ['lc_*'] }, SOURCE))).toEqual(['HOME', 'LANG', 'PATH', 'SHELL', 'TERM', 'TMPDIR', 'USER']);
    expect(names(filterEnvironment({ inherit: 'core', exclude: ['?ATH', 'T*'] }, SOURCE))).toEqual(['HOME', 'LANG', 'LC_ALL', 'LC_TIME', 'SHELL', 'USER']);
    // `.` is not a wildcard.
    const dotted = filterEnvironment({ include_only: ['A.B'] }, SOURCE);
    expect(names(dotted)).toEqual(['A.B']);
    expect(matchesAny('HOME', ['HOM'])).toBe(false);
    expect(matchesAny('HOME', ['*OM*'])).toBe(true);
    expect(matchesAny('HOME', ['HOME?'])).toBe(false);
    expect(matchesAny('A+B', ['a+b'])).toBe(true);
    expect(matchesAny('AAB', ['a+b'])).toBe(false);
  });

  it('include_only keeps only matching names; an empty list keeps none', () => {
    expect(names(filterEnvironment({ include_only: ['path', 'home'] }, SOURCE))).toEqual(['HOME', 'PATH']);
    expect(filterEnvironment({ include_only: [] }, SOURCE)).toEqual({});
  });

  it('runs inherit, default excludes, exclude, include_only, then set', () => {
    // include_only cannot bring back what an earlier step removed...
    expect(filterEnvironment({ include_only: ['GITHUB_TOKEN', 'PATH'] }, SOURCE)).toEqual({ PATH: '/usr/bin:/bin' });
    expect(filterEnvironment({ exclude: ['PATH'], include_only: ['PATH', 'HOME'] }, SOURCE)).toEqual({ HOME: '/home/me' });
    expect(filterEnvironment({ inherit: 'core', include_only: ['EDITOR', 'HOME'] }, SOURCE)).toEqual({ HOME: '/home/me' });
    // ...and `set` wins over everything, including a name include_only does not match.
    expect(filterEnvironment({ include_only: ['HOME'], exclude: ['FOO'], set: { FOO: 'bar', HOME: '/elsewhere' } }, SOURCE)).toEqual({
      HOME: '/elsewhere',
      FOO: 'bar',
    });
  });

  it('puts defaults after the filters and before set', () => {
    const pagers = { PAGER: 'cat', GIT_PAGER: 'cat' };
    expect(filterEnvironment({ inherit: 'none' }, SOURCE, pagers)).toEqual(pagers);
    expect(filterEnvironment({ inherit: 'none', set: { PAGER: 'less' } }, SOURCE, pagers)).toEqual({ PAGER: 'less', GIT_PAGER: 'cat' });
    expect(filterEnvironment(undefined, { PAGER: 'most' }, pagers)).toEqual(pagers);
  });
});

describe('commandEnvironment', () => {
  it('is computed once per policy object, frozen, and shared between equal policies', () => {
    const policy = normalizeShellEnvironmentPolicy({ exclude: ['EDITOR'] });
    const first = commandEnvironment(policy);
    expect(commandEnvironment(policy)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    // Another session with the same policy (its own object) gets the very same environment.
    expect(commandEnvironment(normalizeShellEnvironmentPolicy({ exclude: ['EDITOR'] }))).toBe(first);
    const defaults = Object.freeze({ PAGER: 'cat' });
    expect(commandEnvironment(policy, defaults)).toBe(commandEnvironment(policy, defaults));
    expect(commandEnvironment(policy, defaults).PAGER).toBe('cat');
  });

  it('a new policy object reads the process environment as it is now; an old one keeps what it read', () => {
    const before = normalizeShellEnvironmentPolicy({ exclude: ['EDITOR'] });
    const envBefore = commandEnvironment(before);
    process.env.TROUPE_TEST_LATE_VARIABLE = 'late';
    process.env.LATE_API_TOKEN = 'late-secret';
    try {
      const after = commandEnvironment(normalizeShellEnvironmentPolicy({ exclude: ['EDITOR'] }));
      expect(after.TROUPE_TEST_LATE_VARIABLE).toBe('late');
      expect(after).not.toHaveProperty('LATE_API_TOKEN');
      expect(commandEnvironment(before)).toBe(envBefore);
      expect(envBefore).not.toHaveProperty('TROUPE_TEST_LATE_VARIABLE');
    } finally {
      delete process.env.TROUPE_TEST_LATE_VARIABLE;
      delete process.env.LATE_API_TOKEN;
    }
  });

  it('without a policy applies the default one; MCP servers get the core set only', () => {
    process.env.TROUPE_TEST_MCP_TOKEN = 'nope';
    try {
      expect(commandEnvironment(normalizeShellEnvironmentPolicy(undefined))).not.toHaveProperty('TROUPE_TEST_MCP_TOKEN');
      const mcp = coreEnvironment();
      expect(mcp.PATH).toBe(process.env.PATH);
      expect(
        Object.keys(mcp).every(
          (name) => ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'USER', 'USERNAME', 'TMPDIR', 'TEMP', 'TMP', 'LANG', 'TERM'].includes(name) || name.startsWith('LC_'),
        ),
      ).toBe(true);
    } finally {
      delete process.env.TROUPE_TEST_MCP_TOKEN;
    }
  });
});

describe('the policy in configs', () => {
  const problems = (value: unknown) => {
    const parsed = ShellEnvironmentPolicy.safeParse(value);
    return parsed.success ? null : describeZodError(parsed.error, 'shell_environment_policy');
  };

  it('accepts a full policy and fills in defaults for sessions', () => {
    const policy = { inherit: 'core', exclude: ['*_URL'], include_only: ['P*'], set: { A: '1' }, ignore_default_excludes: true } as const;
    expect(problems(policy)).toBeNull();
    expect(SessionConfig.parse({ shell_environment_policy: policy }).shell_environment_policy).toEqual(policy);
    expect(HomeConfig.parse({ shell_environment_policy: { inherit: 'none' } }).shell_environment_policy).toEqual({ inherit: 'none' });
    expect(shellEnvironmentPolicyConfig(normalizeShellEnvironmentPolicy(policy))).toEqual(policy);
    expect(normalizeShellEnvironmentPolicy({})).toEqual({ inherit: 'all', exclude: [], set: {}, ignore_default_excludes: false });
  });

  it('names the field of each mistake', () => {
    expect(problems({ inherit: 'some' })).toMatch(/^shell_environment_policy\.inherit: .*"all"\|"core"\|"none"/);
    expect(problems({ set: { 'A=B': 'x' } })).toBe('shell_environment_policy.set.A=B: variable name "A=B" must not contain "="');
    expect(problems({ set: { '': 'x' } })).toBe('shell_environment_policy.set: a variable name must not be empty');
    expect(problems({ set: { 'A\0': 'x' } })).toMatch(/^shell_environment_policy\.set\.A\0: a variable name must not contain a NUL character$/);
    expect(problems({ set: { A: 'x\0y' } })).toBe('shell_environment_policy.set.A: a value must not contain a NUL character');
    expect(problems({ set: { A: 1 } })).toMatch(/^shell_environment_policy\.set\.A: /);
    expect(problems({ exclude: ['GOOD', ''] })).toBe('shell_environment_policy.exclude.1: a pattern must not be empty');
    expect(problems({ exclude: ['FOO=bar'] })).toMatch(/^shell_environment_policy\.exclude\.0: pattern "FOO=bar" contains "="/);
    expect(problems({ include_only: ['[A-Z]*'] })).toMatch(/^shell_environment_policy\.include_only\.0: .*only \* and \? are wildcards/);
    expect(problems({ exclude: 'TOKEN' })).toMatch(/^shell_environment_policy\.exclude: /);
    expect(problems({ ignore_default_excludes: 'yes' })).toMatch(/^shell_environment_policy\.ignore_default_excludes: /);
    // A misspelt restriction must not be ignored silently.
    expect(problems({ includeOnly: ['PATH'] })).toMatch(/^shell_environment_policy: Unrecognized key: "includeOnly"/);
  });

  it('is part of new_session and of the wire JSON Schema', () => {
    const parsed = Submission.safeParse({ id: '1', op: { type: 'new_session', config: { shell_environment_policy: { inherit: 'nope' } } } });
    expect(parsed.success).toBe(false);
    expect(describeZodError(parsed.error!)).toContain('op.config.shell_environment_policy.inherit');
    expect(JSON.stringify(wireJsonSchema())).toContain('"ignore_default_excludes"');
  });

  it("the session's own policy replaces the home's as a whole", () => {
    const defaults = { model: 'm', cwd: '/', base_instructions: '', shell_environment_policy: { inherit: 'core' as const, exclude: ['X'] } };
    expect(settingsFromConfig({}, defaults).shell_environment_policy).toMatchObject({ inherit: 'core', exclude: ['X'] });
    expect(settingsFromConfig({ shell_environment_policy: { include_only: ['PATH'] } }, defaults).shell_environment_policy).toEqual({
      inherit: 'all',
      exclude: [],
      include_only: ['PATH'],
      set: {},
      ignore_default_excludes: false,
    });
  });
});
