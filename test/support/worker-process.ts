import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { troupeBin } from './app-server-process.js';

export interface WorkerProcessOptions {
  readonly id: string;
  readonly natsUrl: string;
  readonly namespace: string;
  readonly capacity: number;
  readonly modelUrl: string;
  /** Where the ready file goes. */
  readonly dir: string;
  readonly home: string;
  readonly env?: Readonly<Record<string, string>>;
  /** More `troupe worker` flags. */
  readonly args?: readonly string[];
  /**
   * Load XState's development build, as the tests do for its warnings (the default). A bench
   * passes false: a deployment runs the production build, which does less per transition.
   */
  readonly development?: boolean;
}

/** A `troupe worker` child process, as a deployment runs one. */
export class WorkerProcess {
  stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly id: string,
    readonly readyFile: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
    child.stdout.resume();
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** Start a worker and wait until its ready file says it takes sessions. */
  static async start(options: WorkerProcessOptions): Promise<WorkerProcess> {
    const readyFile = join(options.dir, `${options.id}.ready`);
    const args = [
      'worker',
      '--nats',
      options.natsUrl,
      '--namespace',
      options.namespace,
      '--worker-id',
      options.id,
      '--capacity',
      String(options.capacity),
      '--ready-file',
      readyFile,
      ...(options.args ?? []),
    ];
    const conditions = options.development === false ? [] : ['--conditions=development'];
    const child = spawn(process.execPath, [...conditions, troupeBin(), ...args], {
      env: {
        ...process.env,
        OPENAI_BASE_URL: options.modelUrl,
        OPENAI_API_KEY: 'test-key',
        TROUPE_HOME: options.home,
        TROUPE_MODEL: 'test-model',
        TROUPE_RETRY_BASE_MS: '1',
        TROUPE_LOG: 'warn',
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(options.id, readyFile, child);
    const deadline = Date.now() + 20_000;
    while (!existsSync(readyFile) && worker.running) {
      if (Date.now() > deadline) {
        await worker.kill();
        throw new Error(`worker ${options.id} did not get ready:\n${worker.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    if (!worker.running) throw new Error(`worker ${options.id} exited:\n${worker.stderr}`);
    return worker;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
