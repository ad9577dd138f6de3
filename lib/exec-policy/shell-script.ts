/**
 * Reads a shell script with tree-sitter's bash grammar and lists every simple command it could
 * run: those joined by `;`, `&&`, `||`, `|`, `&`, newlines; inside subshells, `{ }` groups,
 * `if`/`while`/`until`/`for`/`case` bodies and function bodies; and inside `$(...)`, backticks
 * and `<(...)`/`>(...)`, wherever they appear. Quoting is undone (`'r'm`, `"r""m"`, `r\m` and
 * `$'\x72m'` are all the word `rm`); expansions and globs stay placeholders (words.ts).
 *
 * Nothing is evaluated. The reader gives up (returns undefined) where the grammar reports an
 * error, on node kinds it does not handle, and on what it chooses not to model — arithmetic
 * commands `(( ))`, array literals, `coproc`, a heredoc whose body would run command
 * substitutions — so that the caller treats the script as opaque rather than misreads it.
 *
 * The grammar is WebAssembly, loaded once per process by `loadShellParser()`; after that,
 * reading is synchronous. Until it has loaded, every script counts as one it cannot read.
 */
import { createRequire } from 'node:module';
import type { Node, Parser } from 'web-tree-sitter';
import { literalWord, WordBuilder, type Word } from './words.js';

export interface ScriptCommand {
  /** The program and its arguments, after `NAME=value` assignments and redirections. */
  readonly words: readonly Word[];
  /** `NAME=value` before the program: it runs with a changed environment. */
  readonly assigns: boolean;
  /** Its output is redirected into a file (not /dev/null, not another descriptor). */
  readonly writesFile: boolean;
}

export interface ParsedScript {
  readonly commands: readonly ScriptCommand[];
  /** Every `NAME=value` word, with or without a command after it. */
  readonly assignments: readonly Word[];
  /**
   * The script evaluates arithmetic (`$((…))`, `[[ ]]`, a subscript), where bash also runs
   * command substitutions it finds in the values of variables.
   */
  readonly arithmetic: boolean;
  /** A quoted string contains `$(` or a backtick: code kept as text, which something may run later. */
  readonly codeInText: boolean;
}

let parser: Parser | undefined;
let loading: Promise<void> | undefined;

/** Loads the bash grammar, once per process; later calls return the same promise. */
export function loadShellParser(): Promise<void> {
  loading ??= (async () => {
    // The module too is loaded here, at the first command troupe plans, not when it starts.
    const { Language, Parser } = await import('web-tree-sitter');
    await Parser.init();
    const wasm = createRequire(import.meta.url).resolve('tree-sitter-bash/tree-sitter-bash.wasm');
    const loaded = new Parser();
    loaded.setLanguage(await Language.load(wasm));
    parser = loaded;
  })().catch((error: unknown) => {
    loading = undefined; // a later call tries again
    throw error;
  });
  return loading;
}

