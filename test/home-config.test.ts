import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HomeConfigError, homeConfigPath, loadHomeConfig } from '../actors/host/home-config.js';
import { telemetryEncoding } from '../lib/telemetry/index.js';

describe('TROUPE_HOME/config.json', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  const server = (command: string) => ({ mcp_servers: { tool: { command } } });

  it('is read again whenever the file changes, and is empty while there is none', async () => {
    const path = homeConfigPath(home);
    expect(loadHomeConfig(home)).toEqual({});
    await writeFile(path, JSON.stringify(server('one')));
    expect(loadHomeConfig(home)).toEqual(server('one'));
    expect(loadHomeConfig(home)).toEqual(server('one'));
    // Same size, new content: a new session must see it.
    await writeFile(path, JSON.stringify(server('two')));
    expect(loadHomeConfig(home)).toEqual(server('two'));
    await unlink(path);
    expect(loadHomeConfig(home)).toEqual({});
    await writeFile(path, JSON.stringify({ mcp_servers: { tool: { args: ['x'] } } }));
    expect(() => loadHomeConfig(home)).toThrow(HomeConfigError);
    expect(() => loadHomeConfig(home)).toThrow(/mcp_servers\.tool/);
  });

  it('takes an otel section, and refuses one with an unknown key or a bad value, naming the file and the key', async () => {
    const path = homeConfigPath(home);
    const otel = { exporter: 'otlp-http-json', endpoint: 'http://127.0.0.1:4318', headers: { 'x-api-key': 'k' }, environment: 'dev', log_user_prompt: true };
    await writeFile(path, JSON.stringify({ otel }));
    expect(loadHomeConfig(home)).toEqual({ otel });
    await writeFile(path, JSON.stringify({ otel: { exporter: 'otlp-http', endpont: 'http://127.0.0.1:4318' } }));
    const error = catching(() => loadHomeConfig(home));
    expect(error).toBeInstanceOf(HomeConfigError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toMatch(/otel/);
    expect((error as Error).message).toMatch(/endpont/);
    await writeFile(path, JSON.stringify({ otel: { exporter: 'zipkin' } }));
    expect(() => loadHomeConfig(home)).toThrow(/otel\.exporter/);
    await writeFile(path, JSON.stringify({ otel: { endpoint: 'file:///etc/passwd' } }));
    expect(() => loadHomeConfig(home)).toThrow(/otel\.endpoint/);
  });
});

function catching(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('whether telemetry is on', () => {
  it('is off unless the otel section or the OTLP environment names an exporter', () => {
    expect(telemetryEncoding(undefined, {})).toBeNull();
    expect(telemetryEncoding({ environment: 'dev', log_user_prompt: true }, {})).toBeNull();
    expect(telemetryEncoding(undefined, { OTEL_SERVICE_NAME: 'x' })).toBeNull();
    expect(telemetryEncoding(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe('http/protobuf');
    expect(
      telemetryEncoding(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }),
    ).toBe('http/json');
    expect(telemetryEncoding({ endpoint: 'http://127.0.0.1:4318' }, {})).toBe('http/protobuf');
    expect(telemetryEncoding({ exporter: 'otlp-http-json' }, {})).toBe('http/json');
    // Off wins over everything else.
    expect(telemetryEncoding({ exporter: 'none' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBeNull();
    expect(telemetryEncoding({ exporter: 'otlp-http' }, { OTEL_SDK_DISABLED: 'true' })).toBeNull();
  });
});
