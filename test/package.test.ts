import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/**
 * Declarations of dependencies that fail under exactOptionalPropertyTypes with skipLibCheck off
 * (their own classes against their own interfaces); troupe cannot change them. Any other file
 * with an error fails the test, troupe's own first of all.
 */
const UPSTREAM = [/node_modules\/@nats-io\/nats-core\/lib\/(msg|nats)\.d\.ts\(/, /node_modules\/xstate\/dist\/declarations\/src\/setup\.d\.ts\(/];

/** A consumer's code: every entry point, values and types, written the way a user would. */
const CONSUMER = `import { createRuntime, type RuntimeOptions } from 'troupe';
import { Event, type Submission } from 'troupe/protocol';
import { startFakeModelServer, type ScriptStep } from 'troupe/testing';

const options: RuntimeOptions = { model: 'scripted' };
const steps: ScriptStep[] = [{ kind: 'response', items: [{ type: 'message', text: 'hi' }] }];
export async function main(): Promise<string> {
  const server = await startFakeModelServer({ steps });
  const runtime = createRuntime({ ...options, baseURL: server.url, apiKey: 'k' });
  const submission: Submission = { id: '1', op: { type: 'shutdown' }, session_id: 's' };
  await runtime.close();
  await server.close();
  return Event.parse({}).msg.type + submission.id;
}
`;

/** The module resolutions users have: Node's two, bundlers', and node10 (the top-level `types`). */
const RESOLUTIONS = [
  { moduleResolution: 'node16', module: 'node16' },
  { moduleResolution: 'nodenext', module: 'nodenext' },
  { moduleResolution: 'bundler', module: 'preserve' },
  { moduleResolution: 'node10', module: 'commonjs' },
] as const;

describe('the npm package', () => {
  let dir: string;
  let files: string[];
  let consumer: string;

  beforeAll(async () => {
    // `npm test` builds first (pretest); the tarball is packed from that build.
    if (!existsSync(join(ROOT, 'dist', 'index.d.ts'))) throw new Error('dist/ is not built: run npm run build');
    dir = await mkdtemp(join(tmpdir(), 'troupe-pack-'));
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
    files = packed.files.map((f) => f.path);
    // A consumer project with the tarball installed, and troupe's dependencies beside it (the
    // repository's own, linked: no network).
    consumer = join(dir, 'consumer');
    const installed = join(consumer, 'node_modules', 'troupe');
    await mkdir(installed, { recursive: true });
    await run('tar', ['-xzf', join(dir, packed.filename), '-C', installed, '--strip-components=1']);
    for (const name of await readdir(join(ROOT, 'node_modules'))) {
      if (name !== 'troupe' && !name.startsWith('.')) await symlink(join(ROOT, 'node_modules', name), join(consumer, 'node_modules', name));
    }
    await writeFile(join(consumer, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true, type: 'module' })}\n`);
    await writeFile(join(consumer, 'index.ts'), CONSUMER);
  }, 120_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ships the CLI, the built library, the README and the LICENSE, and no tests, benchmarks, examples or source maps', () => {
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'bin/troupe.js', 'dist/index.js', 'dist/index.d.ts']));
    expect(files).toEqual(expect.arrayContaining(['dist/protocol/index.d.ts', 'dist/testing/index.d.ts', 'dist/cli/inspector/page/index.html']));
    expect(files.filter((f) => /^dist\/(test|bench|examples)\//.test(f) || f.endsWith('.map') || !/^(dist|bin)\/|^[^/]+$/.test(f))).toEqual([]);
  });

  it('the installed CLI runs from the tarball alone', async () => {
    const { stdout } = await run(process.execPath, [join(consumer, 'node_modules', 'troupe', 'bin', 'troupe.js'), 'schema']);
    expect(stdout).toContain('"Submission"');
  });

  it.concurrent.each(RESOLUTIONS)(
    'its types resolve under moduleResolution $moduleResolution with exactOptionalPropertyTypes',
    async ({ moduleResolution, module }) => {
      // One resolution checks every declaration file (skipLibCheck off); the files are the same
      // whichever resolution found them, so the others check what they resolve to.
      const full = moduleResolution === 'nodenext';
      const config = {
        compilerOptions: {
          module,
          moduleResolution,
          target: 'es2023',
          strict: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: !full,
          noEmit: true,
          types: ['node'],
        },
        files: ['index.ts'],
      };
      const file = join(consumer, `tsconfig.${moduleResolution}.json`);
      await writeFile(file, JSON.stringify(config));
      const result = await run(process.execPath, [TSC, '-p', file], { cwd: consumer }).then(
        (r) => r.stdout,
        (e: { stdout: string }) => e.stdout,
      );
      const errors = result.split('\n').filter((line) => /error TS\d+/.test(line));
      expect(errors.filter((line) => !UPSTREAM.some((known) => known.test(line)))).toEqual([]);
    },
    240_000,
  );
});
