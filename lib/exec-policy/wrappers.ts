/**
 * Programs that run the command in their arguments: `env`, `timeout`, `nice`, `sudo`, `xargs`,
 * `find -exec`, … Most are described by their options (OptionSpec) and where their command
 * starts; the rest read their arguments their own way. An option troupe does not know means it
 * cannot tell where the command starts: that is reported, never guessed.
 */
import { assignmentValue, optionsProblem, scriptOf, unknownOnly, type Handler, type Inner, type Unwrapped } from './inner.js';
import { optionValue, parseOptions, type OptionSpec, type ParsedOptions } from './options.js';
import { literalWord, markUnknown, type Word } from './words.js';

/** Programs that run their command as another user. */
export const ESCALATING = new Set(['sudo', 'doas', 'pkexec', 'su', 'runuser', 'sg', 'run0', 'sudoedit']);

interface WrapperSpec {
  readonly options: OptionSpec;
  /** Words between the options and the command (timeout's duration, chroot's directory). */
  readonly operands?: number;
  /** `NAME=value` words may come before the command. */
  readonly assignments?: boolean;
  /** Options that make the command words a shell command line (sudo -s). */
  readonly shellOptions?: readonly string[];
  /** Options after which the words are not a command (sudo -e edits files). */
  readonly noCommandOptions?: readonly string[];
  /** Without a command it starts an interactive shell, which runs whatever it is fed. */
  readonly shellWithoutCommand?: boolean | ((values: ParsedValues) => boolean);
}

type ParsedValues = Extract<ParsedOptions, { ok: true }>['values'];

function wrapper(spec: WrapperSpec): Handler {
  return (words, name) => {
    const parsed = parseOptions(words, 1, spec.options);
    if (!parsed.ok) return optionsProblem(name, parsed);
    const has = (options: readonly string[] | undefined) => options !== undefined && parsed.values.some(([option]) => options.includes(option));
    const inner: Inner[] = [];
    if (has(spec.noCommandOptions)) return { inner };
    let i = parsed.next;
    if (spec.assignments) for (; i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!.text ?? ''); i++) inner.push(...assignmentValue(words[i]!));
    for (let k = 0; k < (spec.operands ?? 0); k++, i++) {
      if (i >= words.length) return { inner };
      if (words[i]!.splits) return unknownOnly(`an argument of \`${name}\` is only known when the command runs`);
    }
    const rest = words.slice(i);
    if (rest.length === 0) {
      const shell = typeof spec.shellWithoutCommand === 'function' ? spec.shellWithoutCommand(parsed.values) : spec.shellWithoutCommand;
      if (shell && inner.length === 0) inner.push({ kind: 'unknown', reason: `\`${name}\` without a command starts a shell that runs whatever it reads` });
      return { inner };
    }
    inner.push(has(spec.shellOptions) ? scriptOf(rest, `\`${name}\``) : { kind: 'argv', words: rest });
    return { inner };
  };
}

