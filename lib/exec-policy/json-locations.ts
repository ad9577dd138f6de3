import { TroupeError } from '../../protocol/index.js';
/**
 * JSON.parse that also remembers on which line every value starts, so a validation error in
 * a hand-written config file can point at the line to fix.
 */
export type JsonPath = readonly (string | number)[];

export class JsonSyntaxError extends TroupeError {
  override readonly name = 'JsonSyntaxError';
  override readonly code = 'bad_request';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

export interface LocatedJson {
  readonly value: unknown;
  /** The line (from 1) of the value at `path`, or of its nearest ancestor that exists. */
  lineOf(path: JsonPath): number;
}

export function parseJsonWithLines(text: string): LocatedJson {
  const lines = new Map<string, number>();
  let pos = 0;
  let line = 1;

  const fail = (message: string): never => {
    throw new JsonSyntaxError(message, line);
  };
  const skipSpace = () => {
    while (pos < text.length) {
      const c = text[pos]!;
      if (c === '\n') line++;
      else if (c !== ' ' && c !== '\t' && c !== '\r') break;
      pos++;
    }
  };
  const expect = (c: string) => {
    skipSpace();
    if (text[pos] !== c) fail(text[pos] === undefined ? `expected '${c}' but the file ended` : `expected '${c}' but found '${text[pos]}'`);
    pos++;
  };
  const parseString = (): string => {
    const start = pos;
    pos++; // opening quote
    while (pos < text.length && text[pos] !== '"') {
      if (text[pos] === '\n') fail('a string runs past the end of its line');
      pos += text[pos] === '\\' ? 2 : 1;
    }
    if (pos >= text.length) fail('a string is not closed');
    pos++;
    try {
      return JSON.parse(text.slice(start, pos)) as string;
    } catch {
      return fail(`invalid string ${text.slice(start, pos)}`);
    }
  };
  const parseValue = (at: JsonPath): unknown => {
    skipSpace();
    lines.set(key(at), line);
    const c = text[pos];
    if (c === '{') {
      pos++;
      const out: Record<string, unknown> = {};
      skipSpace();
      if (text[pos] === '}') {
        pos++;
        return out;
      }
      for (;;) {
        skipSpace();
        if (text[pos] !== '"')
          fail(`expected a property name in double quotes but found ${text[pos] === undefined ? 'the end of the file' : `'${text[pos]}'`}`);
        const name = parseString();
        expect(':');
        out[name] = parseValue([...at, name]);
        skipSpace();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        expect('}');
        return out;
      }
    }
    if (c === '[') {
      pos++;
      const out: unknown[] = [];
      skipSpace();
      if (text[pos] === ']') {
        pos++;
        return out;
      }
      for (;;) {
        out.push(parseValue([...at, out.length]));
        skipSpace();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        expect(']');
        return out;
      }
    }
    if (c === '"') return parseString();
    const literal = /^(true|false|null|-?\d+(\.\d+)?([eE][+-]?\d+)?)/.exec(text.slice(pos, pos + 64));
    if (!literal) return fail(c === undefined ? 'unexpected end of the file' : `unexpected '${c}'`);
    pos += literal[0].length;
    return JSON.parse(literal[0]) as unknown;
  };

  const value = parseValue([]);
  skipSpace();
  if (pos < text.length) fail(`unexpected '${text[pos]}' after the end of the JSON value`);
  return {
    value,
    lineOf(path: JsonPath): number {
      for (let n = path.length; n >= 0; n--) {
        const found = lines.get(key(path.slice(0, n)));
        if (found !== undefined) return found;
      }
      return 1;
    },
  };
}

function key(path: JsonPath): string {
  return JSON.stringify(path);
}
