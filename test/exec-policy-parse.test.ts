/**
 * The pieces under the exec-policy's verdicts: reading shell scripts into commands, unwrapping
 * wrappers, reading wrapper options, and scanning scripts it cannot read for names.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { scanMentions, mentionsProgram } from '../lib/exec-policy/mentions.js';
import { parseOptions } from '../lib/exec-policy/options.js';
import { loadShellParser, parseScript } from '../lib/exec-policy/shell-script.js';
import { analyzeArgv } from '../lib/exec-policy/unwrap.js';
import { splitEnvString } from '../lib/exec-policy/wrappers.js';
import { couldBeProgram, displayWord, literalWord } from '../lib/exec-policy/words.js';

beforeAll(loadShellParser);

/** The commands of a script, each as its words with run-time parts shown as `…`, `*`, `?`. */
const commands = (script: string) => parseScript(script)?.commands.map((c) => c.words.map(displayWord).join(' '));
/** Every command an argv runs, outermost first. */
const runs = (argv: string[]) => analyzeArgv(argv).nodes.map((n) => n.words.map(displayWord).join(' '));

describe('reading a shell script', () => {
  it('finds the commands of lists, pipelines, groups, compound commands and functions', () => {
    expect(commands('a && b || c; d | e |& f & g\nh')).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    expect(commands('if a; then b; elif c; then d; else e; fi')).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(commands('while a; do b; done; until c; do d; done')).toEqual(['a', 'b', 'c', 'd']);
    expect(commands('for f in x y; do a "$f"; done')).toEqual(['a …']);
    expect(commands('case $x in (a) b;; c|d) e ;& *) f;;& ?) g;; esac')).toEqual(['b', 'e', 'f', 'g']);
    expect(commands('( a; (b) ) && { c; }')).toEqual(['a', 'b', 'c']);
    expect(commands('f() { a; }; function g { b; }; function h() ( c )')).toEqual(['a', 'b', 'c']);
    expect(commands('! a && [[ -f x && ( y < z ) ]] && b')).toEqual(['a', 'b']);
    expect(commands('a # b; c\n# d\ne')).toEqual(['a', 'e']);
  });

  it('finds the commands inside substitutions, wherever they are', () => {
    expect(commands('a $(b $(c)) "$(d)" `e` "`f`" <(g) >(h)')).toEqual(['c', 'b …', 'd', 'e', 'f', 'g', 'h', 'a … … … … … …']);
    expect(commands('x=$(a) y="${z:-$(b)}" c')).toEqual(['a', 'b', 'c']);
    expect(commands('echo $(case x in a) b;; esac)')).toEqual(['b', 'echo …']);
    expect(commands('echo `a \\`b\\``')).toEqual(['b', 'a …', 'echo …']);
  });

  it('undoes quoting, escapes and ANSI-C strings', () => {
    expect(commands(`'r'm "r""m" r\\m \\rm r''m $'\\x72\\155' $'\\u0072m'`)).toEqual(['rm rm rm rm rm rm rm']);
    expect(commands('r\\\nm x')).toEqual(['rm x']);
    expect(commands('echo "a\\"b" \'c\\\' d')).toEqual(['echo a"b c\\ d']);
  });

  it('keeps run-time parts as placeholders, and tells words that may split', () => {
    const [words] = parseScript('$a "$b" ${c} /bin/r? x* [ab]c {r,x}m ~/bin/x $\'\\x2f\'')!.commands.map((c) => c.words);
    expect(words!.map((w) => [displayWord(w), w.text !== undefined, w.splits])).toEqual([
      ['…', false, true],
      ['…', false, false],
      ['…', false, true],
      ['/bin/r?', false, true],
      ['x*', false, true],
      ['[ab]c…', false, true],
      ['{r,x}m…', false, true],
      ['~/bin/x', true, false],
      ['/', true, false],
    ]);
    expect(couldBeProgram(words![3]!, 'rm')).toBe(true);
    expect(couldBeProgram(words![3]!, 'ls')).toBe(false);
    expect(couldBeProgram(words![4]!, 'xargs')).toBe(true);
    expect(couldBeProgram(words![4]!, 'rm')).toBe(false);
  });

  it('separates assignments, redirections and heredocs from the command', () => {
    expect(parseScript('A=1 B=$(a) c >out 2>&1')!.commands.at(-1)).toMatchObject({ assigns: true, writesFile: true });
    expect(parseScript('c 2>&1 >/dev/null <in')!.commands[0]).toMatchObject({ assigns: false, writesFile: false });
    expect(parseScript('c >& log')!.commands[0]).toMatchObject({ writesFile: true });
    expect(commands("cat <<'EOF' > f\nrm $(x)\nEOF\nls")).toEqual(['cat', 'ls']);
    expect(commands('cat <<-EOF\n\tplain $HOME\n\tEOF\nls')).toEqual(['cat', 'ls']);
  });

  it('gives up on what it does not model, rather than misread it', () => {
    for (const script of [
      '(( x++ ))',
      'a=(x y)',
      'coproc a',
      'echo $(( $(a) ))',
      'ls !(x)',
      'cat <<EOF\n$(a)\nEOF',
      "echo 'open",
      'echo "open',
      'echo $(open',
      'a )',
      'case x in a) b',
      'for ((i=0; i<3; i++)); do a; done',
      // tree-sitter-bash reads `;&` and `;;&` only before another case item, not before `esac`.
      'case x in a) b;;& esac',
    ]) {
      expect(parseScript(script), script).toBeUndefined();
    }
    expect(parseScript('echo $(( 1 + 2 ))')).toMatchObject({ arithmetic: true });
  });

  it('reads what tree-sitter-bash gets wrong the way bash does, or gives up', () => {
    // A backslash-newline joins words; the grammar would skip it as a blank.
    expect(commands("r\\\nm x; echo 'a'\\\n'b' # c \\\nd")).toEqual(['rm x', 'echo ab', 'd']);
    // Escapes inside backquotes are undone before their text is read as a script.
    expect(commands('echo "`echo \\"x\\"`" `a \\`b\\``')).toEqual(['echo x', 'b', 'a …', 'echo … …']);
    // Blanks inside double quotes are kept, though the grammar leaves them out of the string's content.
    expect(parseScript('echo "  " "\t$x " " `a  b`"')!.commands.at(-1)!.words.map(displayWord)).toEqual(['echo', '  ', '\t… ', ' …']);
    // `$"…"` is one word, even where the grammar splits off the `$`.
    expect(commands('echo ${a} r$"m" $"x"')).toEqual(['echo … rm x']);
    // A redirection at the end of a list or pipeline belongs to its last command, and so do words after it.
    expect(parseScript('a && b | c > f')!.commands.map((c) => c.writesFile)).toEqual([false, false, true]);
    expect(commands('a > f b 2>&1 c')).toEqual(['a b c']);
    // Only a name makes an assignment: bash runs `-f*x=1` as a command.
    expect(parseScript('-f*x=1 ls')).toBeUndefined();
    // The grammar drops a `-` before `<<`; nesting deeper than anyone writes is not read either.
    expect(parseScript("python - <<'PY'\nprint(1)\nPY")).toBeUndefined();
    expect(parseScript(`echo ${'$('.repeat(500)}x${')'.repeat(500)}`)).toBeUndefined();
  });

  it('notices code kept in strings', () => {
    expect(parseScript("x='$(a)'")).toMatchObject({ codeInText: true });
    expect(parseScript('echo "\\`a\\`"')).toMatchObject({ codeInText: true });
    expect(parseScript("echo 'plain'")).toMatchObject({ codeInText: false });
  });
});

