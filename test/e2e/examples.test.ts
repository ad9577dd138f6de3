import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const RUNNER = join(import.meta.dirname, '..', '..', 'dist', 'examples', 'run.js');

/** An example as `npm run example -- NAME` runs it, on the scripted model (no key in its environment). */
async function example(name: string): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, TROUPE_LOG: 'warn' };
  delete env.OPENAI_API_KEY;
  delete env.OPENAI_BASE_URL;
  const { stdout } = await run(process.execPath, [RUNNER, name], { env, timeout: 120_000 });
  return stdout;
}

describe('the examples', () => {
  it('fanout: three auditors with a role and a tool of the example, in parallel', async () => {
    const out = await example('fanout');
    expect(out.match(/spawned \w+ \(auditor\)/g)).toHaveLength(3);
    expect(out).toContain('- billing.js: 2 open (TODO: handle currencies; FIXME: rounding loses a cent)');
    expect(out).toContain('- search.js: 0 open (nothing)');
  });

  it('review: the change is reviewed in a thread of its own and the findings come back typed', async () => {
    const out = await example('review');
    expect(out).toMatch(/reviewed in 1 thread\(s\) of its own/);
    expect(out).toMatch(/\[P1\] average\(\) divides by one too many \(.*average\.js:3\)/);
  });

  it('typed: each stage gets the typed output of the one before', async () => {
    const out = await example('typed');
    expect(out).toContain('[high] checkout: Duplicate charges on double submit.');
    expect(out).toContain('  2. Make the charge request idempotent with a key');
    expect(out).toContain('[low] settings: Typo in a heading.');
  });

  it('distributed: the same fan-out on two NATS workers that loaded the tools', async () => {
    const out = await example('distributed');
    expect(out).toContain('- auth.js: 1 open (TODO: rate-limit failed attempts)');
    const perWorker = JSON.parse(/sessions per worker: (.*)/.exec(out)![1]!) as Record<string, number>;
    expect(Object.values(perWorker).reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('names the examples when asked for one that does not exist', async () => {
    const failure = await example('nope').catch((e: unknown) => e as { code: number; stderr: string });
    expect(failure).toMatchObject({ code: 2, stderr: expect.stringContaining('usage: npm run example -- (fanout | review | distributed | typed)') });
  });
});
