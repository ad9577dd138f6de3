import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The documentation links only to what a clone of the repository has: every relative link in
 * README.md and docs/*.md names a file or directory inside the repository, and a `#anchor` into
 * a markdown file names a heading that file has (GitHub's anchors). No markdown library is a
 * dependency, so links are found by a scanner that knows the parts of markdown that matter
 * here: fenced and indented code, code spans, inline links and images, reference definitions.
 */

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

function documents(): string[] {
  const docs = join(ROOT, 'docs');
  const inDocs = existsSync(docs)
    ? readdirSync(docs)
        .filter((name) => name.endsWith('.md'))
        .sort()
        .map((name) => join(docs, name))
    : [];
  return [join(ROOT, 'README.md'), ...inDocs];
}

const LIST_ITEM = /^\s*([-*+]|\d+[.)])\s/;

/** The lines of `markdown` outside fenced and indented code (code lines become blank, so line numbers hold). */
function proseLines(markdown: string): string[] {
  const out: string[] = [];
  let fence: { char: string; length: number } | null = null;
  let previousBlank = true;
  /** The last line with text was a list item or indented: an indented line continues a list. */
  let inList = false;
  for (const line of markdown.split(/\r?\n/)) {
    if (fence) {
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(line);
      if (close && close[1]![0] === fence.char && close[1]!.length >= fence.length) fence = null;
      out.push('');
      continue;
    }
    const open = /^\s*(`{3,}|~{3,})(.*)$/.exec(line);
    if (open && !(open[1]![0] === '`' && open[2]!.includes('`'))) {
      fence = { char: open[1]![0]!, length: open[1]!.length };
      out.push('');
      previousBlank = false;
      continue;
    }
    if (line.trim() === '') {
      out.push(line);
      previousBlank = true;
      continue;
    }
    const indented = /^( {4}|\t)/.test(line);
    if (indented && previousBlank && !inList) {
      out.push('');
      continue;
    }
    out.push(line);
    inList = LIST_ITEM.test(line) || (indented && inList) || (!previousBlank && inList);
    previousBlank = false;
  }
  return out;
}

/** `text` with its code spans blanked out (same length, so columns stay put). */
function withoutCodeSpans(text: string): string {
  return text.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (span) => ' '.repeat(span.length));
}

interface Link {
  readonly target: string;
  readonly line: number;
}

/** Every link target in `markdown`: inline links and images, and reference definitions. */
function linksIn(markdown: string): Link[] {
  const links: Link[] = [];
  proseLines(markdown).forEach((raw, index) => {
    const line = withoutCodeSpans(raw);
    const definition = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(line);
    if (definition) {
      links.push({ target: unwrap(definition[1]!), line: index + 1 });
      return;
    }
    // `](` then a destination: `<...>` or a run without spaces, balanced parentheses allowed.
    const inline = /\]\(\s*(<[^>]*>|(?:[^\s()]|\((?:[^\s()])*\))*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g;
    for (const match of line.matchAll(inline)) links.push({ target: unwrap(match[1]!), line: index + 1 });
  });
  return links;
}

function unwrap(target: string): string {
  return target.startsWith('<') && target.endsWith('>') ? target.slice(1, -1) : target;
}

/** A heading's anchor as GitHub makes it: lowercase, punctuation dropped (not `-` or `_`), spaces to `-`. */
function slug(heading: string): string {
  // Code spans keep their content as is; elsewhere links become their text, and HTML tags and
  // emphasis markers go (an underscore inside a word, as in snake_case, is not a marker).
  const text = heading
    .split(/(`+[^`]*`+)/)
    .map((part, i) =>
      i % 2 === 1
        ? part.replace(/^`+|`+$/g, '')
        : part
            .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
            .replace(/<[^>]+>/g, '')
            .replace(/(^|[^\p{L}\p{N}])[*_]{1,3}(?=\S)|(?<=\S)[*_]{1,3}(?=[^\p{L}\p{N}]|$)/gu, '$1'),
    )
    .join('');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a markdown document has: one per heading (repeats numbered), plus explicit HTML ids. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const add = (base: string) => {
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  };
  const lines = proseLines(markdown);
  lines.forEach((line, index) => {
    const atx = /^ {0,3}#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$/.exec(line);
    if (atx) {
      add(slug(atx[1] ?? ''));
      return;
    }
    const next = lines[index + 1];
    if (line.trim() !== '' && next !== undefined && /^ {0,3}(=+|-+)\s*$/.test(next) && !LIST_ITEM.test(line)) {
      // A setext heading (a paragraph of one line, underlined).
      const before = lines[index - 1];
      if (before === undefined || before.trim() === '') add(slug(line));
    }
    for (const match of withoutCodeSpans(line).matchAll(/<a\s[^>]*(?:name|id)=["']([^"']+)["']/gi)) anchors.add(match[1]!);
  });
  return anchors;
}

type Verdict = { readonly ok: true } | { readonly ok: false; readonly why: string };

/** Whether `target`, a link in the file `from`, stays inside the repository and resolves. */
function checkLink(from: string, target: string, root = ROOT): Verdict {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return { ok: true }; // external: http:, mailto:, …
  const hash = target.indexOf('#');
  const pathPart = hash === -1 ? target : target.slice(0, hash);
  const anchor = hash === -1 ? null : target.slice(hash + 1);
  let path: string;
  try {
    path = decodeURIComponent(pathPart.split('?')[0]!);
  } catch {
    return { ok: false, why: 'the path is not valid percent-encoding' };
  }
  if (/(^|\/)\.\.\/shared(\/|$)/.test(path)) return { ok: false, why: 'points at ../shared, which a clone does not have' };
  // GitHub resolves `/x` from the repository root, like `x` from the repository's top.
  const file = path === '' ? from : path.startsWith('/') ? join(root, path) : resolve(dirname(from), path);
  const inside = relative(root, file);
  if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) return { ok: false, why: 'points outside the repository' };
  if (!existsSync(file)) return { ok: false, why: `${inside} does not exist` };
  if (anchor === null || anchor === '') return { ok: true };
  if (statSync(file).isDirectory() || extname(file).toLowerCase() !== '.md') return { ok: true }; // line anchors and the like
  const anchors = anchorsOf(readFileSync(file, 'utf8'));
  let wanted: string;
  try {
    wanted = decodeURIComponent(anchor).toLowerCase();
  } catch {
    return { ok: false, why: 'the anchor is not valid percent-encoding' };
  }
  return anchors.has(wanted) ? { ok: true } : { ok: false, why: `${inside} has no heading with the anchor #${anchor}` };
}