describe('unwrapping what an argv runs', () => {
  it('lists the wrapper and everything inside it', () => {
    expect(runs(['env', 'nice', 'timeout', '5', 'bash', '-c', 'sudo rm x'])).toEqual([
      'env nice timeout 5 bash -c sudo rm x',
      'nice timeout 5 bash -c sudo rm x',
      'timeout 5 bash -c sudo rm x',
      'bash -c sudo rm x',
      'sudo rm x',
      'rm x',
    ]);
    expect(runs(['xargs', '-I', '{}', 'mv', '{}', 'dst'])).toEqual(['xargs -I {} mv {} dst', 'mv … dst']);
    expect(runs(['find', '.', '-exec', 'grep', '-l', 'x', '{}', '+', '-delete'])).toEqual(['find . -exec grep -l x {} + -delete', 'grep -l x …', 'rm']);
    expect(runs(['git', '-C', 'd', '-c', 'a=b', 'rebase', '--exec', 'make test'])).toEqual(['git -C d -c a=b rebase --exec make test', 'make test']);
  });

  it('marks what it cannot follow', () => {
    const unknown = (argv: string[]) => analyzeArgv(argv).unknowns.map((u) => u.reach);
    expect(unknown(['bash', '-c', '$x'])).toEqual(['anything']);
    expect(unknown(['bash'])).toEqual(['anything']);
    expect(unknown(['bash', 'file.sh'])).toEqual([]);
    expect(unknown(['nice', '--bogus', 'ls'])).toEqual(['anything']);
    expect(unknown(['bash', '-c', '(( 1 )); ls'])).toEqual(['mentioned']);
    expect(unknown(['bash', '-c', '(( 1 )); sh <x'])).toEqual(['anything']);
    expect(unknown(['bash', '-c', '(( $n ))'])).toEqual(['anything']);
  });

  it('git: a variant without global options, for rules about subcommands', () => {
    const [git] = analyzeArgv(['git', '--no-pager', '-C', 'x', '--git-dir=y', 'push']).nodes;
    expect(git!.variants.map((v) => v.map(displayWord))).toEqual([['git', 'push']]);
  });

  it('splits env -S strings, and refuses to guess at expansions', () => {
    expect(splitEnvString(`a 'b c' "d\\"e" f\\_g #rest`)).toEqual(['a', 'b c', 'd"e', 'f g']);
    expect(splitEnvString('a ${HOME}')).toBeUndefined();
    expect(splitEnvString('a \\q')).toBeUndefined();
  });
});

