/**
 * Words of a command as the exec-policy sees them. A word given in an argv is plain text. A word
 * of a shell script may also hold parts only known when the shell runs it (`$HOME`, `$(cmd)`,
 * globs, brace lists): those parts are kept as placeholders, so a rule can tell "is `rm`" from
 * "could be `rm`".
 */
import path from 'node:path';

export type Segment =
  /** Characters known now. */
  | { readonly kind: 'text'; readonly text: string }
  /** An unquoted `*`: any run of characters in one path component. */
  | { readonly kind: 'star' }
  /** An unquoted `?`: one character in a path component. */
  | { readonly kind: 'one' }
  /** An expansion, bracket expression or brace list: anything, possibly with `/`. */
  | { readonly kind: 'any' };

export interface Word {
  readonly segments: readonly Segment[];
  /** The word's value when it is fully known: no expansion and no glob. */
  readonly text: string | undefined;
  /** An unquoted expansion or glob: the shell may turn the word into several words, or none. */
  readonly splits: boolean;
}

export function literalWord(text: string): Word {
  return { segments: [{ kind: 'text', text }], text, splits: false };
}

/** Assembles a word piece by piece while a script is read. */
export class WordBuilder {
  readonly #segments: Segment[] = [];
  #pending = '';
  #splits = false;
  #unknown = false;

  text(chars: string): void {
    this.#pending += chars;
  }

  glob(kind: 'star' | 'one'): void {
    this.#flush();
    this.#segments.push({ kind });
    this.#splits = true;
  }

  /** A part known only at run time; `splits` when unquoted (word splitting, globbing). */
  unknown(splits: boolean): void {
    this.#flush();
    this.#segments.push({ kind: 'any' });
    this.#unknown = true;
    if (splits) this.#splits = true;
  }

  build(): Word {
    this.#flush();
    const known = !this.#unknown && this.#segments.every((s) => s.kind === 'text');
    const text = known ? this.#segments.map((s) => (s.kind === 'text' ? s.text : '')).join('') : undefined;
    return { segments: [...this.#segments], text, splits: this.#splits };
  }

  #flush(): void {
    if (this.#pending === '') return;
    this.#segments.push({ kind: 'text', text: this.#pending });
    this.#pending = '';
  }
}

/** The text of a word with its unknown parts left out (for messages). */
export function displayWord(word: Word): string {
  return word.segments.map((s) => (s.kind === 'text' ? s.text : s.kind === 'star' ? '*' : s.kind === 'one' ? '?' : '…')).join('');
}

/** Replaces every occurrence of `marker` in a word's known text with an unknown part (xargs -I, find's `{}`). */
export function markUnknown(word: Word, marker: string): Word {
  if (marker === '' || !word.segments.some((s) => s.kind === 'text' && s.text.includes(marker))) return word;
  const segments: Segment[] = [];
  for (const segment of word.segments) {
    if (segment.kind !== 'text') {
      segments.push(segment);
      continue;
    }
    segment.text.split(marker).forEach((piece, i) => {
      if (i > 0) segments.push({ kind: 'any' });
      if (piece !== '') segments.push({ kind: 'text', text: piece });
    });
  }
  return { segments, text: undefined, splits: word.splits };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Whether the word, run as a program, could be the program `name`: the same name, or a path
 * ending in it. For a word with globs only the last path component's pattern counts (a glob
 * never matches `/`); an expansion could produce any path.
 */
export function couldBeProgram(word: Word, name: string): boolean {
  if (word.text !== undefined) return programNames(word.text).includes(name);
  if (word.segments.some((s) => s.kind === 'any')) return true;
  const tail: Segment[] = [];
  for (const segment of word.segments) {
    if (segment.kind === 'text' && segment.text.includes('/')) {
      tail.length = 0;
      const rest = segment.text.slice(segment.text.lastIndexOf('/') + 1);
      if (rest !== '') tail.push({ kind: 'text', text: rest });
    } else {
      tail.push(segment);
    }
  }
  return patternOf(tail).test(name);
}

/**
 * The names under which a program word can match a rule: the word, its base name, and for
 * zsh's `=name` (which expands to the path of `name`) the name after `=`.
 */
export function programNames(text: string): string[] {
  const names = [text, path.posix.basename(text)];
  if (text.startsWith('=') && text.length > 1) names.push(path.posix.basename(text.slice(1)));
  return names;
}

function patternOf(segments: readonly Segment[]): RegExp {
  const source = segments
    .map((s) => {
      switch (s.kind) {
        case 'text':
          return escapeRegExp(s.text);
        case 'star':
          return '[^/]*';
        case 'one':
          return '[^/]';
        case 'any':
          return '[\\s\\S]*';
      }
    })
    .join('');
  return new RegExp(`^${source}$`);
}
