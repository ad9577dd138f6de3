import type { Bus } from '../lib/bus/bus.js';
import type { GatewayDurability } from '../lib/durable/gateway-durability.js';
import type { Logger } from '../lib/log.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsSettingsError, natsSettingsFrom, type NatsFlagValues } from '../lib/nats/settings.js';

/** What a gateway runtime needs to run on NATS (see RuntimeOptions). */
export interface GatewayBusOptions {
  readonly bus?: Bus;
  readonly namespace?: string;
  /** Opens the JetStream side of the gateway: ops through each session's queue, events from the log. */
  readonly gatewayDurability?: () => Promise<GatewayDurability>;
}

/** How long a command's gateway waits for a lost NATS before it gives up (TROUPE_NATS_GIVE_UP_MS). */
export const DEFAULT_NATS_GIVE_UP_MS = 60_000;

/** TROUPE_NATS_GIVE_UP_MS, or the default; a value that is not a positive number is refused. */
export function natsGiveUpMs(env: NodeJS.ProcessEnv): number {
  const raw = env.TROUPE_NATS_GIVE_UP_MS;
  if (raw === undefined || raw === '') return DEFAULT_NATS_GIVE_UP_MS;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new NatsSettingsError(`TROUPE_NATS_GIVE_UP_MS must be a positive number of milliseconds, not "${raw}"`);
  return value;
}

/**
 * A command's gateway: the runtime options, and a promise that settles with the error to show
 * when the gateway was without NATS for TROUPE_NATS_GIVE_UP_MS and gave up (never without NATS).
 */
export async function commandGateway(
  flags: NatsFlagValues,
  env: NodeJS.ProcessEnv,
  name: string,
): Promise<{ options: GatewayBusOptions; lost: Promise<Error> }> {
  const never = new Promise<never>(() => {});
  if (natsSettingsFrom(flags, env) === null) return { options: {}, lost: never };
  const giveUpAfterMs = natsGiveUpMs(env);
  let connection: NatsConnection | undefined;
  const options = await gatewayBusOptions(flags, env, name, undefined, { giveUpAfterMs, opened: (c) => (connection = c) });
  const { natsGivenUp } = await import('../lib/nats/connect.js');
  return { options, lost: connection ? natsGivenUp(connection) : never };
}

/**
 * For the commands that can be gateways: when the flags or the environment name a NATS server,
 * connect and return the options that make the runtime a gateway on it; otherwise nothing, and
 * the runtime hosts its sessions in-process. The NATS client is loaded only in the first case.
 */
export async function gatewayBusOptions(
  flags: NatsFlagValues,
  env: NodeJS.ProcessEnv,
  name: string,
  logger?: Logger,
  giveUp?: { readonly giveUpAfterMs: number; readonly opened: (connection: NatsConnection) => void },
): Promise<GatewayBusOptions> {
  const settings = natsSettingsFrom(flags, env);
  if (settings === null) return {};
  const { connectNats } = await import('../lib/nats/connect.js');
  const [connection, { NatsBus }, { GatewayDurability }] = await Promise.all([
    connectNats(settings, { name, ...(logger ? { logger } : {}), ...(giveUp ? { giveUpAfterMs: giveUp.giveUpAfterMs } : {}) }),
    import('../lib/bus/nats.js'),
    import('../lib/durable/gateway-durability.js'),
  ]);
  giveUp?.opened(connection);
  return {
    bus: new NatsBus(connection, logger ? { logger } : {}),
    namespace: settings.namespace,
    gatewayDurability: () => GatewayDurability.open(connection, settings.namespace),
  };
}
