/** Characters a POSIX shell reads as themselves anywhere in an unquoted word. */
const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Control characters a terminal acts on (all but tab and newline, which it shows as space). */
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/**
 * One word written so that a POSIX shell reads it back unchanged: as it is when nothing in it
 * is special, otherwise in single quotes (inside which only the quote itself needs care). A
 * word holding a control character a terminal would act on (an escape sequence that hides or
 * rewrites what an approval prompt shows, a carriage return) is written in bash's `$'…'` form
 * instead, every such character as a visible escape, so what is shown is what would run.
 */
export function shellQuote(word: string): string {
  if (PLAIN_WORD.test(word)) return word;
  if (TERMINAL_CONTROL.test(word)) return `$'${[...word].map(ansiCEscape).join('')}'`;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command's words as one line a shell would split back into the same words. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}

const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', "'": "\\'", '\n': '\\n', '\t': '\\t', '\r': '\\r', '\x1b': '\\e', '\b': '\\b' };

function ansiCEscape(char: string): string {
  const named = NAMED_ESCAPES[char];
  if (named !== undefined) return named;
  const code = char.codePointAt(0) ?? 0;
  // Other controls as their UTF-8 bytes, which bash reads back the same in any locale.
  if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return [...Buffer.from(char, 'utf8')].map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('');
  return char;
}
