/**
 * The escape issue 14 found, replayed through `troupe app-server` as a client sees it: in a
 * directory that is not yet a repository, the model's sandboxed command creates one and plants
 * an fsmonitor and a clean/smudge filter. The next turn's undo snapshot, an undo and a review
 * all run troupe's own git on that repository; none may start the planted program.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectSandbox } from '../../lib/sandbox/index.js';
import { REVIEW_INSTRUCTIONS } from '../../actors/tasks/index.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest, ScriptStep } from '../../testing/index.js';
import { outputFor } from '../../testing/requests.js';

const availability = await detectSandbox();

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;
let marks: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
  // Outside every writable root: a write here can only come from outside the sandbox.
  await mkdir('/var/tmp', { recursive: true });
  marks = await mkdtemp('/var/tmp/troupe-e2e-marks-');
});

afterEach(async () => {
  await rm(marks, { recursive: true, force: true });
  await finishE2E({ model, server, workspace });
});

const shell = (callId: string, script: string): ScriptStep => ({
  kind: 'response',
  items: [{ type: 'function_call', name: 'shell', call_id: callId, arguments: { command: ['sh', '-c', script] } }],
});
const say = (text: string, match?: (r: RecordedRequest) => boolean): ScriptStep => ({
  kind: 'response',
  items: [{ type: 'message', text }],
  ...(match ? { match } : {}),
});

describe.skipIf(!availability.ok)('a repository planted by the model', () => {
  it('runs nothing it names through the next snapshot, undo and review, and undo still works', async () => {
    const marker = path.join(marks, 'ran');
    const prog = path.join(marks, 'evil');
    await writeFile(prog, `#!/bin/sh\nid >> ${marker}\nexec cat\n`);
    await chmod(prog, 0o755);

    model.enqueue(
      shell(
        'plant',
        `git init -q -b main && git config user.name m && git config user.email m@m && echo original > f.txt && git add . && git commit -qm first && ` +
          `git config core.fsmonitor ${prog} && git config filter.x.clean ${prog} && git config filter.x.smudge ${prog} && ` +
          `git config filter.x.required true && echo '* filter=x' > .gitattributes && printf '#!/bin/sh\\n${prog}\\n' > .git/hooks/reference-transaction && chmod +x .git/hooks/reference-transaction`,
      ),
      say('planted'),
      shell('edit', 'echo changed > f.txt && echo new > g.txt'),
      say('edited'),
    );
    const session = await server.newSession({ cwd: workspace });
    await server.turn(session, 'set up the project');
    expect(outputFor(model.requests.at(-1)!, 'plant')).toMatch(/Exit code: 0/);
    await server.turn(session, 'edit it');
    expect(await readFile(path.join(workspace, 'f.txt'), 'utf8')).toBe('changed\n');

    const undo = server.submit({ type: 'undo' }, session);
    const undone = await server.waitForMsg('undo_completed', { session, id: undo });
    expect(undone.msg).toMatchObject({ success: true });
    expect(await readFile(path.join(workspace, 'f.txt'), 'utf8')).toBe('original\n');
    expect(existsSync(path.join(workspace, 'g.txt'))).toBe(false);

    await writeFile(path.join(workspace, 'f.txt'), 'edited again\n');
    model.enqueue(say('Nothing to report.', (r) => r.body.instructions === REVIEW_INSTRUCTIONS));
    const review = server.submit({ type: 'review', review_request: { target: { type: 'uncommitted_changes' } } }, session);
    await server.waitForMsg('exited_review_mode', { session, id: review });
    const reviewRequest = model.requests.find((r) => r.body.instructions === REVIEW_INSTRUCTIONS)!;
    expect(JSON.stringify(reviewRequest.body.input)).toContain('+edited again');

    expect(existsSync(marker)).toBe(false);
  });
});
