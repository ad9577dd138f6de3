/**
 * Shells and shell builtins that run code given as text: `bash -c`, `eval`, `alias`, `trap`,
 * and the builtins whose effect troupe cannot follow (`source`, `hash -p`, …).
 */
import { assignmentValue, joined, scriptOf, unknownOnly, type Handler, type Inner, type Unwrapped } from './inner.js';
import { literalWord, type Word } from './words.js';

/** The POSIX family, whose `-c` scripts shell-script.ts reads. */
const POSIX_SHELLS = new Set(['sh', 'bash', 'rbash', 'dash', 'ash', 'ksh', 'ksh93', 'mksh', 'lksh', 'pdksh', 'oksh', 'zsh', 'yash', 'posh']);
/** Shells with another syntax: their scripts are only scanned for what they mention. */
const FOREIGN_SHELLS = new Set(['fish', 'csh', 'tcsh', 'nu', 'nushell', 'elvish', 'xonsh', 'pwsh', 'powershell', 'rc', 'es']);

const SHELL_LONG_OPTIONS = new Set([
  '--norc',
  '--noprofile',
  '--login',
  '--posix',
  '--noediting',
  '--restricted',
  '--verbose',
  '--debugger',
  '--protected',
  '--dump-strings',
  '--dump-po-strings',
  '--pretty-print',
  '--help',
  '--version',
]);

/** A POSIX-family shell: `-c` runs a script (with any flags before or after it). */
function posixShell(words: readonly Word[], name: string): Unwrapped {
  let command = false;
  let stdin = false;
  let i = 1;
  for (; i < words.length; i++) {
    const text = words[i]!.text;
    if (text === undefined) {
      if (command) break; // the script itself
      return unknownOnly(`an option of \`${name}\` is only known when the command runs`);
    }
    if (text === '-' || text === '--') {
      i++;
      break;
    }
    if (text === '--rcfile' || text === '--init-file') {
      i++;
      continue;
    }
    if (text.startsWith('--')) {
      if (!SHELL_LONG_OPTIONS.has(text)) return unknownOnly(`\`${name}\` has an option troupe does not know (${text}), so it cannot tell what it runs`);
      continue;
    }
    if (!/^[-+]/.test(text) || text.length === 1) break;
    if (!/^[-+][A-Za-z]+$/.test(text)) return unknownOnly(`\`${name}\` has an option troupe does not know (${text}), so it cannot tell what it runs`);
    for (const letter of text.slice(1)) {
      if (letter === 'c') command = true;
      else if (letter === 's') stdin = true;
      else if (letter === 'o' || letter === 'O') i++; // the option's name
    }
  }
  const operands = words.slice(i);
  if (command) {
    const script = operands[0];
    return { inner: script === undefined ? [] : [{ kind: 'script', script, via: `\`${name} -c\`` }], transparent: true };
  }
  if (stdin || operands.length === 0) {
    return { inner: [{ kind: 'unknown', reason: `\`${name}\` reads the commands it runs from its input, which troupe does not see` }] };
  }
  return { inner: [] }; // a script file: what it contains is beyond a rule's reach
}

/** fish, csh, PowerShell, …: their command text is scanned for names, not parsed. */
function foreignShell(words: readonly Word[], name: string): Unwrapped {
  const args = words.slice(1);
  if (args.length === 0) return unknownOnly(`\`${name}\` reads the commands it runs from its input, which troupe does not see`);
  const line = joined(args);
  if (line?.text === undefined) return unknownOnly(`an argument of \`${name}\` is only known when the command runs`);
  if (args.some((w) => /^-(e|ec|en|enc|encodedcommand)$/i.test(w.text ?? ''))) return unknownOnly(`\`${name}\` runs an encoded command`);
  return { inner: [{ kind: 'opaque', text: line.text, reason: `troupe does not parse \`${name}\` scripts`, foreign: true }] };
}

function evalBuiltin(words: readonly Word[]): Unwrapped {
  return { inner: words.length > 1 ? [scriptOf(words.slice(1), '`eval`')] : [] };
}

function alias(words: readonly Word[]): Unwrapped {
  const inner: Inner[] = [];
  for (const word of words.slice(1)) {
    if (word.text === undefined) return unknownOnly('`alias` defines a command only known when the command runs');
    const eq = word.text.indexOf('=');
    if (eq > 0) inner.push({ kind: 'script', script: literalWord(word.text.slice(eq + 1)), via: '`alias`' });
  }
  return { inner };
}

function trap(words: readonly Word[]): Unwrapped {
  let i = 1;
  while (words[i]?.text !== undefined && /^-[lp]*$|^--$/.test(words[i]!.text!)) i++;
  const action = words[i];
  if (action === undefined || words.length < i + 2) return { inner: [] };
  return {
    inner: [
      action.text === undefined
        ? { kind: 'unknown', reason: '`trap` sets a command only known when the command runs' }
        : { kind: 'script', script: action, via: '`trap`' },
    ],
  };
}

/** export, declare, local, …: their `NAME=value` arguments are assignments. */
export const ASSIGNING_BUILTINS = ['export', 'declare', 'typeset', 'local', 'readonly'];

function assigningBuiltin(words: readonly Word[]): Unwrapped {
  return { inner: words.slice(1).flatMap((word) => (/^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/.test(word.text ?? '') ? assignmentValue(word) : [])) };
}

/** A builtin that runs code troupe does not see when one of its words matches `risky`. */
function runsWhen(risky: RegExp, reason: string): Handler {
  return (words) => (words.slice(1).some((w) => w.text === undefined || risky.test(w.text)) ? unknownOnly(reason) : { inner: [] });
}

/** Shells and builtins by name. */
export const SHELLS_AND_BUILTINS: readonly (readonly [string, Handler])[] = [
  ...[...POSIX_SHELLS].map((name): [string, Handler] => [name, posixShell]),
  ...[...FOREIGN_SHELLS].map((name): [string, Handler] => [name, foreignShell]),
  ['eval', evalBuiltin],
  ...ASSIGNING_BUILTINS.map((name): [string, Handler] => [name, assigningBuiltin]),
  ['alias', alias],
  ['trap', trap],
  ['source', () => unknownOnly('`source` runs the commands of a file, which troupe does not read')],
  ['.', () => unknownOnly('`.` runs the commands of a file, which troupe does not read')],
  ['fc', () => unknownOnly('`fc` runs commands from the shell history')],
  ['hash', runsWhen(/^-[A-Za-z]*p/, '`hash -p` makes a command name run another program')],
  ['enable', runsWhen(/^-[A-Za-z]*f/, '`enable -f` loads a builtin from a shared library')],
  ['mapfile', runsWhen(/^-[A-Za-z]*C/, '`mapfile -C` runs a callback')],
  ['readarray', runsWhen(/^-[A-Za-z]*C/, '`readarray -C` runs a callback')],
  ['bind', runsWhen(/^-[A-Za-z]*x/, '`bind -x` binds a key to a command')],
  ['complete', runsWhen(/^-[A-Za-z]*[CF]/, '`complete -C/-F` runs a command or function')],
  ['compgen', runsWhen(/^-[A-Za-z]*[CF]/, '`compgen -C/-F` runs a command or function')],
];
