import { TroupeError } from '../../protocol/index.js';
/**
 * The NATS flags the commands share, and the settings they and the environment name. Apart
 * from the client (connect.ts), so that a command loads no NATS code unless they name a server.
 */
/** The `parseArgs` options every NATS-capable command accepts. */
export const NATS_FLAGS = {
  nats: { type: 'string' },
  'nats-creds': { type: 'string' },
  'nats-nkey': { type: 'string' },
  'nats-tls-ca': { type: 'string' },
  'nats-tls-cert': { type: 'string' },
  'nats-tls-key': { type: 'string' },
  namespace: { type: 'string' },
} as const;

export interface NatsFlagValues {
  readonly nats?: string | undefined;
  readonly 'nats-creds'?: string | undefined;
  readonly 'nats-nkey'?: string | undefined;
  readonly 'nats-tls-ca'?: string | undefined;
  readonly 'nats-tls-cert'?: string | undefined;
  readonly 'nats-tls-key'?: string | undefined;
  readonly namespace?: string | undefined;
}

/**
 * How a troupe process reaches NATS: which servers, how it authenticates, whether it uses TLS.
 * Every value can come from a flag or from the environment (flags win), so the same settings
 * work on a command line, in docker-compose and in a Kubernetes pod spec.
 */
export interface NatsSettings {
  /** One or more server URLs (`nats://host:4222`, `tls://…`); the client fails over between them. */
  readonly servers: readonly string[];
  readonly token?: string | undefined;
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  /** A file holding an nkey seed (`SU…`). */
  readonly nkeySeedFile?: string | undefined;
  /** A `.creds` file (user JWT and nkey seed), as `nsc` writes it. */
  readonly credsFile?: string | undefined;
  readonly tls?: NatsTlsSettings | undefined;
  /** The subject namespace: processes only see each other inside the same one. */
  readonly namespace: string;
}

export interface NatsTlsSettings {
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
}

/** Bad or contradictory NATS settings; the message names the flag or variable. */
export class NatsSettingsError extends TroupeError {
  override readonly name = 'NatsSettingsError';
  override readonly code = 'bad_request';
}

/**
 * The settings named by flags and the environment, or null when neither names a server (the
 * process then runs in-process). Secrets (token, password) are read from the environment only,
 * so they never show up in a process list.
 */
export function natsSettingsFrom(flags: NatsFlagValues, env: NodeJS.ProcessEnv): NatsSettings | null {
  const pick = (flag: string | undefined, name: string): string | undefined => {
    const value = flag ?? env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const url = pick(flags.nats, 'TROUPE_NATS_URL');
  if (url === undefined) return null;
  const servers = url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (servers.length === 0) throw new NatsSettingsError('--nats / TROUPE_NATS_URL names no server');
  const settings: NatsSettings = {
    servers,
    token: pick(undefined, 'TROUPE_NATS_TOKEN'),
    user: pick(undefined, 'TROUPE_NATS_USER'),
    password: pick(undefined, 'TROUPE_NATS_PASSWORD'),
    nkeySeedFile: pick(flags['nats-nkey'], 'TROUPE_NATS_NKEY'),
    credsFile: pick(flags['nats-creds'], 'TROUPE_NATS_CREDS'),
    tls: tlsFrom(
      pick(flags['nats-tls-ca'], 'TROUPE_NATS_TLS_CA'),
      pick(flags['nats-tls-cert'], 'TROUPE_NATS_TLS_CERT'),
      pick(flags['nats-tls-key'], 'TROUPE_NATS_TLS_KEY'),
    ),
    namespace: pick(flags.namespace, 'TROUPE_NAMESPACE') ?? 'default',
  };
  const methods = [settings.token, settings.user, settings.nkeySeedFile, settings.credsFile].filter((m) => m !== undefined);
  if (methods.length > 1) {
    throw new NatsSettingsError('choose one way to authenticate to NATS: a token, a user and password, an nkey seed or a creds file');
  }
  if ((settings.user === undefined) !== (settings.password === undefined)) {
    throw new NatsSettingsError('TROUPE_NATS_USER and TROUPE_NATS_PASSWORD go together');
  }
  return settings;
}

function tlsFrom(caFile?: string, certFile?: string, keyFile?: string): NatsTlsSettings | undefined {
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new NatsSettingsError('a TLS client certificate needs its key: set both --nats-tls-cert and --nats-tls-key');
  }
  if (caFile === undefined && certFile === undefined) return undefined;
  return { caFile, certFile, keyFile };
}
