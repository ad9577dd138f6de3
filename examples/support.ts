/**
 * What every example shares: the model (a real one when OPENAI_API_KEY is set, else troupe's
 * scripted fake model playing the example's script) and a scratch workspace.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startFakeModelServer, type ScriptStep } from '../testing/index.js';

export interface ExampleModel {
  /** Options for createRuntime, or the environment of workers: where the model is. */
  readonly options: { readonly baseURL?: string; readonly apiKey?: string; readonly model?: string };
  /** Environment variables a worker process needs to reach the same model. */
  readonly env: Readonly<Record<string, string>>;
  /** True when the scripted model plays the example. */
  readonly scripted: boolean;
  close(): Promise<void>;
}

/** A real model when OPENAI_API_KEY is set; otherwise the fake model server answering with `script`. */
export async function exampleModel(script: () => ScriptStep[]): Promise<ExampleModel> {
  if (process.env.OPENAI_API_KEY) return { options: {}, env: {}, scripted: false, close: async () => undefined };
  const server = await startFakeModelServer({ steps: script() });
  console.log('(no OPENAI_API_KEY: the scripted model plays this example)');
  return {
    options: { baseURL: server.url, apiKey: 'scripted', model: 'troupe-scripted' },
    env: { OPENAI_BASE_URL: server.url, OPENAI_API_KEY: 'scripted', TROUPE_MODEL: 'troupe-scripted' },
    scripted: true,
    close: () => server.close(),
  };
}

/** A temporary directory holding `files` (relative path to content); removed by `dispose`. */
export async function workspace(files: Readonly<Record<string, string>>): Promise<{ dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-example-'));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}
