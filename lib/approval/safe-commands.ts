import { parsePlainCommands } from '../exec-policy/shell-script.js';

/**
 * Commands the `untrusted` approval policy lets through without asking: programs that only
 * read. The check is an allow-list and errs on the side of asking; a command it does not fully
 * understand is not safe. A `bash -c` script is read with the shell parser, which must have
 * been loaded (`loadShellParser`, awaited by planCommand); until then no script is safe.
 */
export function isKnownSafeCommand(argv: readonly string[]): boolean {
  const script = shellScriptOf(argv);
  if (script !== undefined) {
    const commands = parsePlainCommands(script);
    return commands !== undefined && commands.every(isSafeSimpleCommand);
  }
  return isSafeSimpleCommand(argv);
}

const SHELLS = new Set(['bash', 'sh', 'zsh', '/bin/bash', '/bin/sh', '/bin/zsh', '/usr/bin/bash', '/usr/bin/zsh']);

/** The script of `bash -c <script>` / `bash -lc <script>`, if argv has exactly that shape. */
function shellScriptOf(argv: readonly string[]): string | undefined {
  if (argv.length !== 3) return undefined;
  const [shell, flag, script] = argv as [string, string, string];
  if (!SHELLS.has(shell) || (flag !== '-c' && flag !== '-lc')) return undefined;
  return script;
}

/**
 * Programs that only read and print, whatever their arguments: none of their options writes a
 * file or runs another program.
 */
const ALWAYS_SAFE = new Set([
  'base64',
  'cat',
  'cd',
  'cut',
  'df',
  'du',
  'echo',
  'false',
  'grep',
  'head',
  'ls',
  'nl',
  'numfmt',
  'pwd',
  'stat',
  'tac',
  'tail',
  'true',
  'wc',
  'which',
  'basename',
  'dirname',
  'realpath',
  'whoami',
  'uname',
]);

function isSafeSimpleCommand(argv: readonly string[]): boolean {
  const [program, ...args] = argv;
  // A path could name any executable, even one called `ls`: only bare names are trusted.
  if (program === undefined || program.length === 0 || program.includes('/')) return false;
  if (ALWAYS_SAFE.has(program)) return true;
  // No git command is here: `git status` runs core.fsmonitor, diff/log/show run external diff
  // drivers, textconv filters and the pager, all chosen by the repository's configuration.
  switch (program) {
    case 'rg':
      return isSafeRipgrep(args);
    case 'find':
      return isSafeFind(args);
    case 'sed':
      return isSafeSed(args);
    case 'sort':
      return isSafeSort(args);
    case 'uniq':
      return isSafeUniq(args);
    case 'file':
      // -C / --compile writes a compiled magic file.
      return !args.some((a) => isLongOption(a, 'compile') || isShortFlagWith(a, 'C'));
    case 'tree':
      // -o writes the listing to a file; -R (with -H) writes an index file into every directory.
      return !args.some((a) => isShortFlagWith(a, 'o') || isShortFlagWith(a, 'R') || isLongOption(a, 'output'));
    default:
      return false;
  }
}

/**
 * True for `--name` or `--name=value`, and for any abbreviation of it: GNU getopt_long accepts
 * a unique prefix (`--out=f` is `--output=f`), so a prefix must count as the option.
 */
function isLongOption(arg: string, name: string): boolean {
  if (!arg.startsWith('--')) return false;
  const given = arg.slice(2).split('=')[0]!;
  return given.length > 0 && name.startsWith(given);
}

/** True for a cluster of short flags such as `-nC` that contains `letter`. */
function isShortFlagWith(arg: string, letter: string): boolean {
  return arg.startsWith('-') && !arg.startsWith('--') && arg.slice(1).includes(letter);
}

/**
 * ripgrep reads, but some options run programs: --pre runs a preprocessor (and --pre-glob picks
 * the files it runs on), -z/--search-zip runs decompressors, --hostname-bin runs a program.
 */
function isSafeRipgrep(args: readonly string[]): boolean {
  const runs = ['--pre', '--pre-glob', '--search-zip', '--hostname-bin'];
  return !args.some((a) => runs.some((flag) => a === flag || a.startsWith(`${flag}=`)) || isShortFlagWith(a, 'z'));
}

function isSafeFind(args: readonly string[]): boolean {
  const unsafe = new Set(['-exec', '-execdir', '-ok', '-okdir', '-delete', '-fls', '-fprint', '-fprint0', '-fprintf']);
  return !args.some((a) => unsafe.has(a));
}

/** Only `sed -n <address>p [file…]`: print selected lines, nothing else. */
function isSafeSed(args: readonly string[]): boolean {
  if (args.length < 2 || args[0] !== '-n') return false;
  const script = args[1]!;
  if (!/^(\d+|\$)(,(\d+|\$))?p$/.test(script)) return false;
  return args.slice(2).every((file) => !file.startsWith('-'));
}

function isSafeSort(args: readonly string[]): boolean {
  // -o writes the result to a file; --compress-program runs a program.
  return !args.some(
    (a) => isLongOption(a, 'output') || isLongOption(a, 'compress-program') || (a.startsWith('-') && !a.startsWith('--') && /^-[a-zA-Z0-9.,]*o/.test(a)),
  );
}

/** `uniq IN OUT` writes OUT: at most one file operand. */
function isSafeUniq(args: readonly string[]): boolean {
  const takesValue = new Set(['-f', '-s', '-w']);
  let operands = 0;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (takesValue.has(arg)) {
      i++;
    } else if (arg === '--') {
      operands += args.length - i - 1;
      break;
    } else if (!arg.startsWith('-') || arg === '-') {
      operands++;
    }
  }
  return operands <= 1;
}
