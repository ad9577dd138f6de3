import type { Bus } from './bus/bus.js';
import type { GatewayDurability } from './durable/gateway-durability.js';
import type { Logger } from './log.js';
import { natsSettingsFrom, type NatsFlagValues } from './nats/settings.js';

/** What a gateway runtime needs to run on NATS (see RuntimeOptions). */
export interface GatewayBusOptions {
  readonly bus?: Bus;
  readonly namespace?: string;
  /** Opens the JetStream side of the gateway: ops through each session's queue, events from the log. */
  readonly gatewayDurability?: () => Promise<GatewayDurability>;
}

/**
 * For the commands that can be gateways: when the flags or the environment name a NATS server,
 * connect and return the options that make the runtime a gateway on it; otherwise nothing, and
 * the runtime hosts its sessions in-process. The NATS client is loaded only in the first case.
 */
export async function gatewayBusOptions(flags: NatsFlagValues, env: NodeJS.ProcessEnv, name: string, logger?: Logger): Promise<GatewayBusOptions> {
  const settings = natsSettingsFrom(flags, env);
  if (settings === null) return {};
  const { connectNats } = await import('./nats/connect.js');
  const [connection, { NatsBus }, { GatewayDurability }] = await Promise.all([
    connectNats(settings, { name, ...(logger ? { logger } : {}) }),
    import('./bus/nats.js'),
    import('./durable/gateway-durability.js'),
  ]);
  return {
    bus: new NatsBus(connection, logger ? { logger } : {}),
    namespace: settings.namespace,
    gatewayDurability: () => GatewayDurability.open(connection, settings.namespace),
  };
}
