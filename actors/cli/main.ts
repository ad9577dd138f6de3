import { readFileSync } from 'node:fs';
import { wireJsonSchema } from '../../protocol/index.js';
import { UsageError } from './flags.js';

const USAGE = `troupe: an actor-model runtime for coding agents

Usage:
  troupe app-server [--model M] [--wire-api responses|chat] [--nats URL]
      Serve the JSON-lines protocol (PROTOCOL.md) on stdin/stdout. With --nats, sessions run
      on workers and this process is only a gateway.
  troupe exec [--json] [--model M] [--wire-api W] [--approval-policy P] [--sandbox S] [-C DIR] "prompt"
      Run one turn and print what happens; the final message goes to stdout. Takes --nats too.
  troupe worker --nats URL [--worker-id ID] [--capacity N] [--ready-file PATH]
      Host sessions for gateways on NATS; SIGTERM hands its sessions over to other workers and exits 0.
  troupe mcp-server [--model M] [--wire-api W]
      Serve troupe as an MCP server on stdin/stdout (tools: troupe, troupe-reply).
  troupe demo
      Run a small real task in a temporary workspace (scripted model when OPENAI_API_KEY is unset).
  troupe schema
      Print the JSON Schema of the wire protocol.

Environment: OPENAI_API_KEY, OPENAI_BASE_URL, TROUPE_MODEL, TROUPE_WIRE_API, TROUPE_HOME, TROUPE_LOG,
TROUPE_NATS_URL and the other TROUPE_NATS_* settings, TROUPE_SHUTDOWN_TIMEOUT_MS (README, Deployment).
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The CLI; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      // Each command loads only what it uses (the NATS and MCP clients are not small).
      case 'app-server':
        return await (await import('./app-server.js')).runAppServer(rest);
      case 'exec':
        return await (await import('./exec.js')).runExec(rest);
      case 'worker':
        return await (await import('./worker.js')).runWorker(rest);
      case 'mcp-server':
        return await (await import('./mcp-server.js')).runMcpServer(rest);
      case 'demo':
        return await (await import('./demo.js')).runDemo(rest);
      case 'schema':
        process.stdout.write(`${JSON.stringify(wireJsonSchema(), null, 2)}\n`);
        return 0;
      case '--version':
      case '-V':
        process.stdout.write(`${version()}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`troupe: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof Error && error.name.startsWith('Nats')) return natsFailure(error);
    throw error;
  }
}

/** NATS settings that cannot work exit 2, a first connection that fails exits 1. */
async function natsFailure(error: Error): Promise<number> {
  const { NatsConnectError, NatsSettingsError } = await import('../nats/connect.js');
  if (error instanceof NatsSettingsError) {
    process.stderr.write(`troupe: ${error.message}\n`);
    return 2;
  }
  if (error instanceof NatsConnectError) {
    process.stderr.write(`troupe: ${error.message}: ${(error.cause as Error | undefined)?.message ?? 'unknown error'}\n`);
    return 1;
  }
  throw error;
}
