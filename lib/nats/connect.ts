import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type NodeConnectionOptions, type Status } from '@nats-io/transport-node';
import { inBackground, log as processLog, type Logger } from '../log.js';
import { NatsSettingsError, type NatsSettings } from './settings.js';
import { TroupeError } from '../../protocol/index.js';

/** Connecting failed (the first time: later losses are reconnected, by a gateway for a while). */
export class NatsConnectError extends TroupeError {
  override readonly name = 'NatsConnectError';
  constructor(servers: readonly string[], options?: ErrorOptions) {
    super(`could not connect to NATS at ${servers.map(redactUrl).join(', ')}`, options);
  }
}

/** A gateway was without NATS for longer than it waits (TROUPE_NATS_GIVE_UP_MS), and closed its connection. */
export class NatsLostError extends TroupeError {
  override readonly name = 'NatsLostError';
  constructor(servers: readonly string[], afterMs: number) {
    super(`lost the connection to NATS at ${servers.map(redactUrl).join(', ')} and gave up after ${afterMs / 1000} s without it`);
  }
}

/** Hides the password of a `nats://user:pass@host` URL, so it can be logged. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

const RECONNECT_MIN_MS = 250;
/** At most 2.4 s with the jitter: sessions resume within 5 s of the broker being back. */
const RECONNECT_MAX_MS = 2_000;
const RECONNECT_JITTER = 0.2;

/**
 * The wait between reconnect attempts: it grows with the time spent disconnected (half of
 * it, between 250 ms and 2 s), so a blip is healed at once and a long outage is not hammered;
 * the jitter spreads the reconnects of many workers after the server comes back.
 * nats.js asks for the wait on every pass of its dial loop, so it must depend on time, not on
 * how often it was asked.
 */
export class ReconnectBackoff {
  #since: number | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  delay(): number {
    const now = this.now();
    this.#since ??= now;
    const base = Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_MIN_MS, (now - this.#since) / 2));
    return Math.round(base * (1 + Math.random() * RECONNECT_JITTER));
  }

  /** Connected again: the next outage starts from the shortest wait. */
  reset(): void {
    this.#since = null;
  }
}

export interface ConnectOptions {
  /** Shown by the server (`connz`): which kind of troupe process this is. */
  readonly name: string;
  /** Keep trying until a first connection succeeds (workers); otherwise fail fast. */
  readonly waitOnFirstConnect?: boolean;
  /**
   * After this long without NATS, stop reconnecting and close the connection (gateways: their
   * client gets an error instead of a wait that never ends). Without it, reconnect forever
   * (workers).
   */
  readonly giveUpAfterMs?: number;
  readonly logger?: Logger;
}

/** What the client library is given, with the key material read from disk. */
export async function natsConnectionOptions(settings: NatsSettings, options: ConnectOptions): Promise<NodeConnectionOptions> {
  const backoff = new ReconnectBackoff();
  const result: NodeConnectionOptions = {
    servers: [...settings.servers],
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectDelayHandler: () => backoff.delay(),
    waitOnFirstConnect: options.waitOnFirstConnect ?? false,
    // Fail a first connection fast enough for an interactive `troupe exec`.
    timeout: 5_000,
    pingInterval: 20_000,
    maxPingOut: 3,
    // Without this the client makes an Error (a stack trace) for every request and every
    // timer it starts, in case it fails: a real cost at thousands of requests a second, for a
    // stack that names only the client's own frames once the request has gone through the bus.
    noAsyncTraces: true,
  };
  if (settings.token !== undefined) result.token = settings.token;
  if (settings.user !== undefined) {
    result.user = settings.user;
    result.pass = settings.password;
  }
  if (settings.nkeySeedFile !== undefined) {
    const seed = (await readKey(settings.nkeySeedFile, 'nkey seed')).trim();
    result.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (settings.credsFile !== undefined) {
    result.authenticator = credsAuthenticator(new TextEncoder().encode(await readKey(settings.credsFile, 'creds')));
  }
  if (settings.tls !== undefined) {
    const { caFile, certFile, keyFile } = settings.tls;
    result.tls = {
      ...(caFile !== undefined ? { caFile } : {}),
      ...(certFile !== undefined ? { certFile } : {}),
      ...(keyFile !== undefined ? { keyFile } : {}),
    };
  }
  backoffs.set(result, backoff);
  return result;
}

const backoffs = new WeakMap<NodeConnectionOptions, ReconnectBackoff>();

async function readKey(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new NatsSettingsError(`cannot read the NATS ${what} file ${path}: ${(error as Error).message}`);
  }
}

