import { randomUUID } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { createInterface } from 'node:readline/promises';
import {
  approvalAnswer,
  describeApprovalRequest,
  isApprovalRequest,
  TroupeError,
  type ApprovalRequestMsg,
  type Event,
  type ReviewDecision,
  type ReviewTarget,
  type SessionConfig,
  type SessionOp,
} from '../protocol/index.js';
import { NATS_FLAGS } from '../lib/nats/settings.js';
import { commandGateway } from '../actors/gateway-options.js';
import { createRuntime, SessionError, type Runtime, type RuntimeOptions, type Session } from '../actors/runtime.js';
import { checkedProfile, runsOnNats, configFromFlags, MODEL_FLAGS, parseArgs, PROFILE_FLAG, UsageError, wireApiFlag } from './flags.js';
import { CodexEventMapper } from './codex-json.js';
import { openInspector, takeInspectFlag } from './inspect.js';
import { CODEX_EXEC_FLAGS, codexExecSettings } from './codex-flags.js';
import { terminalSafe, TranscriptRenderer } from './render.js';
import { shellJoin } from './shell-words.js';
import { loadToolSets, toolSetSpecs, TOOLS_FLAG } from './tool-flags.js';
import { closeRuntime, exitSoon, ShutdownBound, shutdownTimeoutMs } from './shutdown.js';

/** How `troupe exec` answers approval requests. */
export type Approver = (request: ApprovalRequestMsg) => Promise<ReviewDecision>;

/**
 * Asks on the terminal: y (approve), a (approve for the session), n (deny), q (abort the turn).
 * `hold` keeps the transcript back while the question is open (other agents work on meanwhile);
 * what it returns lets the transcript through again.
 */
export function terminalApprover(hold: () => () => void = () => () => {}): Approver {
  return async (request) => {
    const what = terminalSafe(describeApprovalRequest(request, shellJoin));
    const release = hold();
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      for (;;) {
        const answer = (await rl.question(`Allow troupe to ${what}? [y]es / [a]lways this session / [n]o / [q]uit turn: `)).trim().toLowerCase();
        if (answer === 'y' || answer === 'yes') return 'approved';
        if (answer === 'a' || answer === 'always') return 'approved_for_session';
        if (answer === 'n' || answer === 'no') return 'denied';
        if (answer === 'q' || answer === 'quit') return 'abort';
      }
    } finally {
      rl.close();
      release();
    }
  };
}

/** Without a terminal nobody can answer: deny, and say how to run without asking. */
export function denyingApprover(): Approver {
  return async (request) => {
    process.stderr.write(
      `troupe: denied the request to ${terminalSafe(describeApprovalRequest(request, shellJoin))}: it needs approval and there is no terminal to ask. ` +
        'Run in a terminal, or choose a policy that does not ask (--approval-policy never, or on-request with --sandbox danger-full-access).\n',
    );
    return 'denied';
  };
}

export interface OneTurnOptions {
  readonly runtime: Runtime;
  /** The session the turn runs in: a new one, or one taken up again. */
  readonly open: (runtime: Runtime) => Promise<Session>;
  /** What the turn is: a user turn, a review. */
  readonly op: SessionOp;
  /** Who answers approval requests; null leaves them to another client (the --inspect page). */
  readonly approver: Approver | null;
  readonly onEvent: (event: Event) => void;
  /** More work in the same session once the turn has ended, before it shuts down. */
  readonly after?: ((session: Session) => Promise<void>) | undefined;
  /** How long the session's shutdown may take (default: as long as it takes). */
  readonly shutdown?: ShutdownBound | undefined;
}

/** A user turn of one text prompt. */
export function userTurn(prompt: string): SessionOp {
  return { type: 'user_turn', items: [{ type: 'text', text: prompt }] };
}

/**
 * Run one turn in a session (new or resumed) and shut it down. Follows the whole session tree:
 * events of sub-agents and review threads are passed on too, and their approval requests are
 * answered like the root's. Resolves to the root's final message and whether its turn failed.
 */
