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
import { JsonSyntaxError, parseJsonWithLines } from './json-locations.js';
import { mentionedName, mentionsProgram, mentionsWord } from './mentions.js';
import { loadShellParser } from './shell-script.js';
import { analyzeArgv, type RunNode, type UnknownRun } from './unwrap.js';
import { ESCALATING } from './wrappers.js';
import { couldBeProgram, displayWord, programNames, type Word } from './words.js';
import { TroupeError } from '../../protocol/index.js';

export const RULES_FILE_NAME = 'rules.json';

export type RuleDecision = 'allow' | 'prompt' | 'forbidden';

/** What the rules say about one command (undefined from `evaluate`: no rule matched). */
export interface RuleVerdict {
  readonly decision: RuleDecision;
  /** Names the rule for the user and the model, e.g. `prompt ["git","push"] (~/.troupe/rules.json:4)`. */
  readonly description: string;
  readonly reason?: string | undefined;
  /**
   * The question to put to the user instead of the rule's own wording: set when troupe asks
   * because it cannot rule out that the command runs what a rule names, or for its built-in
   * question before commands run as another user.
   */
  readonly question?: string | undefined;
}

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
export class ExecPolicyError extends TroupeError {
  override readonly name = 'ExecPolicyError';
  override readonly code = 'bad_request';
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

export class ExecPolicy {
  constructor(readonly rules: readonly ExecRule[]) {}

