import { realpathSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ExecPolicy, ExecPolicyError, loadExecPolicy, loadShellParser, parseRules, parseJsonWithLines } from '../lib/exec-policy/index.js';

const FILE = '/home/me/.troupe/rules.json';

describe('rules file validation', () => {
  it('accepts prefix rules with allow, prompt and forbidden', () => {
    const rules = parseRules(
      `{
  "rules": [
    { "prefix": ["npm", "test"], "decision": "allow" },
    { "prefix": ["git", "push"], "decision": "prompt" },
    { "prefix": ["rm", "-rf"], "decision": "forbidden", "reason": "never delete trees" }
  ]
}`,
      FILE,
      { project: false },
    );
    expect(rules.map((r) => [r.decision, r.line])).toEqual([
      ['allow', 3],
      ['prompt', 4],
      ['forbidden', 5],
    ]);
  });

  const problem = (text: string, project = false) => {
    try {
      parseRules(text, FILE, { project });
    } catch (error) {
      expect(error).toBeInstanceOf(ExecPolicyError);
      return (error as Error).message;
    }
    throw new Error('expected an error');
  };

  it('names the file, the line and the problem', () => {
    expect(problem('{\n  "rules": [\n    { "prefix": ["ls"], "decision": "alow" }\n  ]\n}')).toMatch(
      /^\/home\/me\/\.troupe\/rules\.json:3: rules\.0\.decision: /,
    );
    expect(problem('{\n  "rules": [\n    { "prefix": [], "decision": "allow" }\n  ]\n}')).toMatch(/rules\.json:3: rules\.0\.prefix: needs at least one word/);
    expect(problem('{\n  "rules": [\n\n    { "prefix": ["ls"], "decision": "allow", "when": "always" }\n  ]\n}')).toMatch(/rules\.json:4: .*when/);
    expect(problem('{\n  "rules": [\n    { "prefix": ["ls"] "decision": "allow" }\n  ]\n}')).toMatch(/rules\.json:3: not valid JSON: expected '}'/);
    expect(problem('{ "rule": [] }')).toMatch(/rules\.json:1: /);
    expect(problem('')).toMatch(/rules\.json:1: not valid JSON/);
  });

  it('a project file cannot allow, only tighten', () => {
    expect(problem('{"rules": [\n{ "prefix": ["curl"], "decision": "allow" }]}', true)).toMatch(/:2: rules\.0: "allow" rules are only accepted/);
    expect(parseRules('{"rules": [{ "prefix": ["curl"], "decision": "forbidden" }]}', FILE, { project: true })).toHaveLength(1);
  });

  it('the located JSON parser agrees with JSON.parse', () => {
    const text = '{"a": [1, -2.5e3, true, null, "x\\"y"], "b": {"c": {}}, "d": []}';
    expect(parseJsonWithLines(text).value).toEqual(JSON.parse(text));
  });
});

describe('matching commands', () => {
  beforeAll(loadShellParser);
  const rule = (prefix: string[], decision: 'allow' | 'prompt' | 'forbidden') => ({ prefix, decision, file: FILE, line: 1 });
  const policy = new ExecPolicy([rule(['git', 'status'], 'allow'), rule(['ls'], 'allow'), rule(['git', 'push'], 'prompt'), rule(['rm'], 'forbidden')]);
  const decision = (argv: string[]) => policy.evaluate(argv)?.decision ?? 'none';

  it('matches argv prefixes', () => {
    expect(decision(['git', 'status', '--short'])).toBe('allow');
    expect(decision(['git', 'push', 'origin'])).toBe('prompt');
    expect(decision(['git', 'log'])).toBe('none');
    expect(decision(['rm', '-rf', 'x'])).toBe('forbidden');
    expect(policy.evaluate(['rm', 'x'])?.description).toBe(`forbidden ["rm"] (${FILE}:1)`);
  });

  it('prompt and forbidden also match a program given by path; allow does not', () => {
    expect(decision(['/bin/rm', 'x'])).toBe('forbidden');
    expect(decision(['/usr/bin/ls'])).toBe('none');
  });

  it('judges a shell script command by command: the strictest wins, allow needs all', () => {
    expect(decision(['bash', '-lc', 'ls && git status'])).toBe('allow');
    expect(decision(['bash', '-lc', 'ls && git log'])).toBe('none');
    expect(decision(['bash', '-lc', 'ls; git push'])).toBe('prompt');
    expect(decision(['sh', '-c', 'git push | rm x'])).toBe('forbidden');
  });

  it('reads substitutions as commands, and a variable argument does not change what runs', () => {
    expect(decision(['bash', '-lc', 'echo $(date) && rm -rf /tmp/x'])).toBe('forbidden');
    expect(decision(['bash', '-lc', 'ls $HOME'])).toBe('allow');
  });

  it('a script it cannot split asks if it may run a prompt/forbidden program, and is never allowed', () => {
    expect(decision(['bash', '-lc', '(( n++ )); rm -rf /tmp/x'])).toBe('prompt');
    expect(decision(['bash', '-lc', '(( n++ )); ls'])).toBe('none');
    expect(decision(['bash', '-lc', 'coproc ls'])).toBe('none');
  });

  it('rules see through wrappers and shells; allow needs every command that runs', () => {
    expect(decision(['env', 'timeout', '5', 'bash', '-ec', 'git status; rm x'])).toBe('forbidden');
    expect(decision(['bash', '-e', '-c', 'ls; git push'])).toBe('prompt');
    expect(decision(['bash', '-e', '-c', 'ls && git status'])).toBe('allow');
    expect(decision(['timeout', '5', 'ls'])).toBe('none');
  });
});

describe('loading from TROUPE_HOME and the project', () => {
  let home: string;
  let project: string;
  beforeEach(async () => {
    home = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-home-')));
    project = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-proj-')));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
    await rm(project, { recursive: true, force: true });
  });

  it('no files, no rules; both files are combined; edits are picked up', async () => {
    expect((await loadExecPolicy(home, project)).rules).toEqual([]);
    await writeFile(path.join(home, 'rules.json'), JSON.stringify({ rules: [{ prefix: ['make'], decision: 'allow' }] }));
    await mkdir(path.join(project, '.troupe'));
    await writeFile(path.join(project, '.troupe', 'rules.json'), JSON.stringify({ rules: [{ prefix: ['make', 'deploy'], decision: 'forbidden' }] }));
    const policy = await loadExecPolicy(home, project);
    expect(policy.evaluate(['make', 'test'])?.decision).toBe('allow');
    expect(policy.evaluate(['make', 'deploy'])?.decision).toBe('forbidden');
    await writeFile(
      path.join(home, 'rules.json'),
      JSON.stringify({
        rules: [
          { prefix: ['make'], decision: 'prompt' },
          { prefix: ['x'], decision: 'allow' },
        ],
      }),
    );
    expect((await loadExecPolicy(home, project)).evaluate(['make', 'test'])?.decision).toBe('prompt');
  });

  it('an invalid file is an error naming it', async () => {
    await writeFile(path.join(home, 'rules.json'), '{ "rules": [ { "prefix": "ls", "decision": "allow" } ] }');
    await expect(loadExecPolicy(home, project)).rejects.toThrow(`${path.join(home, 'rules.json')}:1: rules.0.prefix`);
  });
});
