/**
 * What an opaque script — one troupe cannot split into commands — mentions. The scan does not
 * parse; it undoes the ways a name can be written in pieces (quotes, backslashes, line
 * continuations, `$'\x72m'`) and splits on everything that can separate words, so it finds
 * more candidate words than the shell would, never fewer. A word with glob characters or a
 * brace list mentions every name it could expand to.
 */
import path from 'node:path';
import { decodeAnsiC } from './shell-script.js';

export interface Mentions {
  /** Candidate words, unquoted. */
  readonly words: readonly string[];
  /** The text computes words at run time (`$…` other than `$'…'`, backticks, a foreign shell's `(…)`). */
  readonly computes: boolean;
}

export function scanMentions(text: string, options: { foreign: boolean }): Mentions {
  let plain = text.replace(/\\\n/g, '');
  plain = plain.replace(/\$'((?:[^'\\]|\\[\s\S])*)'/g, (_match, body: string) => decodeAnsiC(body));
  // Shells outside the POSIX family (fish) decode these escapes in ordinary words too.
  if (options.foreign) plain = plain.replace(/\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3})/g, (escape) => decodeAnsiC(escape));
  const computes = /\$(?!')|`/.test(text) || (options.foreign && /[()]/.test(text));
  const words = plain
    .replace(/['"\\]/g, '')
    .split(/[\s;&|()<>`$=!:]+/)
    .filter((w) => w !== '');
  return { words, computes };
}

/** Whether `word`, used as a program, could be `name` (by its base name, or by expanding). */
export function mentionsProgram(word: string, name: string): boolean {
  const tail = word.slice(word.lastIndexOf('/') + 1).replace(/^=/, '');
  return tail === name || couldExpandTo(tail, name);
}

/** Whether `word`, used as an argument, could be `value`. */
export function mentionsWord(word: string, value: string): boolean {
  return word === value || couldExpandTo(word, value);
}

function couldExpandTo(pattern: string, value: string): boolean {
  if (!/[*?[{]/.test(pattern)) return false;
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else if (c === '[' || c === '{') {
      const close = pattern.indexOf(c === '[' ? ']' : '}', i + 1);
      if (close === -1) {
        source += `\\${c}`;
        continue;
      }
      const inner = pattern.slice(i + 1, close);
      source += c === '[' || inner.includes('..') ? '.*' : `(?:${inner.split(',').map(escape).join('|')})`;
      i = close;
    } else source += escape(c);
  }
  return new RegExp(`^${source}$`).test(value);
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The base name of a candidate word, for looking it up among known programs. */
export function mentionedName(word: string): string {
  return path.posix.basename(word).replace(/^=/, '');
}