/**
 * Connects, and logs every change of the connection's state from then on: a lost connection
 * is retried forever, so these lines are how an operator sees an outage.
 */
export async function connectNats(settings: NatsSettings, options: ConnectOptions): Promise<NatsConnection> {
  const logger = (options.logger ?? processLog).child({ component: 'nats' });
  const connectionOptions = await natsConnectionOptions(settings, options);
  let connection: NatsConnection;
  try {
    connection = await connect(connectionOptions);
  } catch (error) {
    throw new NatsConnectError(settings.servers, { cause: error });
  }
  logger.info({ server: connection.getServer(), name: options.name }, 'connected to NATS');
  const backoff = backoffs.get(connectionOptions);
  let giveUp: GiveUp | undefined;
  if (options.giveUpAfterMs !== undefined) {
    let resolve: (error: NatsLostError) => void = () => {};
    givenUp.set(connection, new Promise<NatsLostError>((r) => (resolve = r)));
    giveUp = { afterMs: options.giveUpAfterMs, servers: settings.servers, resolve };
  }
  inBackground(watchStatus(connection, logger, backoff, giveUp), 'watching the NATS connection', logger);
  inBackground(
    connection.closed().then((error) => {
      if (error) logger.error({ err: error }, 'the NATS connection closed with an error');
    }),
    'watching the NATS connection close',
    logger,
  );
  return connection;
}

interface GiveUp {
  readonly afterMs: number;
  readonly servers: readonly string[];
  readonly resolve: (error: NatsLostError) => void;
}

const givenUp = new WeakMap<NatsConnection, Promise<NatsLostError>>();

/**
 * Settles when a connection opened with `giveUpAfterMs` gave up on NATS (and closed); never,
 * for one that reconnects forever.
 */
export function natsGivenUp(connection: NatsConnection): Promise<NatsLostError> {
  return givenUp.get(connection) ?? new Promise<never>(() => {});
}

async function watchStatus(connection: NatsConnection, logger: Logger, backoff: ReconnectBackoff | undefined, giveUp: GiveUp | undefined): Promise<void> {
  let timer: NodeJS.Timeout | null = null;
  for await (const status of connection.status()) {
    logStatus(status, logger, backoff);
    if (giveUp === undefined) continue;
    if (status.type === 'disconnect' && timer === null) {
      timer = setTimeout(() => {
        // The command says so on its own: no log line here.
        giveUp.resolve(new NatsLostError(giveUp.servers, giveUp.afterMs));
        inBackground(connection.close(), 'closing the NATS connection it gave up on', logger);
      }, giveUp.afterMs);
      timer.unref();
    } else if (status.type === 'reconnect' && timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
  }
}

function logStatus(status: Status, logger: Logger, backoff: ReconnectBackoff | undefined): void {
  switch (status.type) {
    case 'disconnect':
      logger.warn({ server: status.server }, 'disconnected from NATS; reconnecting');
      return;
    case 'reconnect':
      backoff?.reset();
      logger.info({ server: status.server }, 'reconnected to NATS');
      return;
    case 'reconnecting':
      logger.debug('trying to reconnect to NATS');
      return;
    case 'error':
      logger.error({ err: status.error }, 'NATS reported an error');
      return;
    case 'staleConnection':
      logger.warn('the NATS connection went stale');
      return;
    case 'ldm':
      logger.warn({ server: status.server }, 'the NATS server is entering lame duck mode');
      return;
    case 'slowConsumer':
      logger.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'a NATS subscription is falling behind');
      return;
    default:
      return;
  }
}

/** `hostname-pid`: unique enough among live workers, and says where to look. */
export function defaultWorkerId(): string {
  return `${hostname().replace(/[.*>\s]/g, '-')}-${process.pid}`;
}
