import type { OtelConfig } from '../../protocol/index.js';
import { log } from '../log.js';
import type { OtlpEncoding, Telemetry } from './sink.js';

export type { Telemetry } from './sink.js';

/** The environment names that switch telemetry on when set (the standard OTLP endpoints). */
const ENDPOINT_VARIABLES = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT'] as const;

/**
 * How telemetry is sent, or null when it is off: off unless the `otel` section names an exporter
 * or an endpoint, or the environment names an OTLP endpoint; `exporter: "none"` and
 * OTEL_SDK_DISABLED=true turn it off whatever else is set.
 */
export function telemetryEncoding(config: OtelConfig | undefined, env: NodeJS.ProcessEnv): OtlpEncoding | null {
  if (config?.exporter === 'none' || env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return null;
  if (config?.exporter === 'otlp-http') return 'http/protobuf';
  if (config?.exporter === 'otlp-http-json') return 'http/json';
  if (config?.endpoint === undefined && !ENDPOINT_VARIABLES.some((name) => env[name]?.trim())) return null;
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL)?.trim();
  if (protocol === 'http/json') return 'http/json';
  if (protocol && protocol !== 'http/protobuf')
    log.warn({ protocol }, 'OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf and http/json are supported; using http/protobuf');
  return 'http/protobuf';
}

/** The process's telemetry, started by the first session whose home config or environment asks for it. */
let started: Promise<Telemetry | null> | undefined;

/**
 * The process's telemetry, or null when it is off. The SDK and its exporters are loaded only
 * when it is on (a dynamic import), so a process without telemetry never pays for them; the
 * first call decides for the whole process.
 */
export function startTelemetry(config: OtelConfig | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Telemetry | null> {
  if (started) return started;
  const encoding = telemetryEncoding(config, env);
  started = encoding
    ? import('./otel.js').then(
        ({ startOtel }) => startOtel(encoding, config ?? {}),
        (error: unknown) => {
          log.error({ err: error }, 'could not load OpenTelemetry: telemetry is off');
          return null;
        },
      )
    : Promise.resolve(null);
  return started;
}

/** Send what the exporters still hold (on a runtime's close and a worker's drain); nothing when telemetry is off. */
export async function flushTelemetry(): Promise<void> {
  const telemetry = await started;
  await telemetry?.flush().catch((error: unknown) => log.warn({ err: error }, 'exporting telemetry failed'));
}