export async function runOneTurn(options: OneTurnOptions): Promise<{ lastMessage: string | null; failed: boolean; shutDown: boolean }> {
  const { runtime } = options;
  const turnId = `turn-${randomUUID()}`;
  const tree = new Set<string>();
  /** Roots configured while the session opens: the one that is ours is shown first. */
  const roots = new Map<string, Event>();
  let rootId: string | null = null;
  let failed = false;
  let shutDown = false;
  let lastMessage: string | null = null;
  let turnEnded!: () => void;
  const ended = new Promise<void>((resolve) => (turnEnded = resolve));
  let rootClosed!: () => void;
  const closed = new Promise<void>((resolve) => (rootClosed = resolve));
  // One question at a time on the terminal, in the order the requests came.
  let answering: Promise<void> = Promise.resolve();

  const onEvent = (event: Event) => {
    const msg = event.msg;
    if (msg.type === 'session_configured' && msg.parent_session_id !== null && tree.has(msg.parent_session_id)) tree.add(msg.session_id);
    if (msg.type === 'session_configured' && rootId === null) roots.set(msg.session_id, event);
    if (event.session_id === null || !tree.has(event.session_id)) return;
    options.onEvent(event);
    const sessionId = event.session_id;
    const isRoot = sessionId === rootId;
    if (isApprovalRequest(msg)) {
      const approver = options.approver;
      if (approver === null) return;
      answering = answering.then(async () => {
        const decision = await approver(msg);
        await runtime.gateway.submit({ id: `approval-${msg.call_id}`, session_id: sessionId, op: approvalAnswer(msg, decision) });
      });
    } else if (isRoot && msg.type === 'error') {
      failed = true;
    } else if (isRoot && msg.type === 'task_complete' && msg.turn_id === turnId) {
      lastMessage = msg.last_agent_message;
      turnEnded();
    } else if (isRoot && msg.type === 'turn_aborted' && msg.turn_id === turnId) {
      failed = true;
      turnEnded();
    } else if (isRoot && msg.type === 'shutdown_complete') {
      rootClosed();
    }
  };
  const stop = runtime.onEvent(onEvent);
  try {
    const session = await options.open(runtime);
    rootId = session.id;
    tree.add(session.id);
    options.onEvent(roots.get(session.id) ?? { id: null, session_id: session.id, seq: null, msg: session.configured });
    roots.clear();
    await session.submit(options.op, turnId);
    await ended;
    await answering;
    await options.after?.(session);
    const shutdown = (async () => {
      // An id of this turn's own: on NATS a repeated op id for the same session is dropped as a duplicate.
      await runtime.gateway.submit({ id: `shutdown-${turnId}`, session_id: session.id, op: { type: 'shutdown' } });
      await closed;
    })();
    shutDown = options.shutdown ? await options.shutdown.within(shutdown) : (await shutdown, true);
  } finally {
    stop();
  }
  return { lastMessage, failed, shutDown };
}

/**
 * The prompt: the arguments, or stdin when they are `-` or absent while stdin is not a
 * terminal (a pipe or a file; the Codex SDK sends its prompt that way).
 */
async function promptFrom(command: string, positionals: readonly string[], stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const fromStdin = (positionals.length === 1 && positionals[0] === '-') || (positionals.length === 0 && !stdin.isTTY);
  const prompt = fromStdin ? (await text(stdin)).trim() : positionals.join(' ').trim();
  if (prompt) return prompt;
  throw new UsageError(fromStdin ? 'the prompt read from stdin is empty' : `${command} needs a prompt (as an argument, or "-" to read it from stdin)`);
}

/** How a turn is printed: a transcript, troupe's events as JSON lines, or Codex's exec events. */
type TurnOutput = 'transcript' | 'json' | 'codex';

/** The flags of the commands that run a turn: exec, resume, review. */
const TURN_FLAGS = {
  ...MODEL_FLAGS,
  ...PROFILE_FLAG,
  ...NATS_FLAGS,
  json: { type: 'boolean', default: false },
  'approval-policy': { type: 'string' },
  sandbox: { type: 'string' },
  cd: { type: 'string', short: 'C' },
  ...TOOLS_FLAG,
} as const;

/** The values of the flags every turn command takes (a command's own extra flags come on top). */
type TurnFlagValues = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: typeof TURN_FLAGS }>>['values'];

function parseTurnFlags<E extends Record<string, { type: 'string' | 'boolean'; default?: boolean }>>(argv: readonly string[], extra: E) {
  const inspect = takeInspectFlag(argv);
  return { ...parseArgs({ args: inspect.argv, allowPositionals: true, strict: true, options: { ...TURN_FLAGS, ...extra } }), inspectPort: inspect.port };
}

