/**
 * Reads the options of a command that runs another command (`timeout -s KILL 5 rm …`), the
 * way GNU getopt does for such programs: options come first, `--` ends them, the first word
 * that is not an option is where the command starts. Long options may be abbreviated to a
 * unique prefix, as getopt_long allows. An option it does not know is an error, never a guess:
 * the caller then cannot tell where the inner command starts.
 */
import type { Word } from './words.js';

export interface OptionSpec {
  /** Short options without a value, e.g. `'fpv'`. */
  readonly flags?: string;
  /** Short options with a value, attached (`-k5`) or in the next word (`-k 5`). */
  readonly valued?: string;
  /** Short options whose optional value can only be attached (`xargs -i{}`). */
  readonly attached?: string;
  readonly long?: readonly string[];
  /** Long options with a value: `--name=value` or `--name value`. */
  readonly longValued?: readonly string[];
  /** Long options with an optional value: `--name` or `--name=value`. */
  readonly longOptional?: readonly string[];
  /** `-10` is an option (nice's adjustment). */
  readonly numeric?: boolean;
  /** Options after which reading stops (env -S, whose value becomes more words to read). */
  readonly stopAfter?: readonly string[];
}

export type ParsedOptions =
  | {
      readonly ok: true;
      /** Index of the first word after the options. */
      readonly next: number;
      /** Each option seen, by its short letter or long name, with its value (true: none). */
      readonly values: readonly (readonly [string, string | true])[];
    }
  | { readonly ok: false; readonly problem: string };

export function parseOptions(words: readonly Word[], from: number, spec: OptionSpec): ParsedOptions {
  const values: [string, string | true][] = [];
  const fail = (problem: string): ParsedOptions => ({ ok: false, problem });
  let i = from;
  while (i < words.length) {
    const text = words[i]!.text;
    if (text === undefined) return fail('an option is only known at run time');
    if (text === '--') {
      i++;
      break;
    }
    if (!text.startsWith('-') || text === '-') break;
    if (spec.numeric && /^--?\d+$/.test(text)) {
      values.push(['numeric', text]);
      i++;
      continue;
    }
    if (text.startsWith('--')) {
      const eq = text.indexOf('=');
      const given = eq === -1 ? text.slice(2) : text.slice(2, eq);
      const name = resolveLong(given, spec);
      if (name === undefined) return fail(`unknown option --${given}`);
      let value: string | true = eq === -1 ? true : text.slice(eq + 1);
      if (spec.long?.includes(name) && eq !== -1) return fail(`--${name} takes no value`);
      if (spec.longValued?.includes(name) && value === true) {
        const next = words[i + 1];
        if (next === undefined) return fail(`--${name} needs a value`);
        if (next.text === undefined) return fail(`the value of --${name} is only known at run time`);
        value = next.text;
        i++;
      }
      values.push([name, value]);
      i++;
      if (spec.stopAfter?.includes(name)) break;
      continue;
    }
    let stop = false;
    for (let j = 1; j < text.length; j++) {
      const letter = text[j]!;
      if (spec.flags?.includes(letter)) {
        values.push([letter, true]);
      } else if (spec.valued?.includes(letter)) {
        let value = text.slice(j + 1);
        if (value === '') {
          const next = words[i + 1];
          if (next === undefined) return fail(`-${letter} needs a value`);
          if (next.text === undefined) return fail(`the value of -${letter} is only known at run time`);
          value = next.text;
          i++;
        }
        values.push([letter, value]);
        stop = spec.stopAfter?.includes(letter) ?? false;
        break;
      } else if (spec.attached?.includes(letter)) {
        const value = text.slice(j + 1);
        values.push([letter, value === '' ? true : value]);
        break;
      } else {
        return fail(`unknown option -${letter}`);
      }
    }
    i++;
    if (stop) break;
  }
  return { ok: true, next: i, values };
}

function resolveLong(given: string, spec: OptionSpec): string | undefined {
  const all = [...(spec.long ?? []), ...(spec.longValued ?? []), ...(spec.longOptional ?? [])];
  if (all.includes(given)) return given;
  const candidates = all.filter((name) => name.startsWith(given));
  return given !== '' && candidates.length === 1 ? candidates[0] : undefined;
}

/** The value of the last occurrence of any of `names`, if one was given. */
export function optionValue(values: readonly (readonly [string, string | true])[], ...names: string[]): string | true | undefined {
  let found: string | true | undefined;
  for (const [name, value] of values) if (names.includes(name)) found = value;
  return found;
}