const SPECS: Record<string, WrapperSpec> = {
  command: { options: { flags: 'pvV' } },
  builtin: { options: {} },
  exec: { options: { flags: 'cl', valued: 'a' } },
  nohup: { options: {} },
  nice: { options: { valued: 'n', longValued: ['adjustment'], numeric: true } },
  timeout: {
    options: { flags: 'fpv', valued: 'ks', long: ['foreground', 'preserve-status', 'verbose'], longValued: ['kill-after', 'signal'] },
    operands: 1,
  },
  stdbuf: { options: { valued: 'ioe', longValued: ['input', 'output', 'error'] } },
  setsid: { options: { flags: 'cfw', long: ['ctty', 'fork', 'wait'] } },
  time: { options: { flags: 'pavq', valued: 'fo', long: ['portability', 'append', 'verbose', 'quiet'], longValued: ['format', 'output'] } },
  ionice: { options: { flags: 't', valued: 'cn', long: ['ignore'], longValued: ['class', 'classdata'] } },
  taskset: { options: { flags: 'ac', long: ['all-tasks', 'cpu-list'] }, operands: 1 },
  chroot: { options: { long: ['skip-chdir'], longValued: ['userspec', 'groups'] }, operands: 1, shellWithoutCommand: true },
  unbuffer: { options: { flags: 'p' } },
  caffeinate: { options: { flags: 'disum', valued: 'tw' } },
  unshare: {
    options: {
      flags: 'muinpUCTfrcl',
      valued: 'RwSG',
      long: ['fork', 'map-root-user', 'map-current-user', 'map-auto', 'keep-caps', 'load-interp'],
      longValued: ['propagation', 'setgroups', 'root', 'wd', 'setuid', 'setgid', 'map-user', 'map-group', 'map-users', 'map-groups', 'monotonic', 'boottime'],
      longOptional: ['mount', 'uts', 'ipc', 'net', 'pid', 'user', 'cgroup', 'time', 'kill-child', 'mount-proc', 'mount-binfmt'],
    },
    shellWithoutCommand: true,
  },
  sudo: {
    options: {
      flags: 'ABbEeHiKklNnPSsVv',
      valued: 'aCcDgpRrTtUu',
      attached: 'h',
      long: [
        'askpass',
        'background',
        'bell',
        'edit',
        'help',
        'login',
        'remove-timestamp',
        'reset-timestamp',
        'list',
        'non-interactive',
        'preserve-groups',
        'stdin',
        'shell',
        'version',
        'validate',
        'set-home',
        'no-update',
      ],
      longValued: ['auth-type', 'close-from', 'chdir', 'group', 'login-class', 'prompt', 'chroot', 'role', 'type', 'command-timeout', 'other-user', 'user'],
      longOptional: ['preserve-env', 'host'],
    },
    assignments: true,
    shellOptions: ['s', 'i', 'shell', 'login'],
    noCommandOptions: ['e', 'edit'],
    shellWithoutCommand: (values) => values.some(([option]) => ['s', 'i', 'shell', 'login'].includes(option)),
  },
  doas: { options: { flags: 'Lns', valued: 'Cu' }, shellWithoutCommand: (values) => values.some(([option]) => option === 's') },
  pkexec: { options: { long: ['disable-internal-agent', 'keep-cwd', 'help', 'version'], longValued: ['user'] }, shellWithoutCommand: true },
  run0: {
    options: {
      valued: 'uDg',
      long: ['no-ask-password', 'machine'],
      longValued: [
        'user',
        'group',
        'nice',
        'chdir',
        'setenv',
        'description',
        'slice',
        'slice-inherit',
        'property',
        'unit',
        'background',
        'pty',
        'pipe',
        'shell-prompt-prefix',
      ],
    },
    shellWithoutCommand: true,
  },
};

const SCRIPT_OPTIONS: OptionSpec = {
  flags: 'aefqk',
  valued: 'cEBIOTmo',
  attached: 't',
  long: ['append', 'return', 'flush', 'force', 'quiet'],
  longValued: ['command', 'echo', 'log-io', 'log-in', 'log-out', 'log-timing', 'logging-format', 'output-limit'],
  longOptional: ['timing'],
};

/** `script [-c LINE] [file]`: the operand is the typescript file; without -c it starts a shell. */
function typescript(words: readonly Word[], name: string): Unwrapped {
  const parsed = parseOptions(words, 1, SCRIPT_OPTIONS);
  if (!parsed.ok) return optionsProblem(name, parsed);
  const command = optionValue(parsed.values, 'c', 'command');
  if (typeof command === 'string') return { inner: [{ kind: 'script', script: literalWord(command), via: '`script -c`' }] };
  return unknownOnly(`\`${name}\` without -c starts a shell that runs whatever it reads`);
}

// ---------------------------------------------------------------------------------------------
// Wrappers with their own rules

const ENV_OPTIONS: OptionSpec = {
  flags: 'iv0',
  valued: 'uCSa',
  long: ['ignore-environment', 'null', 'debug', 'list-signal-handling'],
  longValued: ['unset', 'chdir', 'split-string', 'argv0'],
  longOptional: ['block-signal', 'default-signal', 'ignore-signal'],
  stopAfter: ['S', 'split-string'],
};

function env(words: readonly Word[], name: string): Unwrapped {
  const parsed = parseOptions(words, 1, ENV_OPTIONS);
  if (!parsed.ok) return optionsProblem(name, parsed);
  const split = optionValue(parsed.values, 'S', 'split-string');
  if (typeof split === 'string') {
    // -S splits its value into words that take its place, options included.
    const pieces = splitEnvString(split);
    if (pieces === undefined) return unknownOnly('troupe cannot split the string given to `env -S`');
    return env([words[0]!, ...pieces.map(literalWord), ...words.slice(parsed.next)], name);
  }
  let i = parsed.next;
  if (words[i]?.text === '-') i++;
  const inner: Inner[] = [];
  for (; i < words.length && /^[^=]+=/.test(words[i]!.text ?? ''); i++) inner.push(...assignmentValue(words[i]!));
  const rest = words.slice(i);
  if (rest.length > 0) inner.push({ kind: 'argv', words: rest });
  return { inner };
}

