import { readFileSync } from 'node:fs';
import { TroupeError, wireJsonSchema } from '../protocol/index.js';
import { UsageError } from './flags.js';
import { COMMAND_USAGE, isCommand, USAGE } from './usage.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The CLI; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (isCommand(command) && wantsHelp(rest)) {
    process.stdout.write(COMMAND_USAGE[command]);
    return 0;
  }
  try {
    switch (command) {
      // Each command loads only what it uses (the NATS and MCP clients are not small).
      case 'app-server':
        return await (await import('./app-server.js')).runAppServer(rest);
      case 'exec':
        return await (await import('./exec.js')).runExec(rest);
      case 'resume':
        return await (await import('./exec.js')).runResume(rest);
      case 'review':
        return await (await import('./exec.js')).runReview(rest);
      case 'sessions':
        return await (await import('./sessions.js')).runSessions(rest);
      case 'jobs':
        return await (await import('./jobs.js')).runJobs(rest);
      case 'worker':
        return await (await import('./worker.js')).runWorker(rest);
      case 'inspect':
        return await (await import('./inspect.js')).runInspect(rest);
      case 'mcp-server':
        return await (await import('./mcp-server.js')).runMcpServer(rest);
      case 'demo':
        return await (await import('./demo.js')).runDemo(rest);
      case 'config':
        return await (await import('./config.js')).runConfig(rest);
      case 'schema':
        process.stdout.write(`${JSON.stringify(wireJsonSchema(), null, 2)}\n`);
        return 0;
      case '--version':
      case '-V':
        process.stdout.write(`${version()}\n`);
        return 0;
      case 'help':
        process.stdout.write(isCommand(rest[0]) ? COMMAND_USAGE[rest[0]] : USAGE);
        return 0;
      case undefined:
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      // One line: what was wrong, and where the usage is.
      const where = isCommand(command) ? `troupe ${command}` : 'troupe';
      process.stderr.write(`${where}: ${(error as Error).message} (see ${where} --help)\n`);
      return 2;
    }
    if (error instanceof TroupeError && error.code === 'bad_request') {
      // A setting the user gave was wrong (the config file, an environment variable), and the
      // message names it: the usage would not help.
      process.stderr.write(`${isCommand(command) ? `troupe ${command}` : 'troupe'}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof Error && error.name.startsWith('Nats')) return natsFailure(error);
    throw error;
  }
}

/** `--help` or `-h` among a command's arguments (before a `--` that ends the options). */
function wantsHelp(args: readonly string[]): boolean {
  const options = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  return options.includes('--help') || options.includes('-h');
}

/** node:util's parseArgs reports a bad flag as a TypeError with an ERR_PARSE_ARGS_* code. */
function isParseArgsError(error: unknown): boolean {
  return error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS');
}

/** NATS settings that cannot work exit 2, a first connection that fails exits 1. */
async function natsFailure(error: Error): Promise<number> {
  const [{ NatsConnectError }, { NatsSettingsError }] = await Promise.all([import('../lib/nats/connect.js'), import('../lib/nats/settings.js')]);
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
