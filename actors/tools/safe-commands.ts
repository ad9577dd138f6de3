/**
 * Commands the `untrusted` approval policy lets through without asking: programs that only
 * read. The check is an allow-list and errs on the side of asking; a command it does not fully
 * understand is not safe.
 */
export function isKnownSafeCommand(argv: readonly string[]): boolean {
  const script = shellScriptOf(argv);
  if (script !== undefined) {
    const commands = parseSimpleScript(script);
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

/** Programs that never write, whatever their arguments (beyond what the checks below reject). */
const ALWAYS_SAFE = new Set([
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
  'pwd',
  'stat',
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
  switch (program) {
    case 'rg':
      return isSafeRipgrep(args);
    case 'find':
      return isSafeFind(args);
    case 'sed':
      return isSafeSed(args);
    case 'git':
      return isSafeGit(args);
    case 'sort':
      return isSafeSort(args);
    case 'uniq':
      return isSafeUniq(args);
    case 'file':
      return !args.some((a) => a === '--compile' || isShortFlagWith(a, 'C'));
    case 'tree':
      // -o writes the listing to a file; -R (with -H) writes an index file into every directory.
      return !args.some((a) => a.startsWith('-o') || a === '-R' || a.startsWith('--output'));
    default:
      return false;
  }
}

/** True for a cluster of short flags such as `-nC` that contains `letter`. */
function isShortFlagWith(arg: string, letter: string): boolean {
  return arg.startsWith('-') && !arg.startsWith('--') && arg.slice(1).includes(letter);
}

function isSafeRipgrep(args: readonly string[]): boolean {
  // --pre runs a preprocessor command on every file; --hostname-bin runs a program.
  const executes = ['--pre', '--hostname-bin'];
  return !args.some((a) => executes.some((flag) => a === flag || a.startsWith(`${flag}=`)));
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

function isSafeGit(args: readonly string[]): boolean {
  // The subcommand must come first: global options such as `-c` can configure programs to run.
  const [subcommand, ...rest] = args;
  // --output writes a file; --ext-diff and --textconv run configured external programs.
  const writesOrRuns = (a: string) =>
    a.startsWith('--output') || a === '--ext-diff' || a === '--textconv' || a.startsWith('--exec');
  if (rest.some(writesOrRuns)) return false;
  switch (subcommand) {
    case 'status':
    case 'log':
    case 'diff':
    case 'show':
      return true;
    case 'branch':
      return isListingGitBranch(rest);
    default:
      return false;
  }
}

/** `git branch` creates, renames or deletes unless it is in list mode: allow listing flags only. */
function isListingGitBranch(args: readonly string[]): boolean {
  const plainFlags = new Set(['--list', '--all', '--remotes', '--verbose', '--show-current', '--no-color', '--color', '--no-column', '--column']);
  const flagsWithValue = ['--sort=', '--format=', '--color=', '--contains', '--no-contains', '--merged', '--no-merged', '--points-at'];
  // Flags after which git lists and treats remaining words as patterns or commits.
  const listModeFlags = ['--list', '-l', '--verbose', '--contains', '--no-contains', '--merged', '--no-merged', '--points-at'];
  let listMode = false;
  let positionals = 0;
  for (const arg of args) {
    if (arg.startsWith('--')) {
      if (!plainFlags.has(arg) && !flagsWithValue.some((f) => arg === f || arg.startsWith(f.endsWith('=') ? f : `${f}=`))) {
        return false;
      }
      if (listModeFlags.some((f) => arg === f || arg.startsWith(`${f}=`))) listMode = true;
    } else if (arg.startsWith('-') && arg.length > 1) {
      if (!/^-[arlv]+$/.test(arg)) return false;
      if (/[lv]/.test(arg)) listMode = true;
    } else {
      positionals++;
    }
  }
  return positionals === 0 || listMode;
}

function isSafeSort(args: readonly string[]): boolean {
  // -o writes the result to a file; --compress-program runs a program.
  return !args.some(
    (a) =>
      a.startsWith('--output') ||
      a.startsWith('--compress-program') ||
      (a.startsWith('-') && !a.startsWith('--') && /^-[a-zA-Z]*o/.test(a)),
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

/**
 * Parses a shell script made only of simple commands joined by `&&`, `||`, `;` and `|`.
 * Words may be bare or single/double quoted; anything with expansions, redirections,
 * subshells, globs, comments or other syntax returns undefined.
 */
export function parseSimpleScript(script: string): string[][] | undefined {
  const commands: string[][] = [];
  let current: string[] = [];
  let i = 0;
  const isBare = (c: string) => /[A-Za-z0-9_\-./,:=+@%~]/.test(c);

  const endCommand = (): boolean => {
    if (current.length === 0) return false;
    commands.push(current);
    current = [];
    return true;
  };

  while (i < script.length) {
    const c = script[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const two = script.slice(i, i + 2);
    if (two === '&&' || two === '||') {
      if (!endCommand()) return undefined;
      i += 2;
      continue;
    }
    if (c === ';' || c === '|') {
      if (!endCommand()) return undefined;
      i++;
      continue;
    }
    // A word: a run of bare characters and quoted pieces with no separator between them.
    let word = '';
    let sawAny = false;
    while (i < script.length) {
      const d = script[i]!;
      if (d === "'") {
        const close = script.indexOf("'", i + 1);
        if (close === -1) return undefined;
        word += script.slice(i + 1, close);
        i = close + 1;
      } else if (d === '"') {
        const close = script.indexOf('"', i + 1);
        if (close === -1) return undefined;
        const inner = script.slice(i + 1, close);
        // Inside double quotes these still expand or escape.
        if (/[$`\\!]/.test(inner)) return undefined;
        word += inner;
        i = close + 1;
      } else if (isBare(d)) {
        // `~` expands only at the start of a word; forbid that so the word is what runs.
        if (d === '~' && word.length === 0 && !sawAny) return undefined;
        word += d;
        i++;
      } else {
        break;
      }
      sawAny = true;
    }
    if (!sawAny) return undefined; // a character we do not understand
    // `NAME=value cmd` sets the environment of cmd (e.g. GIT_EXTERNAL_DIFF): not a plain command.
    if (current.length === 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(word)) return undefined;
    current.push(word);
  }
  if (!endCommand()) return undefined;
  return commands;
}
