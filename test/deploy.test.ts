import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Event } from '../protocol/index.js';
import { troupeBin } from './support/app-server-process.js';
import { startFakeModelServer, type FakeModelServer } from '../testing/index.js';
import { freePort } from './support/nats-server.js';
import { isAlive } from './support/processes.js';
import { waitFor } from './support/wait.js';

const run = promisify(execFile);
const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url));
const LOCAL_SH = join(DEPLOY, 'local.sh');

describe('deploy/local.sh', () => {
  let dir: string;
  let model: FakeModelServer;
  let pids: number[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'troupe-local-'));
    model = await startFakeModelServer();
    pids = [];
  });
  afterEach(async () => {
    // Whatever a failed test left running is killed here, so no process outlives the test.
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await model.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function readPids(): Promise<number[]> {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.pid'));
    return Promise.all(files.map(async (f) => Number((await readFile(join(dir, f), 'utf8')).trim())));
  }

  it('starts nats-server and workers, runs a session through them, and stops leaving nothing behind', async () => {
    const port = await freePort();
    const env = {
      ...process.env,
      OPENAI_BASE_URL: model.url,
      OPENAI_API_KEY: 'k',
      TROUPE_HOME: join(dir, 'home'),
      TROUPE_RETRY_BASE_MS: '1',
      TROUPE_BIN: troupeBin(),
      TROUPE_LOG: 'info',
      NODE: process.execPath,
    };
    const started = await run('bash', [LOCAL_SH, 'start', '--port', String(port), '--workers', '2', '--capacity', '2', '--dir', dir], { env });
    expect(started.stdout).toContain(`nats://127.0.0.1:${port}`);
    pids = await readPids();
    expect(pids).toHaveLength(3);
    expect(pids.every(isAlive)).toBe(true);
    const status = await run('bash', [LOCAL_SH, 'status', '--dir', dir], { env });
    expect(status.stdout.match(/running/g)).toHaveLength(3);

    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'Done on a worker.' }] });
    const exec = await run(process.execPath, [troupeBin(), 'exec', '--json', '--nats', `nats://127.0.0.1:${port}`, '-C', dir, 'say hi'], { env });
    const events = exec.stdout
      .trim()
      .split('\n')
      .map((line) => Event.parse(JSON.parse(line)));
    const configured = events.find((e) => e.msg.type === 'session_configured');
    expect(configured?.msg).toMatchObject({ worker_id: expect.stringMatching(/^local-[12]$/), cwd: dir });
    expect(events.find((e) => e.msg.type === 'task_complete')?.msg).toMatchObject({ last_agent_message: 'Done on a worker.' });
    expect(events.at(-1)?.msg.type).toBe('shutdown_complete');

    await run('bash', [LOCAL_SH, 'stop', '--dir', dir], { env });
    expect(pids.filter(isAlive)).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.pid') || f.endsWith('.ready'))).toEqual([]);
    for (const i of [1, 2]) {
      const log = await readFile(join(dir, 'logs', `worker-${i}.log`), 'utf8');
      // Each worker was signalled once and had drained when stop returned; none logged an error.
      expect(log.match(/"msg":"draining: /g)).toHaveLength(1);
      expect(log).not.toContain('second signal');
      expect(log).toContain('"msg":"worker stopped"');
      expect(log).not.toMatch(/"level":(50|60)/);
    }

    // A client of the stopped cluster fails at once with one line saying why, and does not retry.
    const stopped = await run(process.execPath, [troupeBin(), 'exec', '--nats', `nats://127.0.0.1:${port}`, '-C', dir, 'say hi'], { env }).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(stopped).toMatchObject({ code: 1, stdout: '' });
    expect(stopped.stderr).toBe(`troupe: could not connect to NATS at nats://127.0.0.1:${port}: connection refused\n`);
  });

  it('a client whose NATS went away gives up after TROUPE_NATS_GIVE_UP_MS with one line, instead of waiting forever', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const env = {
      ...process.env,
      OPENAI_BASE_URL: model.url,
      OPENAI_API_KEY: 'k',
      TROUPE_HOME: join(dir, 'home'),
      TROUPE_BIN: troupeBin(),
      NODE: process.execPath,
    };
    await run('bash', [LOCAL_SH, 'start', '--port', String(port), '--workers', '1', '--dir', dir], { env });
    pids = await readPids();
    // The turn waits on the model, and the app-server on its client, when NATS goes away.
    model.enqueue({ kind: 'hang' });
    const clientEnv = { ...env, TROUPE_NATS_GIVE_UP_MS: '300' };
    const exec = run(process.execPath, [troupeBin(), 'exec', '--nats', url, '-C', dir, 'say hi'], { env: clientEnv }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    const appServer = spawn(process.execPath, [troupeBin(), 'app-server', '--nats', url], {
      env: { ...clientEnv, TROUPE_LOG: 'info' },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    try {
      let appServerErr = '';
      appServer.stderr.on('data', (chunk: Buffer) => (appServerErr += chunk.toString()));
      const appServerExit = new Promise<number | null>((resolve) => appServer.once('exit', resolve));
      await waitFor(
        () => model.requests.length === 1 && appServerErr.includes('connected to NATS'),
        'the turn to reach the model and the app-server to connect',
        30_000,
      );
      process.kill(Number((await readFile(join(dir, 'nats.pid'), 'utf8')).trim()), 'SIGKILL');
      const lost = `lost the connection to NATS at ${url} and gave up after 0.3 s without it`;
      const result = await exec;
      expect(result).toMatchObject({ code: 1 });
      expect(result.stderr.split('\n').filter((line) => line.includes(lost))).toEqual([`troupe exec: ${lost}`]);
      expect(await appServerExit).toBe(1);
      expect(appServerErr.split('\n').filter((line) => line.includes(lost))).toEqual([`troupe app-server: ${lost}`]);
    } finally {
      appServer.kill('SIGKILL');
    }
  });

  it('stop signals each worker once and returns when every worker has drained', async () => {
    const port = await freePort();
    const env = { ...process.env, TROUPE_BIN: join(import.meta.dirname, 'fixtures', 'slow-drain-worker.mjs'), NODE: process.execPath };
    await run('bash', [LOCAL_SH, 'start', '--port', String(port), '--workers', '3', '--dir', dir], { env });
    pids = await readPids();
    expect(pids).toHaveLength(4);
    // Every signal the script sends is recorded: bash sources BASH_ENV first, and its `kill`
    // is this function.
    const kills = join(dir, 'kills.log');
    const bashEnv = join(dir, 'record-kills.sh');
    await writeFile(bashEnv, `kill() { echo "$*" >> ${JSON.stringify(kills)}; builtin kill "$@"; }\n`);
    await run('bash', [LOCAL_SH, 'stop', '--dir', dir], { env: { ...env, BASH_ENV: bashEnv } });
    // stop returned after every worker had drained, and sent each process one SIGTERM.
    expect(pids.filter(isAlive)).toEqual([]);
    for (const i of [1, 2, 3]) expect(await readFile(join(dir, 'logs', `worker-${i}.log`), 'utf8')).toBe('signal SIGTERM\ndrained\n');
    const sent = (await readFile(kills, 'utf8'))
      .trim()
      .split('\n')
      .filter((line) => line.startsWith('-TERM'));
    expect(sent.sort()).toEqual(pids.map((pid) => `-TERM ${pid}`).sort());
  });

  it('refuses an unknown option with exit code 2', async () => {
    const error = await run('bash', [LOCAL_SH, 'start', '--bogus'], { env: process.env }).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown option --bogus') });
  });
});

