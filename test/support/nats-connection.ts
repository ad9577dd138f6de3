/**
 * A nats-server with JetStream and one plain client connection to it, for the tests of the file
 * or describe block that calls `natsServerWithConnection`: started before the first of them,
 * closed and stopped after the last.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { startNatsServer, type NatsServerProcess } from './nats-server.js';

export interface NatsServerWithConnection {
  /** The server's client URL. */
  readonly url: string;
  readonly connection: NatsConnection;
}

export function natsServerWithConnection(): NatsServerWithConnection {
  let server: NatsServerProcess | undefined;
  let connection: NatsConnection | undefined;
  beforeAll(async () => {
    server = await startNatsServer();
    connection = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await connection?.close();
    await server?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the nats-server is started in beforeAll: use it inside a test or a hook');
    return value;
  };
  return {
    get url() {
      return started(server).url;
    },
    get connection() {
      return started(connection);
    },
  };
}
