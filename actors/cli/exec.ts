import { statSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { createInterface } from 'node:readline/promises';
import { isAbsolute, resolve } from 'node:path';
import { AskForApproval, SandboxMode, type Event, type ReviewDecision, type SessionConfig } from '../../protocol/index.js';
import { NATS_FLAGS } from '../nats/connect.js';
import { gatewayBusOptions } from '../nats/gateway-options.js';
import { createRuntime, type Runtime, type RuntimeOptions, type Session } from '../runtime.js';
import { MODEL_FLAGS, parseArgs, UsageError, wireApiFlag } from './flags.js';
import { TranscriptRenderer } from './render.js';
import { closeRuntime, exitSoon, ShutdownBound, shutdownTimeoutMs } from './shutdown.js';

/** How `troupe exec` answers approval requests. */
export type Approver = (
  request: Extract<Event['msg'], { type: 'exec_approval_request' | 'apply_patch_approval_request' }>,
) => Promise<ReviewDecision>;

/** Asks on the terminal: y (approve), a (approve for the session), n (deny), q (abort the turn). */
export function terminalApprover(): Approver {
  return async (request) => {
    const what =
      request.type === 'exec_approval_request'
        ? `run \`${request.command.join(' ')}\``
        : `change ${Object.keys(request.changes).join(', ')}`;
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      for (;;) {
        const answer = (await rl.question(`Allow troupe to ${what}? [y]es / [a]lways this session / [n]o / [q]uit turn: `))
          .trim()
          .toLowerCase();
        if (answer === 'y' || answer === 'yes') return 'approved';
        if (answer === 'a' || answer === 'always') return 'approved_for_session';
        if (answer === 'n' || answer === 'no') return 'denied';
        if (answer === 'q' || answer === 'quit') return 'abort';
      }
    } finally {
      rl.close();
    }
  };
}

/** Without a terminal nobody can answer: deny, and say how to run without asking. */
export function denyingApprover(): Approver {
  return async (request) => {
    const what =
      request.type === 'exec_approval_request'
        ? `\`${request.command.join(' ')}\``
        : `changes to ${Object.keys(request.changes).join(', ')}`;
    process.stderr.write(
      `troupe: denied ${what}: it needs approval and there is no terminal to ask. ` +
        'Run in a terminal, or choose a policy that does not ask (--approval-policy never, or on-request with --sandbox danger-full-access).\n',
    );
    return 'denied';
  };
}

export interface OneTurnOptions {
  readonly runtime: Runtime;
  readonly config: SessionConfig;
  readonly prompt: string;
  readonly approver: Approver;
  readonly onEvent: (event: Event) => void;
  /** More work in the same session once the turn has ended, before it shuts down. */
  readonly after?: ((session: Session) => Promise<void>) | undefined;
  /** How long the session's shutdown may take (default: as long as it takes). */
  readonly shutdown?: ShutdownBound | undefined;
}

/**
 * Run one turn in a new session and shut it down. Follows the whole session tree: events of
 * sub-agents are passed on too, and their approval requests are answered like the root's.
 * Resolves to the root's final message and whether the root's turn failed.
 */
