/**
 * Exec-policy rules: prefix rules that say what happens to a command before the approval
 * policy is consulted. `allow` runs it without asking, `prompt` always asks, `forbidden` never
 * runs it (and tells the model which rule said so). The user's rules live in
 * `TROUPE_HOME/rules.json`; a project may add `.troupe/rules.json` in its working directory,
 * which can only tighten (`prompt`, `forbidden`): a repository must not be able to waive
 * approvals for the agent working in it.
 */
import { statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parseSimpleScript } from '../tools/safe-commands.js';
import type { RuleDecision, RuleVerdict } from '../sandbox/exec-plan.js';
import { JsonSyntaxError, parseJsonWithLines } from './json-locations.js';

export const RULES_FILE_NAME = 'rules.json';

const RuleSchema = z
  .object({
    prefix: z.array(z.string().min(1, 'must not be empty')).min(1, 'needs at least one word'),
    decision: z.enum(['allow', 'prompt', 'forbidden']),
    reason: z.string().optional(),
  })
  .strict();

const RulesFileSchema = z.object({ rules: z.array(RuleSchema) }).strict();

export interface ExecRule {
  readonly prefix: readonly string[];
  readonly decision: RuleDecision;
  readonly reason?: string | undefined;
  readonly file: string;
  readonly line: number;
}

/** A rules file that cannot be used; the message starts with `file:line:`. */
export class ExecPolicyError extends Error {
  override readonly name = 'ExecPolicyError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}:${line}: ${problem}`, options);
  }
}

/** Validates one rules file's text. `project` files may not contain `allow` rules. */
export function parseRules(text: string, file: string, options: { project: boolean }): ExecRule[] {
  let located: ReturnType<typeof parseJsonWithLines>;
  try {
    located = parseJsonWithLines(text);
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw new ExecPolicyError(file, error.line, `not valid JSON: ${error.message}`, { cause: error });
    throw error;
  }
  const parsed = RulesFileSchema.safeParse(located.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length === 0 ? 'the file' : issue.path.map(String).join('.');
    const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    throw new ExecPolicyError(file, located.lineOf(issue.path as (string | number)[]), `${where}: ${issue.message}${keys}`);
  }
  return parsed.data.rules.map((rule, i) => {
    const line = located.lineOf(['rules', i]);
    if (options.project && rule.decision === 'allow') {
      throw new ExecPolicyError(
        file,
        line,
        `rules.${i}: "allow" rules are only accepted in the user's TROUPE_HOME/${RULES_FILE_NAME}; a project's rules can only add "prompt" or "forbidden"`,
      );
    }
    return { prefix: rule.prefix, decision: rule.decision, reason: rule.reason, file, line };
  });
}

const STRICTNESS: Record<RuleDecision, number> = { allow: 0, prompt: 1, forbidden: 2 };
const SHELL_NAMES = new Set(['bash', 'sh', 'zsh', 'dash', 'ksh']);

export class ExecPolicy {
  constructor(readonly rules: readonly ExecRule[]) {}

  /**
   * What the rules say about `argv`. A `bash -c` script is judged command by command: the
   * strictest rule wins, and `allow` needs every command allowed. A script too complex to
   * split safely is searched word by word for `prompt`/`forbidden` prefixes and never allowed.
   */
  evaluate(argv: readonly string[]): RuleVerdict | undefined {
    if (this.rules.length === 0) return undefined;
    const script = shellScript(argv);
    const commands = script === undefined ? [argv] : parseSimpleScript(script);
    if (commands === undefined) return this.#scanWords(argv, script!);
    const verdicts = commands.map((command) => this.#strictest(this.rules.filter((rule) => matches(rule, command))));
    const strictest = this.#strictest(verdicts.filter((v): v is ExecRule => v !== undefined));
    if (strictest === undefined) return undefined;
    if (strictest.decision === 'allow' && verdicts.some((v) => v === undefined)) return undefined;
    return verdict(strictest);
  }

  #scanWords(argv: readonly string[], script: string): RuleVerdict | undefined {
    const words = script.split(/[\s;&|()<>`$'"{}]+/).filter((w) => w !== '');
    const hits = this.rules.filter(
      (rule) => rule.decision !== 'allow' && (matches(rule, argv) || windows(words, rule.prefix.length).some((w) => matches(rule, w))),
    );
    const strictest = this.#strictest(hits);
    return strictest === undefined ? undefined : verdict(strictest);
  }

  #strictest(rules: readonly ExecRule[]): ExecRule | undefined {
    let best: ExecRule | undefined;
    for (const rule of rules) if (best === undefined || STRICTNESS[rule.decision] > STRICTNESS[best.decision]) best = rule;
    return best;
  }
}

function verdict(rule: ExecRule): RuleVerdict {
  return { decision: rule.decision, description: `${rule.decision} ${JSON.stringify(rule.prefix)} (${rule.file}:${rule.line})`, reason: rule.reason };
}

/**
 * `allow` must match the program exactly as written; `prompt` and `forbidden` also match it by
 * its base name, so `/bin/rm` cannot slip past a rule about `rm`.
 */
function matches(rule: ExecRule, command: readonly string[]): boolean {
  if (command.length < rule.prefix.length) return false;
  return rule.prefix.every((word, i) => {
    const actual = command[i]!;
    if (actual === word) return true;
    return i === 0 && rule.decision !== 'allow' && path.posix.basename(actual) === word;
  });
}

function windows(words: readonly string[], size: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i + size <= words.length; i++) out.push(words.slice(i, i + size));
  return out;
}

function shellScript(argv: readonly string[]): string | undefined {
  if (argv.length !== 3) return undefined;
  const [shell, flag] = argv as [string, string, string];
  if (!SHELL_NAMES.has(path.posix.basename(shell)) || (flag !== '-c' && flag !== '-lc')) return undefined;
  return argv[2];
}

/** Where the rules live for a home and a working directory. */
export function rulesFiles(home: string, cwd: string): { user: string; project: string } {
  return { user: path.join(home, RULES_FILE_NAME), project: path.join(cwd, '.troupe', RULES_FILE_NAME) };
}

const fileCache = new Map<string, { mtimeMs: number; size: number; rules: ExecRule[] }>();

/** Both files' rules, re-read only when a file changed. A missing file has no rules. */
export async function loadExecPolicy(home: string, cwd: string): Promise<ExecPolicy> {
  const files = rulesFiles(home, cwd);
  const user = await loadFile(files.user, false);
  const project = path.resolve(files.project) === path.resolve(files.user) ? [] : await loadFile(files.project, true);
  return new ExecPolicy([...user, ...project]);
}

async function loadFile(file: string, project: boolean): Promise<ExecRule[]> {
  // This runs before every command, and usually neither file exists: a synchronous stat that
  // returns nothing for a missing path costs microseconds, a failed async one builds an Error.
  let info: Stats | undefined;
  try {
    info = statSync(file, { throwIfNoEntry: false });
  } catch {
    return [];
  }
  if (info === undefined) return [];
  const cached = fileCache.get(file);
  if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) return cached.rules;
  const rules = parseRules(await readFile(file, 'utf8'), file, { project });
  fileCache.set(file, { mtimeMs: info.mtimeMs, size: info.size, rules });
  return rules;
}