/** The words of `env -S`'s string, or undefined if it expands variables or is malformed. */
export function splitEnvString(text: string): string[] | undefined {
  const words: string[] = [];
  let word: string | undefined;
  const escapes: Record<string, string> = { _: ' ', t: '\t', n: '\n', r: '\r', f: '\f', v: '\v', '\\': '\\', '"': '"', "'": "'", '#': '#', $: '$' };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '$') return undefined;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) return undefined;
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else if (c === '"' || c === '\\') {
      if (c === '\\') {
        const next = text[++i];
        if (next === 'c') break;
        if (next === undefined || escapes[next] === undefined) return undefined;
        word = (word ?? '') + escapes[next];
        continue;
      }
      let j = i + 1;
      let inner = '';
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '$') return undefined;
        if (text[j] === '\\') {
          const next = text[++j];
          if (next === undefined || escapes[next] === undefined) return undefined;
          inner += escapes[next];
        } else inner += text[j];
      }
      if (j >= text.length) return undefined;
      word = (word ?? '') + inner;
      i = j;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

const XARGS_OPTIONS: OptionSpec = {
  flags: '0prtxo',
  valued: 'adEInLPs',
  attached: 'eil',
  long: ['null', 'interactive', 'no-run-if-empty', 'verbose', 'exit', 'open-tty', 'show-limits'],
  longValued: ['arg-file', 'delimiter', 'max-args', 'max-procs', 'max-chars', 'process-slot-var'],
  longOptional: ['eof', 'replace', 'max-lines'],
};

/** xargs runs its command (echo by default) with arguments read from its input. */
function xargs(words: readonly Word[], name: string): Unwrapped {
  const parsed = parseOptions(words, 1, XARGS_OPTIONS);
  if (!parsed.ok) return optionsProblem(name, parsed);
  let replace = optionValue(parsed.values, 'I', 'i', 'replace');
  if (replace === true) replace = '{}';
  const rest = words.length > parsed.next ? words.slice(parsed.next) : [literalWord('echo')];
  if (typeof replace === 'string') return { inner: [{ kind: 'argv', words: rest.map((w) => markUnknown(w, replace)) }] };
  return { inner: [{ kind: 'argv', words: rest, openTail: true }] };
}

const FIND_RUNS = new Set(['-exec', '-execdir', '-ok', '-okdir']);

/** find runs the command of each -exec/-execdir/-ok/-okdir, with `{}` standing for a file name. */
function find(words: readonly Word[]): Unwrapped {
  const inner: Inner[] = [];
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!;
    if (word.text === undefined) {
      // Any word of find's expression could turn out to be `-exec` or `-delete`.
      return unknownOnly(`an argument of \`find\` is only known when the command runs, and it could be an action such as -exec or -delete`);
    }
    if (word.text === '-delete') {
      inner.push({ kind: 'argv', words: [literalWord('rm')], note: '`find -delete` deletes files as `rm` does' });
    } else if (FIND_RUNS.has(word.text)) {
      const command: Word[] = [];
      let j = i + 1;
      for (; j < words.length; j++) {
        const text = words[j]!.text;
        if (text === ';' || (text === '+' && words[j - 1]?.text?.endsWith('{}'))) break;
        command.push(markUnknown(words[j]!, '{}'));
      }
      inner.push({ kind: 'argv', words: command });
      i = j;
    }
  }
  return { inner };
}

/** su / runuser: the command is the value of -c (--command), wherever it appears. */
function su(words: readonly Word[], name: string): Unwrapped {
  const inner: Inner[] = [];
  for (let i = 1; i < words.length; i++) {
    const text = words[i]!.text;
    if (text === undefined) return unknownOnly(`an argument of \`${name}\` is only known when the command runs`);
    const long = /^--(?:command|session-command)(?:=([\s\S]*))?$/.exec(text);
    const short = /^-[A-Za-z]*c([\s\S]*)$/.exec(text);
    if (long === null && (short === null || text.startsWith('--'))) continue;
    const attached = long !== null ? long[1] : short![1];
    const value = attached !== undefined && attached !== '' ? literalWord(attached) : words[++i];
    if (value !== undefined) inner.push(scriptOf([value], `\`${name} -c\``));
  }
  if (inner.length === 0) inner.push({ kind: 'unknown', reason: `\`${name}\` without -c starts a shell that runs whatever it reads` });
  return { inner };
}

/** sg GROUP [-c] COMMAND: the command line runs through /bin/sh. */
function sg(words: readonly Word[], name: string): Unwrapped {
  const rest = words.slice(words[2]?.text === '-c' ? 3 : 2);
  if (rest.length === 0) return unknownOnly(`\`${name}\` without a command starts a shell that runs whatever it reads`);
  return { inner: [scriptOf(rest, `\`${name}\``)] };
}

const WATCH_OPTIONS: OptionSpec = {
  flags: 'bcCegprtwx',
  valued: 'nq',
  attached: 'd',
  long: ['beep', 'color', 'no-color', 'errexit', 'chgexit', 'precise', 'no-rerun', 'no-title', 'no-wrap', 'exec'],
  longValued: ['interval', 'equexit'],
  longOptional: ['differences'],
};

