import { createInterface } from 'node:readline';
import { NATS_FLAGS } from '../nats/connect.js';
import { gatewayBusOptions } from '../nats/gateway-options.js';
import { createRuntime } from '../runtime.js';
import { MODEL_FLAGS, parseArgs, wireApiFlag } from './flags.js';

/**
 * `troupe app-server`: submissions in, one JSON object a line on stdin; events out, one a line
 * on stdout (PROTOCOL.md §2). End of stdin shuts every session down cleanly, then exits 0.
 */
export async function runAppServer(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { ...MODEL_FLAGS, ...NATS_FLAGS }, strict: true });
  // With --nats (or TROUPE_NATS_URL) this process is a gateway: sessions run on workers.
  const nats = await gatewayBusOptions(values, process.env, 'troupe app-server');
  const runtime = createRuntime({ ...nats, model: values.model, wireApi: wireApiFlag(values['wire-api']) });
  runtime.onEvent((event) => {
    process.stdout.write(`${JSON.stringify(event)}\n`);
  });
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of lines) void runtime.gateway.submitLine(line);
  await runtime.close();
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  return 0;
}