/**
 * Run one turn for a command and print it: a live transcript on stderr and the final message
 * on stdout, or every event as a JSON line with --json. Exit 0, or 1 when the turn failed.
 */
async function printTurn(
  name: string,
  values: TurnFlagValues,
  inspectPort: number | null,
  runtimeOptions: RuntimeOptions,
  turn: (runtime: Runtime) => Pick<OneTurnOptions, 'open' | 'op'>,
  output: TurnOutput = values.json ? 'json' : 'transcript',
): Promise<number> {
  // The session's shutdown and the runtime's close, together, within this bound (shutdown.ts).
  const bound = new ShutdownBound(shutdownTimeoutMs(process.env));
  // With --nats (or TROUPE_NATS_URL) the session runs on a worker.
  const profile = checkedProfile(values, process.env, runtimeOptions.home, runsOnNats(values));
  const wireApi = wireApiFlag(values['wire-api']);
  const { options: nats, lost } = await commandGateway(values, process.env, `troupe ${name}`);
  const runtime = createRuntime({ ...runtimeOptions, ...nats, model: values.model, wireApi, profile });
  const renderer = output === 'transcript' ? new TranscriptRenderer(process.stderr) : null;
  let rootId: string | null = null;
  const codex = output === 'codex' ? new CodexEventMapper(() => rootId) : null;
  const line = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  // --inspect: the page shows the session tree and answers its approvals (the terminal does not ask).
  const inspector = await openInspector(runtime, inspectPort, `troupe ${name}`);
  let code = 1;
  try {
    // In this process the sets are loaded here; on NATS the workers must have them.
    if (runtime.host) await loadToolSets(runtime.host, toolSetSpecs(values));
    const { open, op } = turn(runtime);
    // A gateway without NATS for too long gives up: the turn ends with that error.
    const { lastMessage, failed } = await raceLost(
      lost,
      runOneTurn({
        runtime,
        op,
        open: async (r) => {
          const session = await open(r);
          rootId = session.id;
          return session;
        },
        approver: inspector
          ? null
          : process.stdin.isTTY && output !== 'codex'
            ? terminalApprover(renderer ? () => renderer.hold() : undefined)
            : denyingApprover(),
        onEvent: (event) => {
          if (renderer) renderer.render(event);
          else if (codex) codex.map(event).forEach(line);
          else line(event);
        },
        shutdown: bound,
      }),
    );
    renderer?.close();
    if (renderer && lastMessage) process.stdout.write(`${lastMessage}\n`);
    code = failed ? 1 : 0;
  } catch (error) {
    // The session could not be opened (no such session to resume, a bad config): say why.
    if (!(error instanceof SessionError) && !(error instanceof NatsLost)) throw error;
    renderer?.close();
    process.stderr.write(`troupe ${name}: ${error.message}\n`);
  } finally {
    const closed = await closeRuntime(runtime, bound);
    await inspector?.close();
    if (closed.gaveUp) exitSoon(Math.max(code, closed.code));
    code = Math.max(code, closed.code);
  }
  return code;
}

/** The error a command's gateway gave up on NATS with, as the turn's outcome. */
class NatsLost extends TroupeError {
  override readonly name = 'NatsLost';
}

function raceLost<T>(lost: Promise<Error>, work: Promise<T>): Promise<T> {
  return Promise.race([work, lost.then((error) => Promise.reject(new NatsLost(error.message)))]);
}

/** The session settings of the turn flags: configFromFlags's, and the tool sets `--tools` names. */
function turnConfig(values: TurnFlagValues): SessionConfig {
  const sets = toolSetSpecs(values).map((spec) => spec.name);
  return { ...configFromFlags(values), ...(sets.length > 0 ? { tool_sets: sets } : {}) };
}

/**
 * `troupe exec [PROMPT | -]`, or `troupe exec resume (SESSION_ID | --last) [PROMPT | -]`: one
 * turn in a new session or in one taken up again. The flags the Codex SDK passes to a Codex
 * binary are understood too (codex-flags.ts), and `--experimental-json` prints Codex's exec
 * events instead of troupe's.
 */