/** watch runs its arguments joined into one `sh -c` line, unless -x. */
function watch(words: readonly Word[], name: string): Unwrapped {
  const parsed = parseOptions(words, 1, WATCH_OPTIONS);
  if (!parsed.ok) return optionsProblem(name, parsed);
  const rest = words.slice(parsed.next);
  if (rest.length === 0) return { inner: [] };
  const exec = parsed.values.some(([option]) => option === 'x' || option === 'exec');
  return { inner: [exec ? { kind: 'argv', words: rest } : scriptOf(rest, '`watch`')] };
}

/** flock [options] FILE COMMAND… or flock [options] FILE -c LINE. */
function flock(words: readonly Word[], name: string): Unwrapped {
  const parsed = parseOptions(words, 1, {
    flags: 'sxeunoFhV',
    valued: 'wEc',
    long: ['shared', 'exclusive', 'unlock', 'nonblock', 'nb', 'close', 'no-fork', 'verbose', 'help', 'version'],
    longValued: ['wait', 'timeout', 'conflict-exit-code', 'command'],
  });
  if (!parsed.ok) return optionsProblem(name, parsed);
  const inner: Inner[] = [];
  const command = optionValue(parsed.values, 'c', 'command');
  if (typeof command === 'string') inner.push({ kind: 'script', script: literalWord(command), via: '`flock -c`' });
  const rest = words.slice(parsed.next + 1);
  const flag = rest[0]?.text;
  if (flag === '-c' || flag === '--command') {
    if (rest[1] !== undefined) inner.push({ kind: 'script', script: rest[1], via: '`flock -c`' });
  } else if (rest.length > 0) {
    inner.push({ kind: 'argv', words: rest });
  }
  return { inner };
}

/**
 * Programs that run a program named in one of their options. `argv`: the value is a program,
 * run with more arguments; `script`: the value is a command line.
 */
const PROGRAM_OPTIONS: Record<string, { readonly options: readonly string[]; readonly kind: 'argv' | 'script' }> = {
  rg: { options: ['--pre', '--hostname-bin'], kind: 'argv' },
  sort: { options: ['--compress-program'], kind: 'argv' },
  tar: { options: ['--use-compress-program', '-I', '--to-command', '--info-script', '--new-volume-script', '-F'], kind: 'script' },
  rsync: { options: ['--rsh', '-e', '--rsync-path'], kind: 'script' },
};

function programOptions(words: readonly Word[], name: string): Unwrapped {
  const { options, kind } = PROGRAM_OPTIONS[name]!;
  const inner: Inner[] = [];
  for (let i = 1; i < words.length; i++) {
    const text = words[i]!.text;
    if (text === undefined) continue;
    if (text === '--') break;
    let option = options.find((o) => text === o || (o.startsWith('--') && text.startsWith(`${o}=`)));
    let attached = option === undefined || text === option ? '' : text.slice(option.length + 1);
    if (option === undefined && /^-[A-Za-z]{2,}/.test(text)) {
      // A cluster of short options such as rsync's `-avze ssh`: the value follows the letter.
      option = options.find((o) => o.length === 2 && !o.startsWith('--') && text.includes(o[1]!));
      if (option !== undefined) attached = text.slice(text.indexOf(option[1]!) + 1);
    }
    if (option === undefined) continue;
    const value = attached === '' ? words[++i] : literalWord(attached);
    if (value === undefined) break;
    const via = `\`${name} ${option}\``;
    inner.push(kind === 'script' ? scriptOf([value], via) : { kind: 'argv', words: [value], openTail: true });
  }
  return { inner };
}

/** busybox / toybox APPLET ARGS: the applet is the command. */
function multiCall(words: readonly Word[]): Unwrapped {
  const rest = words.slice(1);
  if (rest.length === 0 || rest[0]!.text?.startsWith('-')) return { inner: [] };
  return { inner: [{ kind: 'argv', words: rest }] };
}

/** Each wrapper by its program's base name. */
export const WRAPPERS: readonly (readonly [string, Handler])[] = [
  ...Object.entries(SPECS).map(([name, spec]): [string, Handler] => [name, wrapper(spec)]),
  ['script', typescript],
  ['env', env],
  ['xargs', xargs],
  ['find', find],
  ['su', su],
  ['runuser', su],
  ['sg', sg],
  ['watch', watch],
  ['flock', flock],
  ['busybox', multiCall],
  ['toybox', multiCall],
];

/** Programs that run a program named in one of their options (rg --pre, …). */
export const OPTION_RUNNERS: readonly (readonly [string, Handler])[] = Object.keys(PROGRAM_OPTIONS).map((name): [string, Handler] => [name, programOptions]);
