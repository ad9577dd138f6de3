import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusClosedError, NatsBus, type Bus } from '../lib/bus/index.js';
import type { Logger } from '../lib/log.js';
import { ReconnectBackoff, redactUrl } from '../lib/nats/connect.js';
import { natsSettingsFrom, NatsSettingsError } from '../lib/nats/settings.js';
import type { BusMessage } from '../protocol/index.js';
import { describeBusContract } from './support/bus-contract.js';
import { waitFor } from './support/wait.js';
import { startNatsServer, type NatsServerProcess } from './support/nats-server.js';

function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describeBusContract('nats', async () => {
  const server = await startNatsServer({ jetstream: false });
  const { logger } = capturingLogger();
  return {
    connect: async () => new NatsBus(await connect({ servers: server.url }), { logger }),
    publishRaw: async (bus: Bus, subject: string, payload: string) => {
      if (!(bus instanceof NatsBus)) throw new TypeError('not a NATS connection');
      await bus.publishRaw(subject, payload);
    },
    teardown: () => server.stop(),
  };
});

const placed = (sessionId: string): BusMessage => ({ kind: 'placed', session_id: sessionId, worker_id: 'w', rollout_path: '/r' });

describe('NatsBus', () => {
  let server: NatsServerProcess;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('logs what it drops and what fails in handlers', async () => {
    const { logger, lines } = capturingLogger();
    const bus = new NatsBus(await connect({ servers: server.url }), { logger });
    bus.subscribe('x', (message) => {
      if (message.kind === 'placed' && message.session_id === 'boom') throw new Error('kaput');
    });
    await bus.flush();
    await bus.publishRaw('x', '{"kind":"placed","session_id":7}');
    await bus.publishRaw('x', '{');
    await bus.publish('x', placed('boom'));
    await waitFor(() => lines.length >= 3, 'three log lines');
    expect(lines.map((l) => l.msg)).toEqual(['dropped an invalid bus message', 'dropped a bus message that is not JSON', 'bus handler failed']);
    expect(String(lines[0]?.problems)).toContain('session_id');
    expect(lines[0]?.transport).toBe('nats');
    await bus.close();
  });

  it('makes a subscription live for other connections once flush resolves', async () => {
    const [a, b] = [new NatsBus(await connect({ servers: server.url })), new NatsBus(await connect({ servers: server.url }))];
    const got: BusMessage[] = [];
    a.subscribe('live.x', (m) => void got.push(m));
    await a.flush();
    await b.publish('live.x', placed('first'));
    await waitFor(() => got.length === 1, 'the first message');
    await Promise.all([a.close(), b.close()]);
    await expect(a.flush()).rejects.toBeInstanceOf(BusClosedError);
  });

  it('rejects a bad request timeout and a bad queue name', async () => {
    const bus = new NatsBus(await connect({ servers: server.url }));
    await expect(bus.request('x', placed('s'), { timeoutMs: 0 })).rejects.toBeInstanceOf(RangeError);
    expect(() => bus.subscribe('x', () => {}, { queue: 'a b' })).toThrow(/queue group/);
    await bus.close();
  });
});

describe('NATS settings', () => {
  it('reads servers, credentials and TLS from flags and the environment', () => {
    expect(natsSettingsFrom({}, {})).toBeNull();
    const settings = natsSettingsFrom(
      { nats: 'nats://a:4222, nats://b:4222', 'nats-tls-ca': '/ca.pem' },
      { TROUPE_NATS_URL: 'nats://ignored', TROUPE_NATS_TOKEN: 's3cret', TROUPE_NAMESPACE: 'team' },
    );
    expect(settings).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222'],
      token: 's3cret',
      user: undefined,
      password: undefined,
      nkeySeedFile: undefined,
      credsFile: undefined,
      tls: { caFile: '/ca.pem', certFile: undefined, keyFile: undefined },
      namespace: 'team',
    });
    expect(natsSettingsFrom({}, { TROUPE_NATS_URL: 'nats://x', TROUPE_NATS_CREDS: '/u.creds' })?.credsFile).toBe('/u.creds');
  });

  it('refuses contradictory settings, naming what to fix', () => {
    expect(() => natsSettingsFrom({ nats: 'nats://x' }, { TROUPE_NATS_TOKEN: 't', TROUPE_NATS_CREDS: '/c' })).toThrow(NatsSettingsError);
    expect(() => natsSettingsFrom({ nats: 'nats://x' }, { TROUPE_NATS_USER: 'u' })).toThrow(/TROUPE_NATS_PASSWORD/);
    expect(() => natsSettingsFrom({ nats: 'nats://x', 'nats-tls-cert': '/c.pem' }, {})).toThrow(/--nats-tls-key/);
    expect(() => natsSettingsFrom({ nats: ' , ' }, {})).toThrow(/names no server/);
  });

  it('hides passwords in URLs it logs', () => {
    expect(redactUrl('nats://bob:hunter2@host:4222')).toBe('nats://bob:***@host:4222');
    expect(redactUrl('nats://host:4222')).toBe('nats://host:4222');
  });

  it('waits longer between reconnects the longer the outage lasts, up to 2 s', () => {
    let now = 0;
    const backoff = new ReconnectBackoff(() => now);
    const first = backoff.delay();
    expect(first).toBeGreaterThanOrEqual(250);
    expect(first).toBeLessThanOrEqual(300);
    now = 2_000;
    expect(backoff.delay()).toBeGreaterThanOrEqual(1_000);
    now = 60_000;
    const capped = backoff.delay();
    expect(capped).toBeGreaterThanOrEqual(2_000);
    expect(capped).toBeLessThanOrEqual(2_400);
    backoff.reset();
    expect(backoff.delay()).toBeLessThanOrEqual(300);
  });
});
