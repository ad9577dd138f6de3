/**
 * AGENTS.md project instructions as the model receives them, through `troupe app-server`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REVIEW_INSTRUCTIONS } from '../../actors/tasks/index.js';
import type { AppServerProcess } from '../support/app-server-process.js';
import { finishE2E, startE2E } from '../support/e2e.js';
import type { FakeModelServer, RecordedRequest } from '../../testing/index.js';
import { inputTexts } from '../../testing/requests.js';

let model: FakeModelServer;
let server: AppServerProcess;
let workspace: string;

beforeEach(async () => {
  ({ model, server, workspace } = await startE2E());
});
afterEach(() => finishE2E({ model, server, workspace }));

const instructionsIn = (request: RecordedRequest) => inputTexts(request).filter((text) => text.startsWith('<user_instructions>'));

describe('AGENTS.md', () => {
  it('reaches the model once, home first, then from the repository root down to cwd; reviewers get it too', async () => {
    const sub = join(workspace, 'pkg');
    await mkdir(join(workspace, '.git'));
    await mkdir(sub);
    await writeFile(join(server.home, 'AGENTS.md'), 'FROM HOME\n');
    await writeFile(join(workspace, 'AGENTS.md'), 'FROM THE ROOT\n');
    await writeFile(join(sub, 'AGENTS.md'), 'FROM PKG\n');
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] }, { kind: 'response', items: [{ type: 'message', text: 'again' }] });
    const session = await server.newSession({ cwd: sub });
    await server.turn(session, 'first');
    await server.turn(session, 'second');
    const [sent] = instructionsIn(model.requests.at(-1)!);
    expect(instructionsIn(model.requests.at(-1)!)).toHaveLength(1);
    expect(sent!.indexOf('FROM HOME')).toBeLessThan(sent!.indexOf('FROM THE ROOT'));
    expect(sent!.indexOf('FROM THE ROOT')).toBeLessThan(sent!.indexOf('FROM PKG'));

    model.enqueue({ kind: 'response', match: (r) => r.body.instructions === REVIEW_INSTRUCTIONS, items: [{ type: 'message', text: 'Nothing to report.' }] });
    const review = server.submit({ type: 'review', review_request: { target: { type: 'custom', instructions: 'Look at it.' } } }, session);
    await server.waitForMsg('exited_review_mode', { session, id: review });
    const reviewer = model.requests.find((r) => r.body.instructions === REVIEW_INSTRUCTIONS)!;
    expect(instructionsIn(reviewer).join('')).toContain('FROM PKG');
  });

  it('is cut at project_doc_max_bytes, with a warning, and 0 turns it off', async () => {
    await writeFile(join(workspace, 'AGENTS.md'), `START ${'x'.repeat(5000)} END\n`);
    model.enqueue({ kind: 'response', items: [{ type: 'message', text: 'ok' }] }, { kind: 'response', items: [{ type: 'message', text: 'ok' }] });
    const cut = await server.newSession({ cwd: workspace, project_doc_max_bytes: 100 });
    const warning = await server.waitForMsg('warning', { session: cut });
    expect(warning.msg.message).toMatch(/project_doc_max_bytes: \d+ bytes were left out/);
    await server.turn(cut, 'go');
    const [sent] = instructionsIn(model.requests.at(-1)!);
    expect(sent).toContain('START');
    expect(sent).not.toContain('END');

    const off = await server.newSession({ cwd: workspace, project_doc_max_bytes: 0 });
    await server.turn(off, 'go');
    expect(instructionsIn(model.requests.at(-1)!)).toEqual([]);
  });
});
