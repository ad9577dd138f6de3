import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { AppServerProcess, seqProblems } from './app-server-process.js';
import { startFakeModelServer, type FakeModelServer, type FakeModelServerOptions, type RecordedRequest } from '../../testing/fake-model-server.js';
import { outputFor } from '../../testing/requests.js';

/** What an end-to-end test drives: a fake model, `troupe app-server` pointed at it, a workspace. */
export interface E2E {
  readonly model: FakeModelServer;
  readonly server: AppServerProcess;
  readonly workspace: string;
}

export async function startE2E(options: { model?: FakeModelServerOptions; env?: Record<string, string>; args?: readonly string[] } = {}): Promise<E2E> {
  const model = await startFakeModelServer(options.model);
  const server = await AppServerProcess.start({
    modelUrl: model.url,
    ...(options.env ? { env: options.env } : {}),
    ...(options.args ? { args: options.args } : {}),
  });
  const workspace = await mkdtemp(join(tmpdir(), 'troupe-ws-'));
  return { model, server, workspace };
}

/**
 * The invariants every end-to-end test keeps: stdout carried only protocol events, every
 * session's seq ran without a gap, every request paired each call with one output. Then
 * everything is stopped and removed.
 */
export async function finishE2E({ model, server, workspace }: E2E): Promise<void> {
  try {
    expect(server.junk).toEqual([]);
    expect(seqProblems(server.events)).toEqual([]);
    expect(model.violations).toEqual([]);
  } finally {
    await server.dispose();
    await model.close();
    await rm(workspace, { recursive: true, force: true });
  }
}

/** What a test of the CLI commands needs: a fake model, a TROUPE_HOME and a workspace. */
export interface Scratch {
  readonly model: FakeModelServer;
  readonly home: string;
  readonly workspace: string;
}

/** A fresh Scratch for each test of the calling file, stopped and removed after it. */
export function useScratch(): Scratch {
  let current: { model: FakeModelServer; home: string; workspace: string } | null = null;
  beforeEach(async () => {
    const model = await startFakeModelServer();
    current = {
      model,
      home: await mkdtemp(join(tmpdir(), 'troupe-home-')),
      workspace: await mkdtemp(join(tmpdir(), 'troupe-ws-')),
    };
  });
  afterEach(async () => {
    if (!current) return;
    const { model, home, workspace } = current;
    current = null;
    await model.close();
    await rm(home, { recursive: true, force: true });
    await rm(workspace, { recursive: true, force: true });
  });
  const now = () => {
    if (!current) throw new Error('the scratch exists during a test only');
    return current;
  };
  return {
    get model() {
      return now().model;
    },
    get home() {
      return now().home;
    },
    get workspace() {
      return now().workspace;
    },
  };
}

/** The tool output the model was sent for `callId` (an exec_command's JSON is unwrapped). */
export function sentOutput(request: RecordedRequest, callId: string): string {
  const text = outputFor(request, callId);
  if (text === undefined) throw new Error(`no output for ${callId} in the request`);
  return text.startsWith('{') ? (JSON.parse(text) as { output: string }).output : text;
}