describe('reading wrapper options', () => {
  const words = (...texts: string[]) => texts.map(literalWord);
  const spec = { flags: 'fp', valued: 'ks', attached: 'i', long: ['foreground'], longValued: ['signal', 'kill-after'] };

  it('stops at the first operand or --, with values attached or separate', () => {
    expect(parseOptions(words('t', '-fk5', '-s', 'KILL', '--signal=TERM', '5', 'rm'), 1, spec)).toMatchObject({ ok: true, next: 5 });
    expect(parseOptions(words('t', '--', '-rm'), 1, spec)).toMatchObject({ ok: true, next: 2 });
    expect(parseOptions(words('t', '-i{}', 'x'), 1, spec)).toMatchObject({ ok: true, next: 2, values: [['i', '{}']] });
  });

  it('accepts unique abbreviations of long options, and nothing it does not know', () => {
    expect(parseOptions(words('t', '--fore', 'x'), 1, spec)).toMatchObject({ ok: true, next: 2 });
    expect(parseOptions(words('t', '--kill', '3', 'x'), 1, spec)).toMatchObject({ ok: true, next: 3 });
    expect(parseOptions(words('t', '--bogus', 'x'), 1, spec)).toMatchObject({ ok: false });
    expect(parseOptions(words('t', '-z', 'x'), 1, spec)).toMatchObject({ ok: false });
    expect(parseOptions(words('t', '-k'), 1, spec)).toMatchObject({ ok: false });
  });
});

describe('scanning text troupe cannot parse', () => {
  const mentions = (text: string, name: string, foreign = false) => scanMentions(text, { foreign }).words.some((w) => mentionsProgram(w, name));

  it('finds a name however it is quoted, escaped or globbed', () => {
    for (const text of [`'r'm x`, '"r""m"', 'r\\m', 'r\\\nm', "$'\\x72m'", '/bin/r?', '/usr/bin/r*', '[r]m', '{r,x}m', 'x=rm', 'alias.x=!rm']) {
      expect(mentions(text, 'rm'), text).toBe(true);
    }
    expect(mentions('\\x72m', 'rm', true)).toBe(true);
    expect(mentions('farm rmdir /bin/ls', 'rm')).toBe(false);
  });

  it('tells text that computes words at run time', () => {
    expect(scanMentions('echo $x', { foreign: false }).computes).toBe(true);
    expect(scanMentions('echo `x`', { foreign: false }).computes).toBe(true);
    expect(scanMentions("echo $'x'", { foreign: false }).computes).toBe(false);
    expect(scanMentions('echo (x)', { foreign: true }).computes).toBe(true);
  });
});
