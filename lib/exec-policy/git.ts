/**
 * git as a runner of commands: its global options are stepped over so that a rule about
 * `git push` also sees `git -C dir push`; configuration given on the command line may name
 * commands for git to run; and a few subcommands run commands they are given.
 */
import { scriptOf, unknownOnly, type Inner, type Unwrapped } from './inner.js';
import { literalWord, type Word } from './words.js';

const GIT_FLAGS = new Set([
  '-p',
  '--paginate',
  '-P',
  '--no-pager',
  '--no-replace-objects',
  '--bare',
  '--literal-pathspecs',
  '--glob-pathspecs',
  '--noglob-pathspecs',
  '--icase-pathspecs',
  '--no-optional-locks',
  '--no-lazy-fetch',
  '--no-advice',
]);
const GIT_VALUED = new Set([
  '-C',
  '-c',
  '--git-dir',
  '--work-tree',
  '--namespace',
  '--super-prefix',
  '--config-env',
  '--exec-path',
  '--list-cmds',
  '--attr-source',
]);

/**
 * git: its global options are stepped over so that a rule about `git push` also sees
 * `git -C dir push`; configuration given on the command line may name commands for git to
 * run; and a few subcommands run commands they are given.
 */
export function git(words: readonly Word[]): Unwrapped {
  const inner: Inner[] = [];
  let i = 1;
  for (; i < words.length; i++) {
    const text = words[i]!.text;
    if (text === undefined) return unknownOnly('an option of `git` is only known when the command runs, and git options can name commands for git to run');
    if (GIT_FLAGS.has(text)) continue;
    const eq = text.indexOf('=');
    const option = text.startsWith('--') && eq !== -1 ? text.slice(0, eq) : text;
    if (!GIT_VALUED.has(option)) break;
    let value: string | undefined;
    if (option !== text) value = text.slice(eq + 1);
    else if (option !== '--exec-path') {
      value = words[++i]?.text;
      if (value === undefined) return unknownOnly(`the value of \`git ${option}\` is only known when the command runs`);
    }
    if (option === '-c' && value !== undefined && value.includes('=')) {
      inner.push({ kind: 'opaque', text: value.slice(value.indexOf('=') + 1), reason: '`git -c` sets a configuration value that git may run as a command' });
    } else if (option === '--config-env') {
      inner.push({ kind: 'unknown', reason: '`git --config-env` takes a configuration value, which git may run as a command, from the environment' });
    } else if (option === '--exec-path' && value !== undefined) {
      inner.push({ kind: 'unknown', reason: '`git --exec-path` makes git run its commands from another directory' });
    }
  }
  const rest = words.slice(i);
  const variants = i > 1 && !rest[0]?.text?.startsWith('-') ? [[words[0]!, ...rest]] : [];
  inner.push(...gitSubcommandRuns(rest));
  return { inner, variants };
}

/** Commands that git subcommands run: `bisect run`, `rebase --exec`, `submodule foreach`, … */
function gitSubcommandRuns(args: readonly Word[]): Inner[] {
  const sub = args[0]?.text;
  const via = `\`git ${sub}\``;
  if (sub === 'bisect' && args[1]?.text === 'run') return args.length > 2 ? [{ kind: 'argv', words: args.slice(2) }] : [];
  if (sub === 'submodule') {
    const at = args.findIndex((w) => w.text === 'foreach');
    if (at === -1) return [];
    let from = at + 1;
    while (args[from]?.text === '--recursive') from++;
    return args.length > from ? [scriptOf(args.slice(from), via)] : [];
  }
  const valued: Record<string, { short?: string; long: readonly string[] }> = {
    rebase: { short: '-x', long: ['--exec'] },
    difftool: { short: '-x', long: ['--extcmd'] },
    'filter-branch': { long: ['--env-filter', '--tree-filter', '--index-filter', '--parent-filter', '--msg-filter', '--commit-filter', '--tag-name-filter'] },
  };
  const options = sub === undefined ? undefined : valued[sub];
  if (options === undefined) return [];
  const found: Inner[] = [];
  for (let i = 1; i < args.length; i++) {
    const text = args[i]!.text;
    if (text === undefined) continue;
    const long = options.long.find((o) => text === o || text.startsWith(`${o}=`));
    let value: Word | undefined;
    if (long !== undefined) value = text === long ? args[++i] : literalWord(text.slice(long.length + 1));
    else if (options.short !== undefined && text.startsWith(options.short)) value = text === options.short ? args[++i] : literalWord(text.slice(2));
    if (value !== undefined) found.push(scriptOf([value], via));
  }
  return found;
}
