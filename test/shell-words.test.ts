import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { shellJoin, shellQuote } from '../cli/shell-words.js';

const run = promisify(execFile);

/** Words that break naive joining: spaces, quotes, expansions, globs, operators, newlines. */
const HOSTILE = [
  'ls -la && cat x',
  "it's",
  `"double" 'single'`,
  '$HOME $(rm -rf /) `id`',
  '*.txt ? [a-z]',
  'a;b|c&d>e<f',
  'line one\nline two',
  '',
  '~',
  '#not a comment',
  '-n',
  'tab\there',
  'ünïcödé ✓',
  "\\'",
];

describe('shellJoin', () => {
  it('leaves plain words alone and quotes the rest', () => {
    expect(shellJoin(['git', 'commit', '-m', 'fix: the bug', 'a/b.c', 'x=1'])).toBe("git commit -m 'fix: the bug' a/b.c x=1");
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  it('is read back by sh and bash as the same words, hostile ones included', async () => {
    // Each word printed between NUL bytes: what the shell split the line into, exactly.
    for (const shell of ['sh', 'bash']) {
      const { stdout } = await run(shell, ['-c', `printf '%s\\0' ${shellJoin(HOSTILE)}`], { env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent' } });
      expect(stdout.split('\0').slice(0, -1), shell).toEqual(HOSTILE);
    }
  });

  it('shows control characters a terminal would act on as escapes, in a form bash reads back unchanged', async () => {
    const words = ['printf', 'safe\x1b[2K\rrm -rf ~', 'bell\x07 back\b', 'csi\u009b2J', "quote ' and \\", 'del\x7f'];
    const line = shellJoin(words);
    // eslint-disable-next-line no-control-regex
    expect(line).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(line).toContain("$'safe\\e[2K\\rrm -rf ~'");
    const { stdout } = await run('bash', ['-c', `printf '%s\\0' ${shellJoin(words.slice(1))}`], {
      env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent' },
    });
    expect(stdout.split('\0').slice(0, -1)).toEqual(words.slice(1));
  });
});
