/**
 * Every command an argv would run. The argv itself runs; a wrapper (`env`, `timeout 5`, `sudo`,
 * `xargs`, `find -exec`, …) runs the command in its arguments; a shell runs the commands of its
 * `-c` script (shell-script.ts). Each of those is unwrapped in turn, so `env nice timeout 5
 * bash -c "sudo rm x"` yields the env, nice, timeout, bash, sudo and rm commands, and a rule is
 * checked against each of them.
 *
 * Where troupe cannot tell what runs — a program name computed at run time, a script it cannot
 * split, a shell reading commands from its input, an option it does not know — the result says
 * so (an `UnknownRun`) rather than guessing; rules.ts then asks instead of running.
 */
import path from 'node:path';
import { git } from './git.js';
import { assignmentValue, type Handler, type Inner } from './inner.js';
import { scanMentions, mentionedName } from './mentions.js';
import { parseScript, type ScriptCommand } from './shell-script.js';
import { ASSIGNING_BUILTINS, SHELLS_AND_BUILTINS } from './shells.js';
import { ESCALATING, OPTION_RUNNERS, WRAPPERS } from './wrappers.js';
import { displayWord, literalWord, type Word } from './words.js';

export interface RunNode {
  readonly words: readonly Word[];
  /** More arguments are appended when it runs (xargs). */
  readonly openTail: boolean;
  /** An `allow` rule may cover it: no `NAME=value` before it, no output redirected to a file. */
  readonly allowable: boolean;
  /** A shell whose script's commands are judged in its place: an `allow` verdict does not need it. */
  readonly transparent: boolean;
  /** The same command read another way, for `prompt`/`forbidden` rules (git without its global options). */
  readonly variants: readonly (readonly Word[])[];
  /** It runs its command as another user (sudo, doas, …). */
  readonly escalates: boolean;
  /** Why this command counts although the argv does not literally run it (`find -delete` as `rm`). */
  readonly note?: string | undefined;
}

export interface UnknownRun {
  /** Why troupe cannot tell what runs, for the question to the user. */
  readonly reason: string;
  /** Words that may name what runs (with run-time parts as placeholders). */
  readonly words: readonly Word[];
  /** Candidate words found in text troupe could not parse (mentions.ts). */
  readonly mentioned: readonly string[];
  /** `anything`: it could run any program. `mentioned`: only programs its text names. */
  readonly reach: 'anything' | 'mentioned';
}

export interface Execution {
  readonly nodes: readonly RunNode[];
  readonly unknowns: readonly UnknownRun[];
}

const MAX_LAYERS = 16;

export function analyzeArgv(argv: readonly string[]): Execution {
  const analysis = new Analysis();
  analysis.visit(argv.map(literalWord), { openTail: false, allowable: true, depth: 0 });
  return analysis;
}

interface Context {
  readonly openTail: boolean;
  readonly allowable: boolean;
  readonly depth: number;
  readonly note?: string | undefined;
}

class Analysis implements Execution {
  readonly nodes: RunNode[] = [];
  readonly unknowns: UnknownRun[] = [];

  visit(words: readonly Word[], context: Context): void {
    const program = words[0];
    if (program === undefined) return;
    if (context.depth > MAX_LAYERS) {
      this.#unknown('the command nests wrappers too deeply to follow', words);
      return;
    }
    if (program.text === undefined) {
      this.#unknown(`the program \`${displayWord(program)}\` is only known when the command runs`, [program]);
      return;
    }
    const name = programName(program.text);
    const unwrapped = HANDLERS.get(name)?.(words, name) ?? { inner: [] };
    this.nodes.push({
      words,
      openTail: context.openTail,
      allowable: context.allowable,
      transparent: unwrapped.transparent ?? false,
      variants: unwrapped.variants ?? [],
      escalates: ESCALATING.has(name),
      note: context.note,
    });
    for (const inner of unwrapped.inner) this.#follow(inner, context.depth + 1);
  }

  #follow(inner: Inner, depth: number): void {
    switch (inner.kind) {
      case 'argv':
        this.visit(inner.words, { openTail: inner.openTail ?? false, allowable: true, depth, note: inner.note });
        return;
      case 'script':
        this.#script(inner.script, inner.via, depth);
        return;
      case 'opaque':
        this.#opaque(inner.text, inner.reason, inner.foreign ?? false);
        return;
      case 'unknown':
        this.#unknown(inner.reason, inner.words ?? []);
        return;
    }
  }

  #script(script: Word, via: string, depth: number): void {
    if (script.text === undefined) {
      this.#unknown(`${via} runs a script that is only known when the command runs`, [script]);
      return;
    }
    const parsed = parseScript(script.text);
    if (parsed === undefined) {
      this.#opaque(script.text, `troupe cannot split the script ${via} runs into plain commands`, false);
      return;
    }
    if (parsed.codeInText && (parsed.arithmetic || parsed.commands.some(evaluatesNames))) {
      this.#unknown(`the script ${via} runs keeps \`$(…)\` or backquotes in a string that bash may evaluate`, []);
      return;
    }
    for (const command of parsed.commands) {
      this.visit(command.words, { openTail: false, allowable: !command.assigns && !command.writesFile, depth });
    }
    for (const inner of parsed.assignments.flatMap(assignmentValue)) this.#follow(inner, depth);
  }

  #opaque(text: string, reason: string, foreign: boolean): void {
    const mentions = scanMentions(text, { foreign });
    const indirect = mentions.words.some((word) => RUNS_OTHERS.has(mentionedName(word)));
    this.unknowns.push({ reason, words: [], mentioned: mentions.words, reach: mentions.computes || indirect ? 'anything' : 'mentioned' });
  }

  #unknown(reason: string, words: readonly Word[]): void {
    this.unknowns.push({ reason, words, mentioned: [], reach: 'anything' });
  }
}

function programName(text: string): string {
  return path.posix.basename(text.startsWith('=') && text.length > 1 ? text.slice(1) : text);
}

/** bash builtins that evaluate a variable name's subscript, running `$(…)` found in it. */
const NAME_EVALUATORS = new Set([
  'let',
  'read',
  'printf',
  'unset',
  'declare',
  'typeset',
  'local',
  'export',
  'readonly',
  'test',
  '[',
  'mapfile',
  'readarray',
  'getopts',
  'wait',
]);

function evaluatesNames(command: ScriptCommand): boolean {
  const program = command.words[0]?.text;
  return program === undefined || NAME_EVALUATORS.has(programName(program));
}

const HANDLERS = new Map<string, Handler>([...WRAPPERS, ...OPTION_RUNNERS, ...SHELLS_AND_BUILTINS, ['git', git]]);

/**
 * Programs that run other programs, possibly named by data troupe does not see: an opaque
 * script mentioning one of them could run anything. (A program named in an option of rg or
 * tar, or in git's configuration, is in the text itself, so those do not count.)
 */
const RUNS_OTHERS = new Set([...WRAPPERS, ...SHELLS_AND_BUILTINS].map(([name]) => name).filter((name) => !ASSIGNING_BUILTINS.includes(name)));
