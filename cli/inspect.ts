import { startInspector, type Inspector, type InspectSource } from './inspector/server.js';
import { NATS_FLAGS, natsSettingsFrom } from '../lib/nats/settings.js';
import { createRuntime } from '../actors/runtime.js';
import { parseArgs, UsageError } from './flags.js';
import { gatewayBusOptions } from '../actors/gateway-options.js';

/**
 * Takes `--inspect` or `--inspect=PORT` out of a command's arguments (before a `--` that ends
 * the options): parseArgs has no flag whose value is optional. `port` is null without the flag,
 * 0 (any free port) for a bare `--inspect`.
 */
export function takeInspectFlag(argv: readonly string[]): { readonly argv: string[]; readonly port: number | null } {
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  let port: number | null = null;
  const rest: string[] = [];
  argv.forEach((arg, index) => {
    if (index >= end || (arg !== '--inspect' && !arg.startsWith('--inspect='))) {
      rest.push(arg);
      return;
    }
    const raw = arg === '--inspect' ? '0' : arg.slice('--inspect='.length);
    const value = Number(raw);
    if (raw === '' || !Number.isInteger(value) || value < 0 || value > 65_535)
      throw new UsageError(`--inspect=PORT needs a port from 0 to 65535, got "${raw}"`);
    port = value;
  });
  return { argv: rest, port };
}

/** Serve the inspector for `source` when `port` is not null, and say where on stderr (stdout may be the protocol). */
export async function openInspector(source: InspectSource, port: number | null, name: string): Promise<Inspector | null> {
  if (port === null) return null;
  const inspector = await startInspector(source, { port });
  process.stderr.write(`${name}: inspector at ${inspector.url}\n`);
  return inspector;
}

/**
 * Follow every session of a NATS namespace in an inspector: a gateway that opens no session of
 * its own, so closing it shuts nothing down. Resolves when the inspector is closed.
 */
export async function inspectNamespace(values: Parameters<typeof natsSettingsFrom>[0], port: number, name: string, env: NodeJS.ProcessEnv): Promise<Inspector> {
  const runtime = createRuntime(await gatewayBusOptions(values, env, name));
  const inspector = await openInspector(runtime, port, name);
  if (inspector === null) throw new Error('unreachable: a port was given');
  return {
    url: inspector.url,
    port: inspector.port,
    async close() {
      await inspector.close();
      await runtime.close();
    },
  };
}

/** `troupe inspect --nats URL [--port N]`: an inspector of every session of a namespace, until SIGINT or SIGTERM. */
export async function runInspect(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { ...NATS_FLAGS, port: { type: 'string' } }, strict: true });
  if (natsSettingsFrom(values, env) === null) throw new UsageError('inspect needs --nats URL (or TROUPE_NATS_URL); to inspect one process, give it --inspect');
  const { port } = takeInspectFlag(values.port === undefined ? ['--inspect'] : [`--inspect=${values.port}`]);
  const inspector = await inspectNamespace(values, port ?? 0, 'troupe inspect', env);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stderr.write(`troupe inspect: ${signal}, stopping\n`);
  await inspector.close();
  return 0;
}
