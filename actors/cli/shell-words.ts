/** Characters a POSIX shell reads as themselves anywhere in an unquoted word. */
const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One word written so that a POSIX shell reads it back unchanged: as it is when nothing in it
 * is special, otherwise in single quotes (inside which only the quote itself needs care).
 */
export function shellQuote(word: string): string {
  if (PLAIN_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A command's words as one line a shell would split back into the same words. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}