/** YAML as JSON, through PyYAML when this machine has it: no YAML parser is a dependency. */
function yamlDocuments(file: string): unknown[] | null {
  const script = 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))';
  const result = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' });
  return result.status === 0 ? (JSON.parse(result.stdout) as unknown[]) : null;
}
const hasPyYaml = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!hasPyYaml)('deploy manifests', () => {
  it('docker-compose runs nats with JetStream, workers that drain, and a gateway', () => {
    const [compose] = yamlDocuments(join(DEPLOY, 'docker-compose.yml')) as [Record<string, any>];
    const { nats, worker, gateway } = compose.services;
    expect(nats.command).toEqual(expect.arrayContaining(['-c', '/etc/nats/nats.conf', '-sd']));
    expect(nats.volumes).toContain('./nats.conf:/etc/nats/nats.conf:ro');
    expect(worker.command[0]).toBe('worker');
    expect(worker.environment.TROUPE_NATS_URL).toBe('nats://nats:4222');
    expect(worker.stop_signal).toBe('SIGTERM');
    expect(worker.depends_on.nats.condition).toBe('service_healthy');
    expect(worker.healthcheck.test).toEqual(['CMD', 'test', '-f', '/tmp/troupe-ready']);
    expect(gateway.command).toEqual(['app-server']);
    expect(gateway.environment.TROUPE_NATS_URL).toBe('nats://nats:4222');
  });

  it('the Kubernetes workers drain gracefully and NATS keeps JetStream on a volume', () => {
    const worker = yamlDocuments(join(DEPLOY, 'k8s', 'worker.yaml')) as Record<string, any>[];
    const deployment = worker.find((d) => d.kind === 'Deployment') as Record<string, any>;
    const pod = deployment.spec.template.spec;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(60);
    expect(pod.containers[0].args[0]).toBe('worker');
    expect(pod.containers[0].readinessProbe.exec.command).toEqual(['test', '-f', '/tmp/troupe-ready']);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    // The same image as Compose's, the one deploy/Dockerfile builds.
    const [compose] = yamlDocuments(join(DEPLOY, 'docker-compose.yml')) as [Record<string, any>];
    expect(pod.containers[0].image).toBe('troupe:latest');
    expect(compose.services.worker.image).toBe('troupe:latest');

    const nats = yamlDocuments(join(DEPLOY, 'k8s', 'nats.yaml')) as Record<string, any>[];
    const statefulSet = nats.find((d) => d.kind === 'StatefulSet') as Record<string, any>;
    expect(statefulSet.spec.volumeClaimTemplates[0].metadata.name).toBe('data');
    const config = (nats.find((d) => d.kind === 'ConfigMap') as Record<string, any>).data['nats.conf'] as string;
    expect(config).toMatch(/jetstream \{\s*store_dir: \/data\/jetstream/);
    const kustomization = yamlDocuments(join(DEPLOY, 'k8s', 'kustomization.yaml')) as [{ resources: string[] }];
    expect(kustomization[0].resources).toEqual(['nats.yaml', 'worker.yaml']);
  });

  it('deploy/nats.conf is a valid nats-server configuration with JetStream', async () => {
    const { natsServerBin } = await import('./support/nats-server.js');
    const check = spawnSync(natsServerBin(), ['-c', join(DEPLOY, 'nats.conf'), '-t'], { encoding: 'utf8' });
    expect(check.status).toBe(0);
    expect(await readFile(join(DEPLOY, 'nats.conf'), 'utf8')).toMatch(/^jetstream \{/m);
  });
});
