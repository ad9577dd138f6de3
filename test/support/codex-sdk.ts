import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Codex } from '@openai/codex-sdk';
import { afterEach, beforeEach } from 'vitest';
import { troupeBin } from './app-server-process.js';

/**
 * The official Codex SDK pointed at troupe. The SDK runs one executable
 * (`<binary> exec --experimental-json ...`), so each test gets a small script that starts
 * troupe's CLI under node, removed after the test.
 */
export function useCodexOnTroupe(): (options: { env: Record<string, string>; baseUrl?: string; config?: Record<string, string | number | boolean> }) => Codex {
  let dir = '';
  let binary = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'troupe-codex-bin-'));
    binary = join(dir, 'codex');
    await writeFile(binary, `#!/bin/sh\nexec '${process.execPath}' --conditions=development '${troupeBin()}' "$@"\n`);
    await chmod(binary, 0o755);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return ({ env, baseUrl, config }) =>
    new Codex({
      codexPathOverride: binary,
      apiKey: 'sdk-key',
      // Only what troupe needs: nothing of this process's OPENAI_* or TROUPE_* leaks in.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TROUPE_RETRY_BASE_MS: '1', ...env },
      ...(baseUrl !== undefined ? { baseUrl } : {}),
      ...(config ? { config } : {}),
    });
}
