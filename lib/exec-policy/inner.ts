/**
 * What unwrapping one command yields: the commands, scripts and text it runs (its "inner"
 * runs), and the helpers the wrapper, shell and git readers share to describe them.
 */
import type { ParsedOptions } from './options.js';
import { literalWord, type Word } from './words.js';

export type Inner =
  | { readonly kind: 'argv'; readonly words: readonly Word[]; readonly openTail?: boolean; readonly note?: string }
  | { readonly kind: 'script'; readonly script: Word; readonly via: string }
  | { readonly kind: 'opaque'; readonly text: string; readonly reason: string; readonly foreign?: boolean }
  | { readonly kind: 'unknown'; readonly reason: string; readonly words?: readonly Word[] };

export interface Unwrapped {
  readonly inner: readonly Inner[];
  /** A shell whose script's commands are judged in its place. */
  readonly transparent?: boolean;
  /** The same command read another way (git without its global options). */
  readonly variants?: readonly (readonly Word[])[];
}

/** Reads one program's argv (`words[0]` is the program, `name` its base name). */
export type Handler = (words: readonly Word[], name: string) => Unwrapped;

/**
 * A `NAME=value` word: programs run commands named by variables (PAGER, GIT_EXTERNAL_DIFF,
 * LESSOPEN, …), so a value known now is searched for what it mentions. A value only known at
 * run time was set outside the script, or by a substitution read as a command already.
 */
export function assignmentValue(word: Word): Inner[] {
  const text = word.text;
  if (text === undefined || !text.includes('=')) return [];
  const name = text.slice(0, text.indexOf('='));
  return [{ kind: 'opaque', text: text.slice(text.indexOf('=') + 1), reason: `the variable \`${name}\` is set to text a program may run as a command` }];
}

export const unknownOnly = (reason: string): Unwrapped => ({ inner: [{ kind: 'unknown', reason }] });
export const optionsProblem = (name: string, parsed: Extract<ParsedOptions, { ok: false }>): Unwrapped =>
  unknownOnly(`troupe cannot read the options of \`${name}\` (${parsed.problem}), so it cannot tell what it runs`);

/** One shell command line made of words known now, or undefined. */
export function joined(words: readonly Word[]): Word | undefined {
  const texts = words.map((w) => w.text);
  return texts.every((t): t is string => t !== undefined) ? literalWord(texts.join(' ')) : undefined;
}

export function scriptOf(words: readonly Word[], via: string): Inner {
  const line = joined(words);
  return line === undefined
    ? { kind: 'unknown', reason: `${via} runs a command line only known when the command runs`, words }
    : { kind: 'script', script: line, via };
}
