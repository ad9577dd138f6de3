import type { Bus } from '../bus/bus.js';
import { NatsBus } from '../bus/nats.js';
import type { Logger } from '../log.js';
import { connectNats, natsSettingsFrom, type NatsFlagValues } from './connect.js';

/** What a gateway runtime needs to run on NATS: its bus and namespace (see RuntimeOptions). */
export interface GatewayBusOptions {
  readonly bus?: Bus;
  readonly namespace?: string;
}

/**
 * For `app-server` and `exec`: when the flags or the environment name a NATS server, connect
 * and return the options that make the runtime a gateway on it; otherwise nothing, and the
 * runtime hosts its sessions in-process.
 */
export async function gatewayBusOptions(
  flags: NatsFlagValues,
  env: NodeJS.ProcessEnv,
  name: string,
  logger?: Logger,
): Promise<GatewayBusOptions> {
  const settings = natsSettingsFrom(flags, env);
  if (settings === null) return {};
  const connection = await connectNats(settings, { name, ...(logger ? { logger } : {}) });
  return { bus: new NatsBus(connection, logger ? { logger } : {}), namespace: settings.namespace };
}
