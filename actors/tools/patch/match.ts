/**
 * Finding a hunk's lines in a file. Models reproduce context imperfectly (trailing spaces,
 * indentation, typographic quotes), so the search relaxes step by step; a stricter reading
 * always wins over a looser one anywhere in the file, so leniency never moves an exact match.
 */

type Normalize = (line: string) => string;

const TYPOGRAPHIC: ReadonlyArray<readonly [RegExp, string]> = [
  [/[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uFE58\uFE63\uFF0D]/g, '-'],
  [/[\u2018\u2019\u201A\u201B\u2032\uFF07]/g, "'"],
  [/[\u201C\u201D\u201E\u201F\u2033\uFF02]/g, '"'],
  [/[\u00A0\u2002-\u200A\u202F\u205F\u3000]/g, ' '],
  [/\u2026/g, '...'],
];

function asciiPunctuation(line: string): string {
  let out = line;
  for (const [pattern, replacement] of TYPOGRAPHIC) out = out.replace(pattern, replacement);
  return out.trim();
}

const LEVELS: readonly Normalize[] = [(l) => l, (l) => l.trimEnd(), (l) => l.trim(), asciiPunctuation];

/**
 * Index of the first occurrence of `pattern` in `lines` at or after `from`, or -1. With
 * `atEnd`, a match ending on the last line is preferred; elsewhere is accepted only if the
 * end of the file does not match at all.
 */
export function findLines(lines: readonly string[], pattern: readonly string[], from: number, atEnd = false): number {
  if (pattern.length === 0) return atEnd ? lines.length : Math.min(from, lines.length);
  if (atEnd) {
    const tail = lines.length - pattern.length;
    if (tail >= from) {
      for (const normalize of LEVELS) if (matchesAt(lines, pattern, tail, normalize)) return tail;
    }
  }
  for (const normalize of LEVELS) {
    const wanted = pattern.map(normalize);
    for (let i = from; i + pattern.length <= lines.length; i++) {
      if (matchesAt(lines, wanted, i, normalize, true)) return i;
    }
  }
  return -1;
}

function matchesAt(lines: readonly string[], pattern: readonly string[], at: number, normalize: Normalize, patternNormalized = false): boolean {
  for (let k = 0; k < pattern.length; k++) {
    const line = lines[at + k];
    const want = pattern[k];
    if (line === undefined || want === undefined) return false;
    if (normalize(line) !== (patternNormalized ? want : normalize(want))) return false;
  }
  return true;
}
