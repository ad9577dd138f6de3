import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { OutputPressure, STDOUT_HIGH_WATER_BYTES } from '../lib/flow/output-pressure.js';
import { inBackground } from '../lib/log.js';
import { NATS_FLAGS } from '../lib/nats/settings.js';
import { commandGateway } from '../actors/gateway-options.js';
import { createRuntime, type RuntimeOptions } from '../actors/runtime.js';
import { checkedProfile, runsOnNats, MODEL_FLAGS, parseArgs, PROFILE_FLAG, UsageError, wireApiFlag } from './flags.js';
import { loadToolSets, toolSetSpecs, TOOLS_FLAG } from './tool-flags.js';
import { BoundedLines } from './bounded-lines.js';
import { openInspector, takeInspectFlag } from './inspect.js';
import { closeRuntime, exitSoon, ShutdownBound, shutdownTimeoutMs } from './shutdown.js';

export interface AppServerOptions {
  /** Where submissions come from (default: process.stdin). */
  readonly input?: Readable;
  /** Where events go (default: process.stdout). */
  readonly output?: Writable;
  /** Runtime options under those of the flags (tests: a model client, a home). */
  readonly runtime?: RuntimeOptions;
}

/** The longest line (one op) read from stdin: longer ones are refused, and held at most this far. */
const MAX_OP_LINE_BYTES = 16 * 1024 * 1024;
/** Ops read but not yet applied at which stdin stops being read (it is read again at half). */
const MAX_UNAPPLIED_OPS = 256;

/**
 * `troupe app-server`: submissions in, one JSON object a line on stdin; events out, one a line
 * on stdout (PROTOCOL.md §2). End of stdin shuts every session down cleanly, then exits 0. If
 * that takes longer than TROUPE_SHUTDOWN_TIMEOUT_MS (default 10 s; on NATS, a broker that is
 * away), it gives up, names on stderr what was not delivered, and exits 1 if anything was not.
 *
 * A client that stops reading stdout gets backpressure rather than our memory: once more than
 * STDOUT_HIGH_WATER_BYTES wait to be flushed, stdin is no longer read and the runtime's flow
 * gate is held (model streams wait, command output deltas are skipped) until stdout drains.
 */
export async function runAppServer(argv: readonly string[], options: AppServerOptions = {}): Promise<number> {
  const { input = process.stdin, output = process.stdout } = options;
  const inspect = takeInspectFlag(argv);
  const { values } = parseArgs({ args: inspect.argv, options: { ...MODEL_FLAGS, ...PROFILE_FLAG, ...NATS_FLAGS, ...TOOLS_FLAG }, strict: true });
  const toolSets = toolSetSpecs(values);
  // End of stdin exits within this bound, naming on stderr what could not be delivered (shutdown.ts).
  const bound = new ShutdownBound(shutdownTimeoutMs(process.env));
  // With --nats (or TROUPE_NATS_URL) this process is a gateway: sessions run on workers.
  // A new_session's own fields win over these defaults, as flags win over the config file.
  const profile = checkedProfile(values, process.env, options.runtime?.home, runsOnNats(values));
  const wireApi = wireApiFlag(values['wire-api']);
  const { options: nats, lost } = await commandGateway(values, process.env, 'troupe app-server');
  const runtime = createRuntime({ ...options.runtime, ...nats, model: values.model, wireApi, profile });
  if (toolSets.length > 0) {
    if (!runtime.host) {
      await runtime.close();
      throw new UsageError('--tools: with --nats the sessions run on the workers; load tools there (troupe worker --tools FILE)');
    }
    await loadToolSets(runtime.host, toolSets).catch(async (error: unknown) => {
      await runtime.close();
      throw error;
    });
  }
  // A line over MAX_OP_LINE_BYTES is refused alone, and never held whole (BoundedLines).
  const bounded = new BoundedLines(MAX_OP_LINE_BYTES, ({ bytes, id }) =>
    runtime.gateway.refuseLine(
      typeof id === 'string' ? id : null,
      `the line is ${bytes} bytes, more than the ${MAX_OP_LINE_BYTES} an op may be; it was not read`,
    ),
  );
  const lines = createInterface({ input: input.pipe(bounded), crlfDelay: Infinity, terminal: false });
  // Reading stops while stdout is full, and while many submissions wait to be applied: a
  // client writing ops faster than they are applied is slowed down, none of its ops refused.
  // Pausing readline pauses the line stream, which hands lines on one at a time.
  const holds = new Set<'stdout' | 'submissions'>();
  const hold = (reason: 'stdout' | 'submissions', on: boolean): void => {
    if (on) holds.add(reason);
    else holds.delete(reason);
    if (holds.size > 0) lines.pause();
    else lines.resume();
  };
  const pressure = new OutputPressure(output, runtime.flow, {
    name: 'stdout',
    highWaterBytes: STDOUT_HIGH_WATER_BYTES,
    onChange: (full) => hold('stdout', full),
  });
  runtime.onEvent((event) => {
    output.write(`${JSON.stringify(event)}\n`);
    pressure.check();
  });
  // --inspect: a live page of the sessions on loopback, its address on stderr (stdout is the protocol).
  const inspector = await openInspector(runtime, inspect.port, 'troupe app-server');
  let unapplied = 0;
  lines.on('line', (line) => {
    if (++unapplied === MAX_UNAPPLIED_OPS) hold('submissions', true);
    const applied = runtime.gateway.submitLine(line).finally(() => {
      if (--unapplied === MAX_UNAPPLIED_OPS / 2) hold('submissions', false);
    });
    inBackground(applied, 'a submission');
  });
  // End of stdin, or a gateway that was without NATS for too long and gave up (exit 1).
  const gaveUp = await Promise.race([once(lines, 'close').then(() => null), lost]);
  if (gaveUp) {
    process.stderr.write(`troupe app-server: ${gaveUp.message}\n`);
    lines.close();
    // Closing readline pauses only the line stream: stdin itself, left flowing into it, would
    // keep the process up.
    input.unpipe(bounded);
    input.pause();
  }
  const closed = await closeRuntime(runtime, bound);
  await inspector?.close();
  // Something may still hold the process (a NATS client reconnecting): when it is ours, end it.
  if (closed.gaveUp && options.input === undefined) exitSoon(closed.code);
  await new Promise<void>((resolve) => output.write('', () => resolve()));
  pressure.dispose();
  return gaveUp ? Math.max(1, closed.code) : closed.code;
}