describe('links in the documentation', () => {
  for (const doc of documents()) {
    const name = relative(ROOT, doc);
    it(`${name}: every relative link resolves inside the repository`, () => {
      const links = linksIn(readFileSync(doc, 'utf8'));
      const broken = links.flatMap(({ target, line }) => {
        const verdict = checkLink(doc, target);
        return verdict.ok ? [] : [`${name}:${line}: ${target}: ${verdict.why}`];
      });
      expect(broken).toEqual([]);
    });
  }

  it('the documents the README promises are there', () => {
    expect(documents().map((d) => relative(ROOT, d))).toEqual(expect.arrayContaining(['README.md', join('docs', 'DESIGN.md'), join('docs', 'PROTOCOL.md')]));
  });
});

describe('the link checker', () => {
  it('makes anchors as GitHub does', () => {
    expect(slug("troupe's own git (actors/git)")).toBe('troupes-own-git-actorsgit');
    expect(slug('`troupe app-server`')).toBe('troupe-app-server');
    expect(slug('1. Envelopes')).toBe('1-envelopes');
    expect(slug('What rules can and cannot promise')).toBe('what-rules-can-and-cannot-promise');
    expect(slug('Testing your own agents: `troupe/testing`')).toBe('testing-your-own-agents-troupetesting');
    expect(slug('**Bold** and _emphasis_ and snake_case')).toBe('bold-and-emphasis-and-snake_case');
    expect(slug('A [link](x.md) here')).toBe('a-link-here');
    expect([...anchorsOf('# Same\n\n## Same\n\ntext\n\nSetext\n------\n')]).toEqual(['same', 'same-1', 'setext']);
  });

  it('finds links outside code only', () => {
    const markdown = [
      'See [a](a.md), ![img](img/x.png "title") and [b](<b c.md#top>).',
      'Not `[code](nope.md)` here.',
      '',
      '```md',
      '[fenced](nope.md)',
      '```',
      '',
      '    [indented](nope.md)',
      '',
      '[ref]: docs/ref.md',
      '[paren](dir/(1).md)',
    ].join('\n');
    expect(linksIn(markdown).map((l) => l.target)).toEqual(['a.md', 'img/x.png', 'b c.md#top', 'docs/ref.md', 'dir/(1).md']);
  });

  it('refuses links that leave the repository or name what is missing', () => {
    const readme = join(ROOT, 'README.md');
    expect(checkLink(readme, '../shared/DESIGN.md')).toMatchObject({ ok: false });
    expect(checkLink(readme, '../../etc/passwd')).toMatchObject({ ok: false, why: 'points outside the repository' });
    expect(checkLink(readme, 'docs/NOPE.md')).toMatchObject({ ok: false });
    expect(checkLink(readme, '#no-such-heading-here')).toMatchObject({ ok: false });
    expect(checkLink(readme, 'docs/DESIGN.md#no-such-heading-here')).toMatchObject({ ok: false });
    expect(checkLink(readme, 'https://example.com/x')).toEqual({ ok: true });
    expect(checkLink(readme, 'docs/DESIGN.md#the-security-boundary')).toEqual({ ok: true });
    expect(checkLink(readme, 'package.json')).toEqual({ ok: true });
  });
});
