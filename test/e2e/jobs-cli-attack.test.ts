import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useScratch } from '../support/e2e.js';
import { useTroupeCli, type CliResult } from '../support/troupe-cli.js';
import { waitFor } from '../support/wait.js';
import { writeText } from './jobs-support.js';

// `troupe jobs run` in a repository that works against it.

const scratch = useScratch();
const cli = useTroupeCli();

function env(): NodeJS.ProcessEnv {
  return { ...process.env, OPENAI_BASE_URL: scratch.model.url, OPENAI_API_KEY: 'k', TROUPE_HOME: scratch.home, TROUPE_MODEL: 'test-model' };
}

describe('troupe jobs run against a hostile repository', () => {
  it('refuses an --output-schema that is not a regular file (a FIFO) with exit 2, as it refuses such a --csv, instead of hanging', async () => {
    await writeText(scratch.workspace, 'in.csv', 'name\na\n');
    const fifo = join(scratch.workspace, 'schema.json');
    execFileSync('mkfifo', [fifo]);
    const run = cli.start(['jobs', 'run', '-C', scratch.workspace, '--csv', 'in.csv', '--instruction', 'Do {name}', '--output-schema', 'schema.json'], env());
    let result: CliResult | null = null;
    run.done.then(
      (r) => (result = r),
      () => undefined,
    );
    try {
      await waitFor(() => result !== null, 'troupe jobs run to exit', 15_000);
    } finally {
      // Unblock a read that opened the FIFO, so the process can end (it is killed after the test anyway).
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // nobody had it open
      }
    }
    expect(result).toMatchObject({ code: 2, stderr: expect.stringContaining('--output-schema') });
    expect(result!.stderr).toMatch(/regular file|FIFO/);
    expect(existsSync(join(scratch.home, 'jobs'))).toBe(false);
    expect(scratch.model.requests).toEqual([]);
  });
});
