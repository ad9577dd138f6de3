/**
 * A hostile client of `troupe app-server`, black-box over stdio. Each test states what must
 * hold when the client sends input it should not: an `error` under the op's id, the server
 * goes on serving everything else, and its memory stays bounded.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finishE2E, startE2E, type E2E } from '../support/e2e.js';
import { MemoryWatch, mib } from '../support/memory-watch.js';
import { residentBytes } from '../support/processes.js';

let e2e: E2E;
let scratch: string;

beforeEach(async () => {
  e2e = await startE2E();
  scratch = await mkdtemp(join(tmpdir(), 'troupe-attack-'));
});

afterEach(async () => {
  try {
    await finishE2E(e2e);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});

/** Poll `condition` every 20 ms until it holds, failing after `timeoutMs` with `what`. */
async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('resume_session and fork_session of a rollout_path that is a FIFO', () => {
  it('are refused at once with an error naming the path, and do not stall the other ops', { timeout: 60_000 }, async () => {
    const { server, workspace } = e2e;
    const session = await server.newSession({ cwd: workspace });
    const fifo = join(scratch, 'rollout.jsonl');
    execFileSync('mkfifo', [fifo]);
    // Nobody ever writes to the FIFO: opening it for reading waits for a writer forever.
    const ops = [
      server.submit({ type: 'resume_session', rollout_path: fifo }),
      server.submit({ type: 'fork_session', rollout_path: fifo }),
      server.submit({ type: 'resume_session', rollout_path: fifo }),
      server.submit({ type: 'fork_session', rollout_path: fifo }),
      server.submit({ type: 'resume_session', rollout_path: fifo }),
    ];
    // Each is answered by an error under its own id (well before the 10 s placement timeout).
    for (const id of ops) {
      const error = await server.waitFor((e) => e.id === id && e.msg.type === 'error', `the error answering ${id}`, 5_000);
      expect(error.msg).toMatchObject({ type: 'error', code: 'bad_request' });
      expect(JSON.stringify(error.msg)).toContain(fifo);
    }
    // Everything else is still served: a listing (reads TROUPE_HOME) and the other session's ops.
    const list = server.submit({ type: 'list_sessions' });
    await server.waitFor((e) => e.id === list && e.msg.type === 'session_list', 'the session list', 5_000);
    const probe = server.submit({ type: 'exec_approval', id: 'nobody-asked', decision: 'approved' }, session);
    await server.waitFor((e) => e.id === probe && e.msg.type === 'error', 'the error answering the stray approval', 5_000);
  });
});

describe('a line that never ends', () => {
  it('is not held whole: the server stays within a memory bound, refuses the line, and reads on', { timeout: 120_000 }, async () => {
    const { server } = e2e;
    // The server is up and has read a line.
    const first = server.submit({ type: 'list_sessions' });
    await server.waitFor((e) => e.id === first && e.msg.type === 'session_list', 'the first session list');
    const baseline = residentBytes(server.pid)!;
    const watch = new MemoryWatch(server.pid, baseline);
    const LINE_BYTES = 160 * 1024 * 1024;
    const chunk = 'a'.repeat(1024 * 1024);
    try {
      // Written in pieces as the server takes them, so the test process does not hold it all.
      for (let written = 0; written < LINE_BYTES; written += chunk.length) {
        server.write(chunk);
        if (server.unreadInput > 8 * 1024 * 1024) await until(() => server.unreadInput < 1024 * 1024, 'the server to read on', 60_000);
      }
      await until(() => server.unreadInput === 0, 'the server to take the whole line', 60_000);
      watch.sample();
    } finally {
      watch.stop();
    }
    // mcp-server holds at most 10 MiB of a line (DESIGN.md, BoundedLines); app-server must be
    // bounded as well, not hold a line as long as the client cares to make it.
    expect(watch.growth, `grew by ${mib(watch.growth)} MiB for a ${mib(LINE_BYTES)} MiB line`).toBeLessThan(64 * 1024 * 1024);
    server.write('\n');
    await server.waitFor((e) => e.id === null && e.msg.type === 'error', 'the error refusing the long line', 20_000);
    const after = server.submit({ type: 'list_sessions' });
    await server.waitFor((e) => e.id === after && e.msg.type === 'session_list', 'a session list after the long line');
  });
});

describe('a client that writes ops faster than they are applied', () => {
  it('loses none of them: every op is answered as it would be alone', { timeout: 120_000 }, async () => {
    const { server } = e2e;
    const COUNT = 3_000;
    const ids = Array.from({ length: COUNT }, (_, i) => `flood-${i}`);
    // One write: the server gets them as fast as the pipe carries them.
    server.write(ids.map((id) => `${JSON.stringify({ id, op: { type: 'list_sessions' } })}\n`).join(''));
    const last = ids.at(-1)!;
    await server.waitFor((e) => e.id === last, 'the answer to the last op', 60_000);
    const refused = server.events.filter((e) => e.msg.type === 'error');
    expect(refused.slice(0, 3), `${refused.length} of ${COUNT} ops refused`).toEqual([]);
    const answered = new Set(server.events.filter((e) => e.msg.type === 'session_list').map((e) => e.id));
    expect(ids.filter((id) => !answered.has(id))).toEqual([]);
  });
});