export function parseScript(script: string): ParsedScript | undefined {
  const syntax = lastSyntax(script);
  if (syntax === undefined) return undefined;
  try {
    return new ScriptReader().read(syntax);
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
}

/**
 * The commands of a script made only of plain commands joined by `;`, `&&`, `||` and `|`, each
 * word known now (quoted or not, but no expansion, glob, brace list or leading `~`); anything
 * else — redirections, assignments, substitutions, groups, newlines, comments — is undefined.
 */
export function parsePlainCommands(script: string): string[][] | undefined {
  const syntax = lastSyntax(script);
  if (syntax === undefined || syntax.children.length === 0 || !syntax.children.every((node, i) => (i % 2 === 1 ? node.type === ';' : plain(node))))
    return undefined;
  const commands = parseScript(script)?.commands.map((command) => command.words.map((word) => word.text));
  return commands?.every((words): words is string[] => words.every((word) => word !== undefined)) ? commands : undefined;
}

/** Node kinds and tokens of plain commands. */
const PLAIN = new Set([
  'list',
  'pipeline',
  'command',
  'command_name',
  'word',
  'number',
  'raw_string',
  'string',
  'string_content',
  'concatenation',
  '&&',
  '||',
  '|',
  '"',
]);

function plain(node: Syntax): boolean {
  return PLAIN.has(node.type) && !(node.type === 'word' && node.text.startsWith('~')) && node.children.every(plain);
}

/** A node of the syntax tree, copied out of the parser's memory so that walking it is cheap. */
interface Syntax {
  /** The node's kind; for punctuation and keywords, the token itself. */
  readonly type: string;
  readonly named: boolean;
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly children: readonly Syntax[];
}

class Unsupported extends Error {}

/** The policy and the read-only check read the same script one after the other: parse it once. */
let last: { readonly script: string; readonly syntax: Syntax | undefined } | undefined;

function lastSyntax(script: string): Syntax | undefined {
  if (parser === undefined) return undefined;
  if (last?.script !== script) last = { script, syntax: syntaxOf(parser, script) };
  return last.syntax;
}

/** The tree of a script, or undefined where the grammar does not read all of it. */
function syntaxOf(parser: Parser, script: string): Syntax | undefined {
  let parsed = parse(parser, script);
  // The grammar skips a backslash-newline as if it were a space, but bash removes it, joining
  // `r\<newline>m` into `rm`. Those outside single quotes, comments and heredocs are removed
  // and the script read again.
  if (parsed !== undefined && script.includes('\\\n')) {
    const joined = removeContinuations(script, parsed.syntax);
    if (joined !== script) {
      script = joined;
      parsed = parse(parser, joined);
    }
  }
  return parsed === undefined || parsed.broken || !coversAll(parsed.syntax, script) ? undefined : parsed.syntax;
}

/** The tree and whether it has syntax errors; undefined if it nests too deeply to read. */
function parse(parser: Parser, script: string): { syntax: Syntax; broken: boolean } | undefined {
  const tree = parser.parse(script);
  if (tree === null) throw new Error('tree-sitter returned no tree');
  try {
    const syntax = copy(tree.rootNode, script, 0);
    return syntax === undefined ? undefined : { syntax, broken: tree.rootNode.hasError };
  } finally {
    tree.delete();
  }
}

/** Nesting deeper than this is not something a person writes; reading it could overflow the stack. */
const MAX_DEPTH = 400;

function copy(node: Node, script: string, depth: number): Syntax | undefined {
  if (depth > MAX_DEPTH) return undefined;
  const children: Syntax[] = [];
  for (const child of node.childCount === 0 ? [] : node.children) {
    const copied = copy(child, script, depth + 1);
    if (copied === undefined) return undefined;
    children.push(copied);
  }
  const start = node.startIndex;
  const end = node.endIndex;
  return { type: node.type, named: node.isNamed, start, end, text: script.slice(start, end), children };
}

/** Node kinds whose text keeps a backslash-newline as it is. */
const KEEPS_CONTINUATIONS = new Set(['raw_string', 'ansi_c_string', 'comment', 'heredoc_body', 'heredoc_content', 'heredoc_end']);

function removeContinuations(script: string, root: Syntax): string {
  let out = '';
  let from = 0;
  for (let at = script.indexOf('\\\n'); at !== -1; at = script.indexOf('\\\n', at + 2)) {
    let backslashes = 1;
    while (script[at - backslashes] === '\\') backslashes++;
    if (backslashes % 2 === 0) continue; // an escaped backslash before a plain newline
    let node: Syntax | undefined = root;
    let kept = false;
    while (node !== undefined && !kept) {
      kept = KEEPS_CONTINUATIONS.has(node.type);
      node = node.children.find((child) => child.start <= at && at < child.end);
    }
    if (kept) continue;
    out += script.slice(from, at);
    from = at + 2;
  }
  return out + script.slice(from);
}

/**
 * Whether only blanks lie outside the tree's tokens. The grammar silently skips a few things
 * bash reads as part of a word: a `-` before `<<`, a backslash before a space between words.
 */
function coversAll(root: Syntax, script: string): boolean {
  let at = 0;
  const blankUpTo = (end: number) => end <= at || /^\s*$/.test(script.slice(at, end));
  const visit = (node: Syntax): boolean => {
    if (node.children.length > 0 && node.type !== 'heredoc_body') return node.children.every(visit);
    if (!blankUpTo(node.start)) return false;
    at = Math.max(at, node.end);
    return true;
  };
  return visit(root) && blankUpTo(script.length);
}

const named = (node: Syntax) => node.children.filter((child) => child.named);

/** Node kinds made of statements, words and keywords: the `for`/`case` words are not commands. */
const BLOCKS = new Set([
  'program',
  'list',
  'pipeline',
  'subshell',
  'do_group',
  'if_statement',
  'elif_clause',
  'else_clause',
  'while_statement',
  'negated_command',
  'for_statement',
  'case_statement',
  'case_item',
  'function_definition',
]);
const REDIRECTS = new Set(['file_redirect', 'heredoc_redirect', 'herestring_redirect']);
/** Output redirections that write a file (unless the target is /dev/null or a descriptor). */
const WRITING = new Set(['>', '>>', '>|', '&>', '&>>', '<>', '>&']);
/** Text that bash runs as a command substitution where it expands. */
const SUBSTITUTION = /`|\$\(/;
/** Node kinds that are (parts of) words. */
const WORD_KINDS = new Set([
  'word',
  'number',
  'string',
  'raw_string',
  'ansi_c_string',
  'translated_string',
  'concatenation',
  'simple_expansion',
  'expansion',
  'command_substitution',
  'process_substitution',
  'arithmetic_expansion',
  'brace_expression',
]);
/** Expression kinds whose children are read for substitutions. */
const EXPRESSIONS = new Set(['binary_expression', 'unary_expression', 'parenthesized_expression', 'ternary_expression', 'postfix_expression', 'subscript']);
/** Leaves of expressions that hold no code. */
const NAMES = new Set(['variable_name', 'special_variable_name', 'test_operator', 'file_descriptor']);

class ScriptReader implements ParsedScript {
  readonly commands: ScriptCommand[] = [];
  readonly assignments: Word[] = [];
  arithmetic = false;
  codeInText = false;

  read(root: Syntax): this {
    this.#parts(root, false);
    return this;
  }

  #statement(node: Syntax, writes: boolean): void {
    switch (node.type) {
      case 'comment':
        break;
      case 'command':
        this.#command(node, writes);
        break;
      case 'declaration_command':
      case 'unset_command':
        this.#builtin(node, writes);
        break;
      case 'test_command':
        this.#test(node, writes);
        break;
      case 'variable_assignment':
        this.assignments.push(this.#assignment(node));
        break;
      case 'variable_assignments':
        for (const child of named(node)) this.assignments.push(this.#assignment(child));
        break;
      case 'redirected_statement':
        this.#redirected(node, writes);
        break;
      case 'compound_statement':
        if (node.children[0]?.type !== '{') throw new Unsupported(); // `(( … ))`
        this.#parts(node, writes);
        break;
      default:
        if (!BLOCKS.has(node.type)) throw new Unsupported();
        this.#parts(node, writes);
    }
  }

  /**
   * The parts of a block, a loop, a `case` or a function definition: its statements, the words
   * of a `for` list or `case` patterns, and a function's redirections, which apply to its body.
   */
  #parts(node: Syntax, writes: boolean): void {
    for (const child of node.children) if (REDIRECTS.has(child.type) && this.#redirect(child, undefined)) writes = true;
    for (const child of named(node)) {
      if (WORD_KINDS.has(child.type) || child.type === 'extglob_pattern') this.#expression(child);
      else if (!REDIRECTS.has(child.type) && !NAMES.has(child.type) && child.type !== 'comment') this.#statement(child, writes);
    }
  }

  /** `extra`: words the grammar put into a redirection after the command (`cmd > f extra`). */
  #command(node: Syntax, writes: boolean, extra: readonly Syntax[] = []): void {
    const words: Syntax[] = [];
    let assigns = false;
    let writesFile = writes;
    for (const child of node.children) {
      if (child.type === 'variable_assignment') {
        assigns = true;
        this.assignments.push(this.#assignment(child));
      } else if (REDIRECTS.has(child.type)) {
        if (this.#redirect(child, words)) writesFile = true;
      } else if (child.type === 'command_name') {
        if (child.text === 'coproc') throw new Unsupported();
        words.push(...child.children);
      } else {
        words.push(child);
      }
    }
    this.#push(this.#words([...words, ...extra]), assigns, writesFile);
  }

  /** export, declare, local, readonly, typeset, unset: the keyword and its arguments as words. */
  #builtin(node: Syntax, writes: boolean): void {
    const [keyword, ...args] = node.children;
    const words = [literalWord(keyword!.text)];
    args.forEach((arg, i) => {
      if (!arg.named || (i > 0 && arg.start === args[i - 1]!.end)) throw new Unsupported();
      words.push(arg.type === 'variable_assignment' ? this.#assignment(arg) : this.#word([arg]));
    });
    this.#push(words, false, writes);
  }

  /** `[[ … ]]` runs nothing but its substitutions; `[ … ]` is the builtin `[` with its words. */
  #test(node: Syntax, writes: boolean): void {
    if (node.children[0]?.type === '[[') {
      this.arithmetic = true;
      for (const child of named(node)) this.#expression(child);
      return;
    }
    const words: Word[] = [];
    const flatten = (part: Syntax): void => {
      if (WORD_KINDS.has(part.type)) words.push(this.#word([part]));
      else if (!part.named || part.type === 'test_operator' || part.type === 'variable_name') words.push(literalWord(part.text));
      else if (EXPRESSIONS.has(part.type)) part.children.forEach(flatten);
      else throw new Unsupported();
    };
    node.children.forEach(flatten);
    this.#push(words, false, writes);
  }

  #push(words: Word[], assigns: boolean, writesFile: boolean): void {
    if (words.length > 0) this.commands.push({ words, assigns, writesFile });
  }

  #redirected(node: Syntax, writes: boolean): void {
    const bodies = node.children.filter((child) => !REDIRECTS.has(child.type));
    const extra: Syntax[] = [];
    for (const child of node.children) if (REDIRECTS.has(child.type) && this.#redirect(child, extra)) writes = true;
    if (bodies.length !== 1) throw new Unsupported();
    this.#redirectedBody(bodies[0]!, writes, extra);
  }

  /**
   * The grammar hangs a redirection at the end of `a && b > f` or `a | b > f` on the whole
   * list or pipeline; bash gives it (and words after it) to the last command only.
   */
  #redirectedBody(body: Syntax, writes: boolean, extra: readonly Syntax[]): void {
    if (body.type === 'list' || body.type === 'pipeline') {
      const parts = named(body);
      parts.forEach((part, i) => (i === parts.length - 1 ? this.#redirectedBody(part, writes, extra) : this.#statement(part, false)));
    } else if (body.type === 'command') {
      this.#command(body, writes, extra);
    } else {
      if (extra.length > 0) throw new Unsupported();
      this.#statement(body, writes);
    }
  }

  /**
   * Reads a redirection's words; true when it writes a file. The grammar takes the words after
   * a redirection's target (`cmd > f a b`) into it: they are the command's, and go to `spill`.
   */
  #redirect(node: Syntax, spill: Syntax[] | undefined): boolean {
    if (node.type === 'heredoc_redirect') return this.#heredoc(node, spill);
    const words = named(node).filter((child) => child.type !== 'file_descriptor');
    let end = 1;
    while (end < words.length && words[end]!.start === words[end - 1]!.end) end++;
    if (end < words.length) {
      if (spill === undefined) throw new Unsupported();
      spill.push(...words.slice(end));
    }
    const text = words.length === 0 ? undefined : this.#word(words.slice(0, end)).text;
    const operator = node.children.find((child) => !child.named)?.type ?? '';
    if (node.type === 'herestring_redirect' || !WRITING.has(operator)) return false;
    const duplicates = operator === '>&' && text !== undefined && /^(\d+-?|-)$/.test(text);
    return !duplicates && text !== '/dev/null';
  }

  /**
   * A heredoc. Its body runs substitutions unless the delimiter is quoted: those are not read,
   * so such a body makes the script unreadable. The grammar also puts what follows the
   * delimiter on its line (`cat <<EOF | sh`, `cat <<EOF > f`) inside this node.
   */
  #heredoc(node: Syntax, spill: Syntax[] | undefined): boolean {
    let expands = true;
    let writes = false;
    for (const child of node.children) {
      if (child.type === 'heredoc_start') expands = !/['"\\]/.test(child.text);
      else if (child.type === 'heredoc_body') {
        if (expands && SUBSTITUTION.test(child.text.replaceAll('\\\n', ''))) throw new Unsupported();
      } else if (REDIRECTS.has(child.type)) {
        if (this.#redirect(child, spill)) writes = true;
      } else if (WORD_KINDS.has(child.type)) {
        if (spill === undefined) throw new Unsupported();
        spill.push(child); // `cat <<EOF arg`
      } else if (child.named && child.type !== 'heredoc_end' && child.type !== 'file_descriptor') {
        this.#statement(child, false);
      }
    }
    return writes;
  }

  /** A `NAME=value` word. A subscript in the name is arithmetic: which element is set is only known at run time. */
  #assignment(node: Syntax): Word {
    const word = new WordReader(this);
    const name = node.children[0]?.type === 'subscript' ? node.children[0].children[0] : node.children[0];
    // The grammar also takes `-f*x=1` for an assignment; bash runs it as a command.
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name?.text ?? '')) throw new Unsupported();
    for (const child of node.children) {
      if (child.type === 'subscript') {
        this.arithmetic = true;
        this.#expression(child);
        word.builder.text(name!.text);
        word.builder.unknown(false);
      } else if (child.type === 'variable_name' || !child.named) {
        word.builder.text(child.text);
      } else {
        word.pieces([child], false); // an array literal is not a word: it gives up there
      }
    }
    return word.build();
  }

  /** A word made of `nodes`, adjacent in the text. Reading it reads the commands it substitutes. */
  #word(nodes: readonly Syntax[]): Word {
    const word = new WordReader(this);
    word.pieces(nodes, false);
    return word.build();
  }

  /** Command words: nodes that touch in the text are one word, as bash reads them. */
  #words(nodes: readonly Syntax[]): Word[] {
    const words: Word[] = [];
    for (let i = 0; i < nodes.length;) {
      let j = i + 1;
      while (j < nodes.length && nodes[j]!.start === nodes[j - 1]!.end) j++;
      words.push(this.#word(nodes.slice(i, j)));
      i = j;
    }
    return words;
  }

  /** The parts of a test or arithmetic expression, for the substitutions in them. */
  #expression(node: Syntax): void {
    if (WORD_KINDS.has(node.type)) this.#word([node]);
    else if (node.type === 'regex' || node.type === 'extglob_pattern') {
      if (SUBSTITUTION.test(node.text)) throw new Unsupported();
    } else if (EXPRESSIONS.has(node.type)) {
      for (const child of named(node)) this.#expression(child);
    } else if (node.named && !NAMES.has(node.type)) throw new Unsupported();
  }

  /** `$(…)`, backticks and `<(…)`: the commands inside (`$(< file)` has a redirection only). */
  substitution(node: Syntax, quoted: boolean): void {
    const [open, ...rest] = node.children;
    if (open?.type !== '`') return this.#parts(node, false);
    // Backslashes inside backquotes escape `$`, `` ` ``, `\` (and `"` within double quotes);
    // the grammar does not undo them, so the unescaped text is read as a script of its own.
    const text = node.text.slice(open.end - node.start, rest.at(-1)!.start - node.start);
    const inner = syntaxOf(
      parser!,
      text.replace(/\\([$`\\"])/g, (escape, c: string) => (c !== '"' || quoted ? c : escape)),
    );
    if (inner === undefined) throw new Unsupported();
    this.#parts(inner, false);
  }

  /** `${…}` and `$((…))`: the substitutions inside; arithmetic holding a substitution is not read. */
  expansion(node: Syntax): void {
    if (node.type === 'arithmetic_expansion') {
      if (/[`'"]|\$\(/.test(node.text.slice(node.children[0]!.end - node.start))) throw new Unsupported();
      this.arithmetic = true;
    }
    for (const child of named(node)) {
      if (child.type === 'subscript') this.arithmetic = true;
      this.#expression(child);
    }
  }
}

/** Builds one word from tree nodes, undoing quotes and escapes as bash does. */
class WordReader {
  readonly builder = new WordBuilder();
  // An unquoted `{` followed by `,` or `..` and then `}` is a brace list; an unquoted `[`
  // followed by `]` a bracket expression. Either may hold quoted parts (`["r"]m`,
  // `{"r",x}m`): rather than model them, the word is marked as one that could be anything.
  #brace = false;
  #braceList = false;
  #bracket = false;
  #expandsLater = false;

  constructor(private readonly script: ScriptReader) {}

  pieces(nodes: readonly Syntax[], quoted: boolean): void {
    nodes.forEach((node, i) => {
      // `$"…"` (a translated string) can come out as a `$` and a string: the `$` is no text.
      const next = nodes[i + 1];
      if (node.type === '$' && next?.start === node.end && next.text.startsWith('"')) return;
      this.#piece(node, quoted);
    });
  }

  build(): Word {
    if (this.#expandsLater) this.builder.unknown(true);
    const word = this.builder.build();
    if (word.segments.some((s) => s.kind === 'text' && SUBSTITUTION.test(s.text))) this.script.codeInText = true;
    return word;
  }

  #piece(node: Syntax, quoted: boolean): void {
    const b = this.builder;
    switch (node.type) {
      case 'word':
      case 'brace_expression':
        this.#unquoted(node.text);
        break;
      case 'number':
        if (node.children.length === 0) this.#unquoted(node.text);
        else {
          this.script.expansion(node);
          b.unknown(!quoted);
        }
        break;
      case '$':
        b.text('$');
        break;
      case 'variable_name':
      case '==':
      case '=~':
        b.text(node.text);
        break;
      case 'raw_string':
        b.text(node.text.slice(1, -1));
        break;
      case 'ansi_c_string':
        b.text(decodeAnsiC(node.text.slice(2, -1)));
        break;
      case 'string': {
        let at = node.start;
        for (const child of node.children) {
          // Blanks in a string are not always content nodes: the grammar leaves them between
          // nodes, or counts them into the next token (`" $x"`).
          b.text(node.text.slice(at - node.start, child.start - node.start));
          at = child.end;
          if (child.type === 'string_content') b.text(child.text.replace(/\\([$`"\\\n])/g, (_, c: string) => (c === '\n' ? '' : c)));
          else {
            b.text(/^\s*/.exec(child.text)![0]);
            if (child.type !== '"') this.#piece(child, true);
          }
        }
        break;
      }
      case 'concatenation':
      case 'translated_string':
        this.pieces(node.children, quoted);
        break;
      case 'simple_expansion':
        b.unknown(!quoted);
        break;
      case 'expansion':
      case 'arithmetic_expansion':
        this.script.expansion(node);
        b.unknown(!quoted);
        break;
      case 'command_substitution':
        this.script.substitution(node, quoted);
        b.unknown(!quoted);
        break;
      case 'process_substitution':
        this.script.substitution(node, quoted);
        b.unknown(false);
        break;
      default:
        throw new Unsupported();
    }
  }

  /** Unquoted text: backslash escapes, globs, and the start of brace lists and bracket expressions. */
  #unquoted(text: string): void {
    const b = this.builder;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      switch (c) {
        case '\\':
          b.text(text[++i] ?? '\\');
          break;
        case '*':
        case '?':
          b.glob(c === '*' ? 'star' : 'one');
          break;
        case '$':
        case '`':
        case "'":
        case '"':
          throw new Unsupported(); // the grammar gives these nodes of their own
        default:
          if (c === '{') this.#brace = true;
          else if (c === '[') this.#bracket = true;
          else if (c === ']' && this.#bracket) this.#expandsLater = true;
          else if (this.#brace && (c === ',' || (c === '.' && text[i + 1] === '.'))) this.#braceList = true;
          else if (c === '}' && this.#braceList) this.#expandsLater = true;
          b.text(c);
      }
    }
  }
}

/** The body of `$'…'` with its escapes decoded, as bash does. */
export function decodeAnsiC(body: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    if (body[i] !== '\\') {
      out += body[i];
      continue;
    }
    const [decoded, length] = decodeEscape(body, i + 1);
    out += decoded;
    i += length;
  }
  return out;
}

/**
 * One backslash escape of `$'…'` (ANSI-C quoting), starting after the backslash: the decoded
 * text and how many characters it used.
 */
function decodeEscape(text: string, at: number): [string, number] {
  const c = text[at];
  if (c === undefined) return ['\\', 0];
  const simple: Record<string, string> = {
    a: '\x07',
    b: '\b',
    e: '\x1b',
    E: '\x1b',
    f: '\f',
    n: '\n',
    r: '\r',
    t: '\t',
    v: '\v',
    '\\': '\\',
    "'": "'",
    '"': '"',
    '?': '?',
  };
  if (simple[c] !== undefined) return [simple[c], 1];
  const digits = (pattern: RegExp, max: number, from: number) => {
    let end = from;
    while (end < text.length && end - from < max && pattern.test(text[end]!)) end++;
    return text.slice(from, end);
  };
  if (c === 'x' || c === 'u' || c === 'U') {
    const hex = digits(/[0-9a-fA-F]/, c === 'x' ? 2 : c === 'u' ? 4 : 8, at + 1);
    if (hex === '') return [`\\${c}`, 1];
    const code = Number.parseInt(hex, 16);
    return [code <= 0x10ffff ? String.fromCodePoint(code) : '', 1 + hex.length];
  }
  if (/[0-7]/.test(c)) {
    const octal = digits(/[0-7]/, 3, at);
    return [String.fromCharCode(Number.parseInt(octal, 8) & 0xff), octal.length];
  }
  if (c === 'c' && at + 1 < text.length) return [String.fromCharCode(text.charCodeAt(at + 1) & 0x1f), 2];
  return [`\\${c}`, 1];
}
