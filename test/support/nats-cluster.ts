import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { AppServerProcess } from './app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../../testing/fake-model-server.js';
import { startNatsServer, type NatsServerProcess } from './nats-server.js';
import { WorkerProcess } from './worker-process.js';

export interface NatsClusterOptions {
  /** Scratch directories and namespaces start with this. */
  readonly name: string;
  /** After each test, wait this long once the workers are killed (their commands may still end). */
  readonly settleMs?: number;
}

/**
 * troupe distributed for an end-to-end test file: one nats-server for the file, and for each
 * test a fake model, a scratch directory and a namespace of its own, so the workers of one test
 * never see another's placements. Everything a test started is stopped after it; when it
 * failed, the workers' stderr is printed first (a failure under load is hard to replay).
 */
export class NatsCluster {
  #nats: NatsServerProcess | undefined;
  #model: FakeModelServer | undefined;
  #dir = '';
  #namespace = '';
  readonly #workers: WorkerProcess[] = [];
  readonly #gateways: AppServerProcess[] = [];

  constructor(options: NatsClusterOptions) {
    beforeAll(async () => {
      this.#nats = await startNatsServer();
    });
    afterAll(async () => {
      await this.#nats?.stop();
    });
    beforeEach(async () => {
      // A test that crashed the broker may have failed before it brought it back.
      if (this.#nats && !this.#nats.running) await this.#nats.revive();
      this.#model = await startFakeModelServer();
      this.#dir = await mkdtemp(join(tmpdir(), `troupe-${options.name}-`));
      this.#namespace = `${options.name.replace(/[^a-z0-9]/gi, '')}${randomUUID().slice(0, 8)}`;
    });
    afterEach(async (context) => {
      if (context.task.result?.state === 'fail') {
        for (const w of this.#workers) process.stderr.write(`--- worker ${w.id} stderr ---\n${w.stderr}\n`);
      }
      await Promise.all(this.#gateways.splice(0).map((g) => g.dispose()));
      await Promise.all(this.#workers.splice(0).map((w) => w.kill()));
      await this.#model?.close();
      if (options.settleMs) await new Promise((resolve) => setTimeout(resolve, options.settleMs));
      await rm(this.#dir, { recursive: true, force: true });
    });
  }

  get nats(): NatsServerProcess {
    if (!this.#nats) throw new Error('the nats-server starts in beforeAll');
    return this.#nats;
  }

  get model(): FakeModelServer {
    if (!this.#model) throw new Error('the fake model starts in beforeEach');
    return this.#model;
  }

  get dir(): string {
    return this.#dir;
  }

  get namespace(): string {
    return this.#namespace;
  }

  /** The workers this test started. */
  get workers(): readonly WorkerProcess[] {
    return this.#workers;
  }

  /** A `troupe worker` in this test's namespace; its home is its own unless one is given. */
  async startWorker(
    id: string,
    capacity: number,
    extra: { home?: string; env?: Record<string, string>; args?: readonly string[] } = {},
  ): Promise<WorkerProcess> {
    const worker = await WorkerProcess.start({
      id,
      capacity,
      natsUrl: this.nats.url,
      namespace: this.#namespace,
      modelUrl: this.model.url,
      dir: this.#dir,
      home: extra.home ?? join(this.#dir, `home-${id}`),
      ...(extra.env ? { env: extra.env } : {}),
      ...(extra.args ? { args: extra.args } : {}),
    });
    this.#workers.push(worker);
    return worker;
  }

  /** `troupe app-server --nats` in this test's namespace: the gateway a client drives. */
  async startGateway(env?: Record<string, string>): Promise<AppServerProcess> {
    const gateway = await AppServerProcess.start({
      modelUrl: this.model.url,
      home: this.#dir,
      args: ['--nats', this.nats.url, '--namespace', this.#namespace],
      ...(env ? { env } : {}),
    });
    this.#gateways.push(gateway);
    return gateway;
  }
}