  /**
   * What the rules say about `argv`, judged against every command it would run: the argv
   * itself, what its wrappers run, and the commands of shell scripts (unwrap.ts).
   *
   * - A `prompt` or `forbidden` rule that matches any of those commands applies; the strictest
   *   wins (forbidden > prompt > allow).
   * - Where a command could match a `prompt`/`forbidden` rule but a word is only known when it
   *   runs, or where troupe cannot tell what runs at all, the verdict is to ask.
   * - `allow` applies only when every command that runs is allowed (a shell running a script
   *   troupe could split does not count itself; its commands do), so allowing a wrapper never
   *   allows what it wraps.
   * - A command run as another user (sudo, doas, …) asks, unless an `allow` rule names it.
   */
  evaluate(argv: readonly string[]): RuleVerdict | undefined {
    const execution = analyzeArgv(argv);
    const strict = this.rules.filter((rule) => rule.decision !== 'allow');
    const findings: Finding[] = [];
    let allowedBy: ExecRule | undefined;
    let everyCommandAllowed = execution.unknowns.length === 0;
    for (const node of execution.nodes) {
      const allow = this.rules.find((rule) => rule.decision === 'allow' && allows(rule, node));
      if (allow !== undefined) allowedBy ??= allow;
      else if (!node.transparent) everyCommandAllowed = false;
      for (const rule of strict) {
        const match = matchNode(rule, node);
        if (match === 'exact') findings.push({ rank: STRICTNESS[rule.decision], verdict: verdict(rule, node.note) });
        else if (match === 'possible') findings.push({ rank: 1, verdict: uncertain(rule, `\`${show(node.words)}\` has words only known when it runs`) });
      }
      if (node.escalates && allow === undefined) findings.push({ rank: 1, verdict: escalation(programName(node)) });
    }
    for (const unknown of execution.unknowns) {
      const cited = strict.filter((rule) => cites(rule, unknown));
      const rule = strictest(cited) ?? (unknown.reach === 'anything' ? strictest(strict) : undefined);
      if (rule !== undefined) findings.push({ rank: 1, verdict: uncertain(rule, unknown.reason) });
      const escalating = unknown.mentioned.find((word) => ESCALATING.has(mentionedName(word)));
      if (escalating !== undefined) findings.push({ rank: 1, verdict: escalation(mentionedName(escalating)) });
    }
    let decided: Finding | undefined;
    for (const finding of findings) if (decided === undefined || finding.rank > decided.rank) decided = finding;
    if (decided !== undefined) return decided.verdict;
    return everyCommandAllowed && allowedBy !== undefined ? verdict(allowedBy) : undefined;
  }
}

interface Finding {
  /** forbidden 3, prompt 2, a question troupe asks because it cannot be sure 1. */
  readonly rank: number;
  readonly verdict: RuleVerdict;
}

const STRICTNESS: Record<RuleDecision, number> = { allow: 0, prompt: 2, forbidden: 3 };

function strictest(rules: readonly ExecRule[]): ExecRule | undefined {
  let best: ExecRule | undefined;
  for (const rule of rules) if (best === undefined || STRICTNESS[rule.decision] > STRICTNESS[best.decision]) best = rule;
  return best;
}

function describe(rule: ExecRule): string {
  return `${rule.decision} ${JSON.stringify(rule.prefix)} (${rule.file}:${rule.line})`;
}

function verdict(rule: ExecRule, note?: string): RuleVerdict {
  const reason = note === undefined ? rule.reason : rule.reason === undefined ? note : `${note}; ${rule.reason}`;
  return { decision: rule.decision, description: describe(rule), reason };
}

/** A question: the command may run what a prompt/forbidden rule names, and troupe cannot rule it out. */
function uncertain(rule: ExecRule, why: string): RuleVerdict {
  return {
    decision: 'prompt',
    description: describe(rule),
    reason: rule.reason,
    question: `troupe cannot rule out that this command runs what the exec-policy rule ${describe(rule)} names: ${why}`,
  };
}

function escalation(program: string): RuleVerdict {
  return {
    decision: 'prompt',
    description: `built in: ${program} runs commands as another user`,
    question: `\`${program}\` runs a command as another user, so troupe asks first (an "allow" rule in TROUPE_HOME/${RULES_FILE_NAME} naming this exact command waives the question)`,
  };
}

function programName(node: RunNode): string {
  return path.posix.basename(node.words[0]?.text ?? '');
}

function show(words: readonly Word[]): string {
  const text = words.map(displayWord).join(' ');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * `allow` must match the command exactly as written — the program as spelled, every prefix
 * word known now — and the command must run in the environment troupe sees (no `NAME=value`
 * before it, no output redirected into a file).
 */
function allows(rule: ExecRule, node: RunNode): boolean {
  if (!node.allowable || node.words.length < rule.prefix.length) return false;
  return rule.prefix.every((word, i) => node.words[i]!.text === word);
}

type Match = 'exact' | 'possible' | 'none';

/** A prompt/forbidden rule against a command, or against another reading of it (its variants). */
function matchNode(rule: ExecRule, node: RunNode): Match {
  let best: Match = 'none';
  for (const words of [node.words, ...node.variants]) {
    const match = matchWords(rule.prefix, words, node.openTail);
    if (match === 'exact') return match;
    if (match === 'possible') best = match;
  }
  return best;
}

/**
 * The program matches by its base name too (`/bin/rm` is `rm`); later words must be equal. A
 * word only known at run time, or arguments appended at run time, could be the rule's word.
 */
function matchWords(prefix: readonly string[], words: readonly Word[], openTail: boolean): Match {
  for (let i = 0; i < prefix.length; i++) {
    const word = words[i];
    if (word === undefined) return openTail ? 'possible' : 'none';
    if (word.text === undefined) return 'possible';
    if (i === 0 ? !programMatches(word.text, prefix[0]!) : word.text !== prefix[i]) return 'none';
  }
  return 'exact';
}

function programMatches(text: string, ruleProgram: string): boolean {
  const names = programNames(text);
  return names.includes(ruleProgram) || names.includes(path.posix.basename(ruleProgram));
}

/** Whether a command troupe cannot read may be what the rule names. */
function cites(rule: ExecRule, unknown: UnknownRun): boolean {
  const name = path.posix.basename(rule.prefix[0]!);
  if (unknown.words.some((word) => couldBeProgram(word, name))) return true;
  if (!unknown.mentioned.some((word) => mentionsProgram(word, name))) return false;
  return unknown.reach === 'anything' || rule.prefix.slice(1).every((p) => unknown.mentioned.some((word) => mentionsWord(word, p)));
}

/** Where the rules live for a home and a working directory. */
export function rulesFiles(home: string, cwd: string): { user: string; project: string } {
  return { user: path.join(home, RULES_FILE_NAME), project: path.join(cwd, '.troupe', RULES_FILE_NAME) };
}

const fileCache = new Map<string, { mtimeMs: number; size: number; rules: ExecRule[] }>();

/**
 * Both files' rules, re-read only when a file changed. A missing file has no rules. The first
 * call also loads the shell parser that `evaluate` reads scripts with.
 */
export async function loadExecPolicy(home: string, cwd: string): Promise<ExecPolicy> {
  await loadShellParser();
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