export async function runExec(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const { values, positionals, inspectPort } = parseTurnFlags(argv, { ...CODEX_EXEC_FLAGS, last: { type: 'boolean', default: false } });
  if (values.json && values['experimental-json']) throw new UsageError('--json and --experimental-json cannot be used together');
  const resuming = positionals[0] === 'resume';
  if (values.last && !resuming) throw new UsageError('--last belongs to exec resume');
  const target = resuming && !values.last ? positionals[1] : undefined;
  if (resuming && !values.last && target === undefined) throw new UsageError('exec resume needs a session id, or --last');
  const prompt = await promptFrom('exec', resuming ? positionals.slice(values.last ? 1 : 2) : positionals);
  const flagged = turnConfig(values);
  const codex = codexExecSettings(values, process.env);
  const given = { ...flagged, ...codex.config };
  const output: TurnOutput = values['experimental-json'] ? 'codex' : values.json ? 'json' : 'transcript';
  // Approval and sandbox come from the config file (or the built-in defaults) unless flags name
  // them; nobody answers approvals in Codex's JSON mode, so like codex exec it never asks.
  const defaults: SessionConfig = { cwd: process.cwd(), ...(output === 'codex' ? { approval_policy: 'never' } : {}) };
  const op: SessionOp = {
    type: 'user_turn',
    items: [{ type: 'text', text: prompt }, ...codex.images],
    ...(codex.outputSchema ? { final_output_json_schema: codex.outputSchema } : {}),
  };
  const options = { ...runtimeOptions, ...codex.runtime };
  return printTurn(
    'exec',
    values,
    inspectPort,
    options,
    () => ({
      open: (runtime) => (resuming ? resumeSession(runtime, target, given) : runtime.newSession({ ...defaults, ...given })),
      op,
    }),
    output,
  );
}

/**
 * `troupe resume [SESSION_ID | --last] [PROMPT | -]`: one more turn in a session taken up from
 * its rollout (--last: the newest session started here, in this directory). Flags given
 * override what the session was created with.
 */
export async function runResume(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const { values, positionals, inspectPort } = parseTurnFlags(argv, { last: { type: 'boolean', default: false } });
  const target = values.last ? undefined : positionals[0];
  if (!values.last && target === undefined) throw new UsageError('resume needs a session id, or --last');
  const prompt = await promptFrom('resume', values.last ? positionals : positionals.slice(1));
  const config = turnConfig(values);
  return printTurn('resume', values, inspectPort, runtimeOptions, () => ({ open: (runtime) => resumeSession(runtime, target, config), op: userTurn(prompt) }));
}

/** Take a session up again: the one named, or the newest started in the configured directory. */
async function resumeSession(runtime: Runtime, target: string | undefined, config: SessionConfig): Promise<Session> {
  const id = target ?? (await lastSession(runtime, config.cwd ?? process.cwd()));
  return runtime.resumeSession({ session_id: id }, config);
}

/** The newest top-level session whose working directory is `cwd`. */
async function lastSession(runtime: Runtime, cwd: string): Promise<string> {
  const found = (await runtime.listSessions()).find((s) => s.parent_session_id === null && s.cwd === cwd);
  if (!found) throw new UsageError(`no session to resume in ${cwd} (troupe sessions lists them)`);
  return found.session_id;
}

/**
 * `troupe review [--uncommitted | --base BRANCH | --commit SHA | "instructions"]`: a review
 * thread in a new session, isolated from any other work; its findings go to stdout.
 */
export async function runReview(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const { values, positionals, inspectPort } = parseTurnFlags(argv, {
    uncommitted: { type: 'boolean', default: false },
    base: { type: 'string' },
    commit: { type: 'string' },
  });
  const instructions = positionals.join(' ').trim();
  const targets: ReviewTarget[] = [
    ...(values.uncommitted ? [{ type: 'uncommitted_changes' as const }] : []),
    ...(values.base !== undefined ? [{ type: 'base_branch' as const, branch: values.base }] : []),
    ...(values.commit !== undefined ? [{ type: 'commit' as const, sha: values.commit }] : []),
    ...(instructions ? [{ type: 'custom' as const, instructions }] : []),
  ];
  if (targets.length > 1) throw new UsageError('review takes one of --uncommitted, --base BRANCH, --commit SHA or instructions');
  const target = targets[0] ?? { type: 'uncommitted_changes' };
  const config: SessionConfig = { approval_policy: 'never', sandbox_policy: 'read-only', cwd: process.cwd(), ...configFromFlags(values) };
  return printTurn('review', values, inspectPort, runtimeOptions, () => ({
    open: (runtime) => runtime.newSession(config),
    op: { type: 'review', review_request: { target } },
  }));
}
