/**
 * Reads a shell script the way bash, sh, dash, ksh and zsh agree to read it, and lists every
 * simple command it could run: those joined by `;`, `&&`, `||`, `|`, `&`, newlines; inside
 * subshells, `{ }` groups, `if`/`while`/`until`/`for`/`case` bodies and function bodies; and
 * inside `$(...)`, backticks and `<(...)`/`>(...)`, wherever they appear. Quoting is undone
 * (`'r'm`, `"r""m"`, `r\m` and `$'\x72m'` are all the word `rm`); expansions and globs stay
 * placeholders (words.ts).
 *
 * It does not evaluate anything, and it gives up (returns undefined) on syntax it does not
 * model — arithmetic commands `(( ))`, array literals, `coproc`, extended globs, a heredoc
 * whose body would run command substitutions, unbalanced quotes or parentheses — so that the
 * caller can treat the script as opaque rather than misread it.
 */
import { WordBuilder, type Word } from './words.js';

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

class Unsupported extends Error {}

/** Deeper nesting of substitutions than this is not something a person writes. */
const MAX_DEPTH = 24;

export function parseScript(script: string): ParsedScript | undefined {
  const found: Found = { commands: [], assignments: [], arithmetic: false, codeInText: false };
  try {
    new Parser(script, found, 0).parseList(undefined);
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
  return found;
}

interface Found {
  commands: ScriptCommand[];
  assignments: Word[];
  arithmetic: boolean;
  codeInText: boolean;
}

type Token =
  | { readonly kind: 'word'; readonly word: Word; readonly raw: string; readonly quoted: boolean }
  | { readonly kind: 'op'; readonly op: string }
  | { readonly kind: 'newline' }
  | { readonly kind: 'end' };

const OPERATORS = [';;&', ';;', ';&', ';', '&&', '&>>', '&>', '&', '||', '|&', '|', '(', ')', '<<<', '<<-', '<<', '<&', '<>', '<', '>>', '>&', '>|', '>'];
const REDIRECTIONS = new Set(['<<<', '<<-', '<<', '<&', '<>', '<', '>>', '>&', '>|', '>', '&>>', '&>']);
const WRITING_REDIRECTIONS = new Set(['<>', '>>', '>|', '>', '&>>', '&>', '>&']);
const SEPARATORS = new Set([';', '&', '&&', '||', '|', '|&']);
const METACHARACTERS = ' \t\n;&|()<>';
/** Reserved words that leave the parser expecting a command. */
const LEADING_KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', '{']);
/** Reserved words that end a command. */
const CLOSING_KEYWORDS = new Set(['fi', 'done', '}']);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/;
/** A parameter name after `$`, matched where it stands (sticky), not on a copy of the rest. */
const PARAMETER_NAME = /[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]/y;

type Mode = 'start' | 'args' | 'for' | 'case-word' | 'case-in' | 'case-pattern' | 'test' | 'function-name';

interface CommandBuilder {
  words: Word[];
  assigns: boolean;
  writesFile: boolean;
}

interface Heredoc {
  readonly delimiter: string;
  readonly stripTabs: boolean;
  /** An unquoted delimiter: the body is expanded like a double-quoted string. */
  readonly expands: boolean;
}

class Parser {
  #pos = 0;
  readonly #heredocs: Heredoc[] = [];

  constructor(
    private readonly src: string,
    private readonly found: Found,
    private depth: number,
  ) {
    if (depth > MAX_DEPTH) throw new Unsupported();
  }

  /** Reads commands up to the end of the text, or up to the `)` that closes a `$(`. */
  parseList(closing: ')' | undefined): void {
    let command: CommandBuilder | undefined;
    let mode: Mode = 'start';
    const open: ('case' | 'subshell')[] = [];
    const current = (): CommandBuilder => (command ??= { words: [], assigns: false, writesFile: false });
    const finish = () => {
      if (command !== undefined && command.words.length > 0) this.found.commands.push(command);
      command = undefined;
    };

    for (;;) {
      const token = this.#next();
      if (token.kind === 'end') {
        if (closing !== undefined || open.length > 0 || mode.startsWith('case') || mode === 'test') throw new Unsupported();
        finish();
        return;
      }
      if (token.kind === 'newline') {
        if (mode === 'test' || mode.startsWith('case')) continue;
        finish();
        mode = 'start';
        continue;
      }
      if (token.kind === 'op') {
        const { op } = token;
        if (mode === 'test') continue; // `[[ a < b && ( c ) ]]`: operators of the test itself
        if (REDIRECTIONS.has(op)) {
          this.#redirection(op, current());
          continue;
        }
        if (SEPARATORS.has(op)) {
          if (mode === 'case-pattern' && op === '|') continue;
          if (mode.startsWith('case') || mode === 'function-name') throw new Unsupported();
          finish();
          mode = 'start';
          continue;
        }
        if (op === ';;' || op === ';&' || op === ';;&') {
          if (open.at(-1) !== 'case') throw new Unsupported();
          finish();
          mode = 'case-pattern';
          continue;
        }
        if (op === '(') {
          if (mode === 'case-pattern') continue;
          if (this.#peekChar() === ')' && (mode === 'start' || (mode === 'args' && command?.words.length === 1))) {
            // `name() body`: a function definition; its body's commands are read as commands.
            this.#pos = this.src.indexOf(')', this.#pos) + 1;
            command = undefined;
            mode = 'start';
            continue;
          }
          if (mode !== 'start' || this.src[this.#pos] === '(') throw new Unsupported(); // `((` arithmetic, `a (`
          open.push('subshell');
          continue;
        }
        // op === ')'
        if (mode === 'case-pattern') {
          mode = 'start';
          continue;
        }
        finish();
        mode = 'start';
        if (open.at(-1) === 'subshell') open.pop();
        else if (closing === ')' && open.length === 0) return;
        else throw new Unsupported();
        continue;
      }

      // A word.
      const { word } = token;
      const keyword = token.quoted ? undefined : word.text;
      switch (mode) {
        case 'test':
          if (keyword === ']]') mode = 'args';
          continue;
        case 'for':
          continue; // the loop variable and its list (their substitutions were read already)
        case 'case-word':
          mode = 'case-in';
          continue;
        case 'case-in':
          if (keyword !== 'in') throw new Unsupported();
          mode = 'case-pattern';
          continue;
        case 'case-pattern':
          if (keyword === 'esac') {
            if (open.pop() !== 'case') throw new Unsupported();
            mode = 'args';
          }
          continue;
        case 'function-name':
          mode = 'start';
          continue;
        case 'args':
          current().words.push(word);
          continue;
        case 'start':
          break;
      }
      if (keyword !== undefined && (command === undefined || command.words.length === 0)) {
        if (LEADING_KEYWORDS.has(keyword)) continue;
        if (CLOSING_KEYWORDS.has(keyword)) {
          finish();
          continue;
        }
        if (keyword === 'esac') {
          if (open.pop() !== 'case') throw new Unsupported();
          finish();
          mode = 'args';
          continue;
        }
        if (keyword === 'for' || keyword === 'select') {
          mode = 'for';
          continue;
        }
        if (keyword === 'case') {
          open.push('case');
          mode = 'case-word';
          continue;
        }
        if (keyword === 'function') {
          mode = 'function-name';
          continue;
        }
        if (keyword === '[[') {
          this.found.arithmetic = true;
          mode = 'test';
          continue;
        }
        if (keyword === 'coproc') throw new Unsupported();
      }
      if (ASSIGNMENT.test(token.raw)) {
        current().assigns = true;
        this.found.assignments.push(word);
        if (/^[^=]*\[/.test(token.raw)) this.found.arithmetic = true;
        continue;
      }
      current().words.push(word);
      mode = 'args';
    }
  }

  #redirection(op: string, command: CommandBuilder): void {
    const target = this.#next();
    if (target.kind !== 'word') throw new Unsupported();
    if (op === '<<' || op === '<<-') {
      if (target.word.text === undefined) throw new Unsupported();
      this.#heredocs.push({ delimiter: target.word.text, stripTabs: op === '<<-', expands: !target.quoted });
      return;
    }
    if (!WRITING_REDIRECTIONS.has(op)) return;
    const text = target.word.text;
    const duplicates = op === '>&' && text !== undefined && /^(\d+-?|-)$/.test(text);
    if (!duplicates && text !== '/dev/null') command.writesFile = true;
  }

  #peekChar(): string | undefined {
    let i = this.#pos;
    while (this.src[i] === ' ' || this.src[i] === '\t') i++;
    return this.src[i];
  }

  #next(): Token {
    const src = this.src;
    for (;;) {
      const c = src[this.#pos];
      if (c === ' ' || c === '\t') this.#pos++;
      else if (c === '\\' && src[this.#pos + 1] === '\n') this.#pos += 2;
      else if (c === '#') {
        const end = src.indexOf('\n', this.#pos);
        this.#pos = end === -1 ? src.length : end;
      } else break;
    }
    if (this.#pos >= src.length) return { kind: 'end' };
    const c = src[this.#pos]!;
    if (c === '\n') {
      this.#pos++;
      this.#readHeredocs();
      return { kind: 'newline' };
    }
    const fd = /^\d+(?=[<>])/.exec(src.slice(this.#pos, this.#pos + 12));
    if (fd !== null) this.#pos += fd[0].length;
    const at = src[this.#pos];
    const processSubstitution = (at === '<' || at === '>') && src[this.#pos + 1] === '(';
    if (!processSubstitution) {
      for (const op of OPERATORS) {
        if (src.startsWith(op, this.#pos)) {
          this.#pos += op.length;
          return { kind: 'op', op };
        }
      }
    }
    return this.#readWord();
  }

  #readWord(): Token {
    const src = this.src;
    const start = this.#pos;
    const word = new WordBuilder();
    let quoted = false;
    let brace = false; // an unquoted `{`: with `,` or `..` and a later `}`, a brace list
    let braceList = false;
    let bracket = false; // an unquoted `[`: with a later `]`, a bracket expression
    let expandsLater = false;
    while (this.#pos < src.length) {
      const c = src[this.#pos]!;
      if (METACHARACTERS.includes(c)) {
        if ((c === '<' || c === '>') && src[this.#pos + 1] === '(') {
          this.#pos += 2;
          this.#nested();
          word.unknown(false);
          continue;
        }
        break;
      }
      switch (c) {
        case '\\':
          quoted = true;
          if (src[this.#pos + 1] === '\n') this.#pos += 2;
          else if (this.#pos + 1 < src.length) {
            word.text(src[this.#pos + 1]!);
            this.#pos += 2;
          } else {
            word.text('\\');
            this.#pos++;
          }
          break;
        case "'": {
          quoted = true;
          const end = src.indexOf("'", this.#pos + 1);
          if (end === -1) throw new Unsupported();
          word.text(src.slice(this.#pos + 1, end));
          this.#pos = end + 1;
          break;
        }
        case '"':
          quoted = true;
          this.#doubleQuoted(word);
          break;
        case '$':
          this.#dollar(word, false);
          break;
        case '`':
          this.#backticks(word, false);
          break;
        case '*':
        case '?':
          word.glob(c === '*' ? 'star' : 'one');
          this.#pos++;
          break;
        default:
          if (c === '{') brace = true;
          else if (c === '[') bracket = true;
          else if (c === ']' && bracket) expandsLater = true;
          else if (brace && (c === ',' || (c === '.' && src[this.#pos + 1] === '.'))) braceList = true;
          else if (c === '}' && braceList) expandsLater = true;
          word.text(c);
          this.#pos++;
      }
    }
    // Bracket expressions and brace lists may hold quoted pieces (`["r"]m`, `{"r",x}m`):
    // rather than model them, the whole word becomes one that could be anything.
    if (expandsLater) word.unknown(true);
    const raw = src.slice(start, this.#pos);
    if (/^[A-Za-z_][A-Za-z0-9_]*\+?=$/.test(raw) && src[this.#pos] === '(') throw new Unsupported(); // an array literal
    const built = word.build();
    if (built.segments.some((s) => s.kind === 'text' && /\$\(|`/.test(s.text))) this.found.codeInText = true;
    return { kind: 'word', word: built, raw, quoted };
  }

  #doubleQuoted(word: WordBuilder): void {
    const src = this.src;
    this.#pos++;
    for (;;) {
      if (this.#pos >= src.length) throw new Unsupported();
      const c = src[this.#pos]!;
      if (c === '"') {
        this.#pos++;
        return;
      }
      if (c === '\\') {
        const next = src[this.#pos + 1];
        if (next !== undefined && '$`"\\'.includes(next)) {
          word.text(next);
          this.#pos += 2;
        } else if (next === '\n') {
          this.#pos += 2;
        } else {
          word.text('\\');
          this.#pos++;
        }
      } else if (c === '$') {
        this.#dollar(word, true);
      } else if (c === '`') {
        this.#backticks(word, true);
      } else {
        word.text(c);
        this.#pos++;
      }
    }
  }

  /** At a `$`: an ANSI-C string, a substitution, a parameter, or a plain dollar sign. */
  #dollar(word: WordBuilder, quoted: boolean): void {
    const src = this.src;
    const next = src[this.#pos + 1];
    if (!quoted && next === "'") {
      this.#pos += 2;
      word.text(this.#ansiC());
      return;
    }
    if (!quoted && next === '"') {
      this.#pos++;
      this.#doubleQuoted(word);
      return;
    }
    if (next === '(') {
      const arithmeticEnd = src[this.#pos + 2] === '(' ? this.#arithmeticEnd(this.#pos + 3) : undefined;
      if (arithmeticEnd !== undefined) {
        // `$((…))`: only numbers, unless it holds a substitution (then give up).
        if (/[`'"]|\$\(/.test(src.slice(this.#pos + 3, arithmeticEnd))) throw new Unsupported();
        this.found.arithmetic = true;
        this.#pos = arithmeticEnd + 2;
      } else {
        this.#pos += 2;
        this.#nested();
      }
      word.unknown(!quoted);
      return;
    }
    if (next === '{') {
      this.#pos += 2;
      this.#parameter();
      word.unknown(!quoted);
      return;
    }
    let flag = 0;
    if (next !== undefined && '~=^+'.includes(next) && /[A-Za-z_{]/.test(src[this.#pos + 2] ?? '')) flag = 1; // zsh's $~x, $=x
    const after = src[this.#pos + 1 + flag];
    if (after === '{') {
      this.#pos += 2 + flag;
      this.#parameter();
      word.unknown(!quoted);
      return;
    }
    PARAMETER_NAME.lastIndex = this.#pos + 1 + flag;
    const name = PARAMETER_NAME.exec(src);
    if (name !== null) {
      this.#pos += 1 + flag + name[0].length;
      word.unknown(!quoted);
      return;
    }
    word.text('$');
    this.#pos++;
  }

  /** After `$((`: the index of the closing `))` if this is arithmetic, else undefined (a `$( (…) )`). */
  #arithmeticEnd(from: number): number | undefined {
    let depth = 0;
    for (let i = from; i < this.src.length; i++) {
      const c = this.src[i];
      if (c === '(') depth++;
      else if (c === ')') {
        if (depth > 0) depth--;
        else return this.src[i + 1] === ')' ? i : undefined;
      }
    }
    return undefined;
  }

  /** The rest of a `${…}`, reading the substitutions inside it. */
  #parameter(): void {
    const src = this.src;
    const ignored = new WordBuilder();
    let depth = 1;
    while (this.#pos < src.length) {
      const c = src[this.#pos]!;
      if (c === '\\') this.#pos += 2;
      else if (c === "'") {
        const end = src.indexOf("'", this.#pos + 1);
        if (end === -1) throw new Unsupported();
        this.#pos = end + 1;
      } else if (c === '"') this.#doubleQuoted(ignored);
      else if (c === '$') this.#dollar(ignored, true);
      else if (c === '`') this.#backticks(ignored, true);
      else {
        if (c === '{') depth++;
        else if (c === '}' && --depth === 0) {
          this.#pos++;
          return;
        }
        this.#pos++;
      }
    }
    throw new Unsupported();
  }

  /** A `$(…)` or `<(…)`: its commands, up to the matching `)`. */
  #nested(): void {
    this.depth++;
    if (this.depth > MAX_DEPTH) throw new Unsupported();
    this.parseList(')');
    this.depth--;
  }

  /** A backquoted command substitution: unescape its text and read it as a script of its own. */
  #backticks(word: WordBuilder, quoted: boolean): void {
    const src = this.src;
    this.#pos++;
    let inner = '';
    while (this.#pos < src.length) {
      const c = src[this.#pos]!;
      if (c === '`') {
        this.#pos++;
        new Parser(inner, this.found, this.depth + 1).parseList(undefined);
        word.unknown(!quoted);
        return;
      }
      if (c === '\\' && this.#pos + 1 < src.length) {
        const next = src[this.#pos + 1]!;
        inner += '$`\\'.includes(next) || (quoted && next === '"') ? next : `\\${next}`;
        this.#pos += 2;
      } else {
        inner += c;
        this.#pos++;
      }
    }
    throw new Unsupported();
  }

  /** The body of `$'…'` with its escapes decoded, as bash does. */
  #ansiC(): string {
    const src = this.src;
    let out = '';
    while (this.#pos < src.length) {
      const c = src[this.#pos]!;
      if (c === "'") {
        this.#pos++;
        return out;
      }
      if (c !== '\\') {
        out += c;
        this.#pos++;
        continue;
      }
      const [decoded, length] = decodeEscape(src, this.#pos + 1);
      out += decoded;
      this.#pos += 1 + length;
    }
    throw new Unsupported();
  }

  /** After a newline: the bodies of the heredocs started on the line just ended. */
  #readHeredocs(): void {
    const src = this.src;
    for (const heredoc of this.#heredocs.splice(0)) {
      while (this.#pos < src.length) {
        const end = src.indexOf('\n', this.#pos);
        const line = src.slice(this.#pos, end === -1 ? src.length : end);
        this.#pos = end === -1 ? src.length : end + 1;
        if ((heredoc.stripTabs ? line.replace(/^\t+/, '') : line) === heredoc.delimiter) break;
        // An unquoted heredoc runs the substitutions in its body.
        if (heredoc.expands && /`|\$\(/.test(line)) throw new Unsupported();
      }
    }
  }
}

/**
 * One backslash escape of `$'…'` (ANSI-C quoting), starting after the backslash: the decoded
 * text and how many characters it used.
 */
export function decodeEscape(text: string, at: number): [string, number] {
  const c = text[at];
  if (c === undefined) return ['\\', 0];
  const simple: Record<string, string> = { a: '\x07', b: '\b', e: '\x1b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?' };
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