export async function runOneTurn(options: OneTurnOptions): Promise<{ lastMessage: string | null; failed: boolean; shutDown: boolean }> {
  const { runtime } = options;
  const turnId = 'turn-1';
  const tree = new Set<string>();
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
    if (event.session_id === null || !tree.has(event.session_id)) return;
    options.onEvent(event);
    const sessionId = event.session_id;
    const isRoot = sessionId === rootId;
    if (msg.type === 'exec_approval_request' || msg.type === 'apply_patch_approval_request') {
      answering = answering.then(async () => {
        const decision = await options.approver(msg);
        const op = msg.type === 'exec_approval_request' ? ('exec_approval' as const) : ('patch_approval' as const);
        await runtime.gateway.submit({ id: `approval-${msg.call_id}`, session_id: sessionId, op: { type: op, id: msg.call_id, decision } });
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
    const session = await runtime.newSession(options.config);
    rootId = session.id;
    tree.add(session.id);
    options.onEvent({ id: null, session_id: session.id, seq: 1, msg: session.configured });
    await session.submit({ type: 'user_turn', items: [{ type: 'text', text: options.prompt }] }, turnId);
    await ended;
    await answering;
    await options.after?.(session);
    const shutdown = (async () => {
      await runtime.gateway.submit({ id: 'exec-shutdown', session_id: session.id, op: { type: 'shutdown' } });
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
async function promptFrom(positionals: readonly string[], stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const fromStdin = (positionals.length === 1 && positionals[0] === '-') || (positionals.length === 0 && !stdin.isTTY);
  const prompt = fromStdin ? (await text(stdin)).trim() : positionals.join(' ').trim();
  if (prompt) return prompt;
  throw new UsageError(fromStdin ? 'the prompt read from stdin is empty' : 'exec needs a prompt (as an argument, or "-" to read it from stdin)');
}

/** `troupe exec`: one turn, a live transcript on stderr (or JSONL with --json), the final message on stdout. */
export async function runExec(argv: readonly string[], runtimeOptions: RuntimeOptions = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      ...MODEL_FLAGS,
      ...NATS_FLAGS,
      json: { type: 'boolean', default: false },
      'approval-policy': { type: 'string' },
      sandbox: { type: 'string' },
      cd: { type: 'string', short: 'C' },
    },
  });
  const prompt = await promptFrom(positionals);
  const policy = AskForApproval.safeParse(values['approval-policy'] ?? 'on-request');
  if (!policy.success) throw new UsageError(`--approval-policy must be one of ${AskForApproval.options.join(', ')}`);
  const sandbox = SandboxMode.safeParse(values.sandbox ?? 'workspace-write');
  if (!sandbox.success) throw new UsageError(`--sandbox must be one of ${SandboxMode.options.join(', ')}`);
  const cwd = values.cd ? (isAbsolute(values.cd) ? values.cd : resolve(values.cd)) : process.cwd();
  // With --nats the directory is the worker's, which this machine cannot check.
  const onNats = (values.nats ?? process.env.TROUPE_NATS_URL ?? '').trim() !== '';
  if (values.cd !== undefined && !onNats && statSync(cwd, { throwIfNoEntry: false })?.isDirectory() !== true) throw new UsageError(`-C ${values.cd}: not a directory`);

  // The session's shutdown and the runtime's close, together, within this bound (shutdown.ts).
  const bound = new ShutdownBound(shutdownTimeoutMs(process.env));

  // With --nats (or TROUPE_NATS_URL) the session runs on a worker; -C must exist there too.
  const nats = await gatewayBusOptions(values, process.env, 'troupe exec');
  const runtime = createRuntime({ ...runtimeOptions, ...nats, model: values.model, wireApi: wireApiFlag(values['wire-api']) });
  const renderer = values.json ? null : new TranscriptRenderer(process.stderr);
  let code = 1;
  try {
    const { lastMessage, failed } = await runOneTurn({
      runtime,
      config: { cwd, approval_policy: policy.data, sandbox_policy: sandbox.data, ...(values.model ? { model: values.model } : {}) },
      prompt,
      approver: process.stdin.isTTY ? terminalApprover() : denyingApprover(),
      onEvent: (event) => {
        if (renderer) renderer.render(event);
        else process.stdout.write(`${JSON.stringify(event)}\n`);
      },
      shutdown: bound,
    });
    renderer?.close();
    if (renderer && lastMessage) process.stdout.write(`${lastMessage}\n`);
    code = failed ? 1 : 0;
  } finally {
    const closed = await closeRuntime(runtime, bound);
    if (closed.gaveUp) exitSoon(Math.max(code, closed.code));
    code = Math.max(code, closed.code);
  }
  return code;
}
