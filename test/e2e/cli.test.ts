import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useTroupeCli, type CliResult } from '../support/troupe-cli.js';
import { REVIEW_INSTRUCTIONS } from '../../actors/tasks/index.js';
import { Event, SessionSummary } from '../../protocol/index.js';
import { troupeBin } from '../support/app-server-process.js';
import { detectSandbox } from '../../lib/sandbox/detect.js';
import { mentions, outputFor, spawnedAgentIds } from '../../testing/requests.js';
import type { RecordedRequest } from '../../testing/fake-model-server.js';
import { initRepo } from '../support/git-repo.js';
import { mcpEchoServerPath } from '../support/mcp-echo-server.js';
import { useScratch } from '../support/e2e.js';

const run = promisify(execFile);

const scratch = useScratch();
const sandbox = await detectSandbox();

function env(): NodeJS.ProcessEnv {
  return { ...process.env, OPENAI_BASE_URL: scratch.model.url, OPENAI_API_KEY: 'k', TROUPE_HOME: scratch.home, TROUPE_RETRY_BASE_MS: '1' };
}

const cli = useTroupeCli();

/** Run `troupe <args>` with no terminal on stdin (empty, or `input` through a pipe). */
function troupe(args: string[], environment: NodeJS.ProcessEnv = env(), input?: string): Promise<CliResult> {
  return cli.run(args, environment, { input });
}

describe('troupe exec', () => {
  it('--json prints every event as a protocol line', async () => {
    scratch.model.enqueue(
      {
        kind: 'response',
        items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['echo', 'from-the-tool'] } }],
      },
      { kind: 'response', items: [{ type: 'message', text: 'all done' }] },
    );
    const result = await troupe(['exec', '--json', '-C', scratch.workspace, '--model', 'm1', 'say hi']);
    expect(result.code).toBe(0);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((line) => Event.parse(JSON.parse(line)));
    const types = events.map((e) => e.msg.type);
    expect(types[0]).toBe('session_configured');
    expect(types).toEqual(expect.arrayContaining(['task_started', 'exec_command_begin', 'exec_command_end', 'agent_message', 'task_complete']));
    expect(types.at(-1)).toBe('shutdown_complete');
    expect(events[0]!.msg).toMatchObject({ cwd: scratch.workspace, model: 'm1' });
    expect(scratch.model.requests[0]!.body.model).toBe('m1');
  });

  it('prints a readable transcript on stderr and the final message on stdout', async () => {
    scratch.model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['sh', '-c', 'exit 4'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'The command failed with 4.' }] },
    );
    const result = await troupe(['exec', '-C', scratch.workspace, 'run the thing']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('The command failed with 4.\n');
    expect(result.stderr).toContain("$ sh -c 'exit 4'");
    expect(result.stderr).toContain('exit 4');
  });

  it('without a terminal, a request that needs approval is denied with advice', async () => {
    const file = join(scratch.workspace, 'f.txt');
    scratch.model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c', arguments: { command: ['touch', file] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'I could not.' }] },
    );
    const result = await troupe(['exec', '--approval-policy', 'untrusted', '-C', scratch.workspace, 'touch it']);
    expect(result.code).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(result.stderr).toMatch(/denied the request to run `touch .*f\.txt`.*--approval-policy/s);
    expect(JSON.stringify(scratch.model.requests[1]!.body.input)).toMatch(/denied/);
  });

  it('exits 1 when the turn fails, and 2 on bad flags', async () => {
    scratch.model.enqueue({ kind: 'http_error', status: 401, body: { error: { message: 'bad key' } } });
    const [failed, bad] = await Promise.all([troupe(['exec', '-C', scratch.workspace, 'hi']), troupe(['exec', '--approval-policy', 'sometimes', 'hi'])]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('unauthorized');
    // It says which key was refused.
    expect(failed.stderr).toContain('the API key in OPENAI_API_KEY was refused');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--approval-policy must be one of');
  });
});

/** The lines of `text` that look like a stack trace. */
const stackLines = (text: string) => text.split('\n').filter((line) => /^\s+at /.test(line));

describe('troupe exec: the prompt and the provider', () => {
  it('reads the prompt from stdin for "-", and when none is given and stdin is a pipe', async () => {
    // The three run side by side; each answer goes to the request that carries its prompt.
    const argsOf = [['-'], []];
    for (const args of argsOf) {
      scratch.model.enqueue({
        kind: 'response',
        match: (r) => mentions(r, `the prompt from stdin ${args.length}`),
        items: [{ type: 'message', text: `read ${args.length}` }],
      });
    }
    const [empty, ...results] = await Promise.all([
      troupe(['exec', '-C', scratch.workspace, '-'], env(), '\n'),
      ...argsOf.map((args) => troupe(['exec', '-C', scratch.workspace, ...args], env(), `  the prompt from stdin ${args.length}\n`)),
    ]);
    results.forEach((result, i) => {
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`read ${argsOf[i]!.length}\n`);
    });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toBe('troupe exec: the prompt read from stdin is empty (see troupe exec --help)\n');
    expect(scratch.model.requests).toHaveLength(2);
  });

  it('without a key or a base URL, says what to set and sends nothing', async () => {
    const environment = env();
    delete environment.OPENAI_API_KEY;
    delete environment.OPENAI_BASE_URL;
    const result = await troupe(['exec', '-C', scratch.workspace, 'hi'], environment);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('No model provider is set: set OPENAI_API_KEY');
    expect(result.stderr).not.toMatch(/retry/i);
    expect(stackLines(result.stderr)).toEqual([]);
    expect(scratch.model.requests).toHaveLength(0);
  });
});

describe('troupe sessions, resume and review', () => {
  const say = (text: string) => ({ kind: 'response' as const, items: [{ type: 'message' as const, text }] });

  it('lists sessions newest first, and resume takes one up by id or with --last', async () => {
    const other = await mkdtemp(join(tmpdir(), 'troupe-other-'));
    try {
      scratch.model.enqueue(say('first answer'), say('elsewhere answer'));
      expect((await troupe(['exec', '-C', scratch.workspace, 'the first question'])).code).toBe(0);
      expect((await troupe(['exec', '-C', other, 'a question elsewhere'])).code).toBe(0);

      // What only reads the store runs side by side.
      const [listed, plain, none, missing] = await Promise.all([
        troupe(['sessions', '--json']),
        troupe(['sessions']),
        troupe(['resume', '--last', '-C', tmpdir(), 'hi']),
        troupe(['resume', 'no-such-session', 'hi']),
      ]);
      expect(listed.code).toBe(0);
      const sessions = listed.stdout
        .trim()
        .split('\n')
        .map((line) => SessionSummary.parse(JSON.parse(line)));
      expect(sessions.map((s) => [s.cwd, s.first_user_message])).toEqual([
        [other, 'a question elsewhere'],
        [scratch.workspace, 'the first question'],
      ]);
      expect(plain.stdout.split('\n')[1]).toBe(`${sessions[1]!.session_id}  ${sessions[1]!.created_at}  ${scratch.workspace}  the first question`);

      // --last is the newest session of this directory, not the newest of all.
      scratch.model.enqueue(say('second answer'));
      const resumed = await troupe(['resume', '--last', '-C', scratch.workspace, '--json', 'the follow-up']);
      expect(resumed.code).toBe(0);
      const events = resumed.stdout
        .trim()
        .split('\n')
        .map((line) => Event.parse(JSON.parse(line)));
      expect(events[0]!.msg).toMatchObject({ type: 'session_configured', session_id: sessions[1]!.session_id });
      // The resumed session numbers its events on from its rollout.
      expect(events[0]!.seq).toBeGreaterThan(1);
      const followUp = scratch.model.requests.at(-1)!;
      expect(JSON.stringify(followUp.body.input)).toContain('the first question');
      expect(JSON.stringify(followUp.body.input)).toContain('first answer');
      expect(JSON.stringify(followUp.body.input)).not.toContain('a question elsewhere');

      scratch.model.enqueue(say('third answer'));
      const byId = await troupe(['resume', sessions[0]!.session_id, 'and again']);
      expect(byId.code).toBe(0);
      expect(byId.stdout).toBe('third answer\n');
      expect(JSON.stringify(scratch.model.requests.at(-1)!.body.input)).toContain('a question elsewhere');

      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/^troupe resume: no session to resume in /);
      expect(missing.code).toBe(1);
      expect(stackLines(missing.stderr)).toEqual([]);
      expect(scratch.model.requests).toHaveLength(4);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('review reviews the uncommitted changes in a review thread and prints the findings', async () => {
    await initRepo(scratch.workspace, { 'app.js': 'export const answer = 41;\n' });
    await writeFile(join(scratch.workspace, 'app.js'), 'export const answer = 43;\n');
    const findings = {
      findings: [
        {
          title: 'Off-by-one answer',
          body: 'The answer should be 42.',
          confidence_score: 0.9,
          priority: 1,
          code_location: { absolute_file_path: join(scratch.workspace, 'app.js'), line_range: { start: 1, end: 1 } },
        },
      ],
      overall_correctness: 'patch is incorrect',
      overall_explanation: 'The constant is wrong.',
      overall_confidence_score: 0.8,
    };
    scratch.model.enqueue(say(JSON.stringify(findings)));
    const [result, both] = await Promise.all([troupe(['review', '-C', scratch.workspace]), troupe(['review', '--base', 'main', '--commit', 'HEAD'])]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Verdict: patch is incorrect');
    expect(result.stdout).toContain('[P1] Off-by-one answer');
    const request = scratch.model.requests[0]!;
    expect(request.body.instructions).toBe(REVIEW_INSTRUCTIONS);
    expect(JSON.stringify(request.body.input)).toContain('answer = 43');
    expect(scratch.model.requests).toHaveLength(1);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('review takes one of');
  });
});

describe('troupe demo', () => {
  it('fans out to three sub-agents that fix the bug with real tools, one asking for approval', async () => {
    const environment: NodeJS.ProcessEnv = { ...process.env, TROUPE_HOME: scratch.home };
    delete environment.OPENAI_API_KEY;
    delete environment.OPENAI_BASE_URL;
    const result = await troupe(['demo', '--keep'], environment);
    expect(result.code).toBe(0);
    const dir = /workspace kept: (\S+)/.exec(result.stderr)?.[1];
    expect(dir).toBeDefined();
    try {
      expect(await readFile(join(dir!, 'stats.js'), 'utf8')).toContain('return sum(values) / values.length;');
      expect(result.stderr).toContain('all 3 checks passed');
      // The test runner ran before the fix and reported the failure it saw; the fixer started
      // from that report; the parent's own run after the fix passed. The one that asked for
      // approval was refused (no terminal).
      expect(result.stdout).toMatch(
        /- Ada: The suite fails at test\.js line 5: a check got 6 where 4 was expected\.\n- Basil: I was not allowed.+\n- Cleo: Fixed.+\nThe tests pass now\./,
      );
      expect(result.stderr).toMatch(
        /\[Ada\] ✗ exit 1[\s\S]*spawned agent Cleo: Fix the bug in stats\.js\. The test runner reported: The suite fails[\s\S]*all 3 checks passed/,
      );
      expect(result.stderr).toContain('denied the request to run `node --version`');
      // Then a review thread looks at the change.
      expect(result.stderr).toContain('review verdict: patch is correct');
      expect(result.stderr).toContain('[P3] mean() of an empty list hides the mistake');
    } finally {
      await rm(dir!, { recursive: true, force: true });
    }
  });
});

describe('troupe schema', () => {
  it('prints the JSON Schema of the protocol', async () => {
    const { stdout } = await run(process.execPath, [troupeBin(), 'schema']);
    const schema = JSON.parse(stdout) as { definitions: Record<string, unknown> };
    expect(Object.keys(schema.definitions)).toContain('Submission');
    expect(stdout).toContain('"exec_approval_request"');
  });
});

describe('troupe exec --tools', () => {
  const tools = join(import.meta.dirname, '..', 'fixtures', 'ticket-tools.mjs');

  it('loads the tools a module exports, offers them to the model and runs them in this process', async () => {
    // Two runs side by side, --json and the transcript; each is answered by what it asked.
    const steps = (n: number, id: string, text: string) => [
      {
        kind: 'response' as const,
        match: (r: RecordedRequest) => mentions(r, `find ticket ${n}`) && outputFor(r, id) === undefined,
        items: [{ type: 'function_call' as const, name: 'lookup_ticket', call_id: id, arguments: { number: n } }],
      },
      { kind: 'response' as const, match: (r: RecordedRequest) => outputFor(r, id) !== undefined, items: [{ type: 'message' as const, text }] },
    ];
    scratch.model.enqueue(...steps(7, 'l', 'ticket found'), ...steps(8, 'l2', 'found again'));
    const [result, transcript] = await Promise.all([
      troupe(['exec', '--json', '--tools', tools, '-C', scratch.workspace, 'find ticket 7']),
      troupe(['exec', '--tools', tools, '-C', scratch.workspace, 'find ticket 8']),
    ]);
    expect(result.code).toBe(0);
    expect(transcript.stderr).toContain('tool lookup_ticket({"number":8})');
    expect(transcript.stderr).toMatch(/"title":"Ticket 8"[\s\S]*✓ lookup_ticket · \d+ ms/);
    const first = scratch.model.requests.find((r) => mentions(r, 'find ticket 7'))!;
    const offered = (first.body.tools as { name: string }[]).map((t) => t.name);
    expect(offered).toEqual(expect.arrayContaining(['lookup_ticket', 'close_ticket', 'shell']));
    const answered = scratch.model.requests.find((r) => outputFor(r, 'l') !== undefined)!;
    const output = JSON.parse(outputFor(answered, 'l')!) as { number: number; title: string };
    expect(output).toMatchObject({ number: 7, title: 'Ticket 7' });
    const configured = Event.parse(JSON.parse(result.stdout.split('\n')[0]!));
    expect(configured.msg.type === 'session_configured' && configured.session_id).toBeTruthy();
  });

  it('refuses a module that exports no tools, and one whose tool takes a built-in name, with exit 2 and one line', async () => {
    const empty = join(scratch.workspace, 'empty.mjs');
    const outside = join(scratch.workspace, 'outside.mjs');
    await writeFile(empty, 'export const answer = 42;\n');
    await writeFile(outside, "import { tool } from 'troupe';\nexport const t = tool;\n");
    const [none, clash, unresolvable, bad] = await Promise.all([
      troupe(['exec', '--tools', empty, '-C', scratch.workspace, 'hi']),
      troupe(['exec', '--tools', join(import.meta.dirname, '..', 'fixtures', 'clashing-tools.mjs'), '-C', scratch.workspace, 'hi']),
      troupe(['exec', '--tools', outside, '-C', scratch.workspace, 'hi']),
      troupe(['exec', '--tools', 'no spaces=x.mjs', 'hi']),
    ]);
    expect(none.code).toBe(2);
    expect(none.stderr.trim()).toMatch(/^troupe exec: --tools .*empty\.mjs: the module exports no tools/);
    expect(none.stderr.trim().split('\n')).toHaveLength(1);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain('tool "shell" of tool set "clashing-tools" has the name of the built-in tool shell');
    // The workspace is outside any package that has troupe: the import cannot resolve.
    expect(unresolvable.code).toBe(2);
    expect(unresolvable.stderr).toMatch(/--tools .*outside\.mjs: could not load it: .*troupe/);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/the tool set name "no spaces" must be/);
    expect(scratch.model.requests).toHaveLength(0);
  });
});

describe('the exec transcript shows everything', () => {
  const call = (call_id: string, name: string, args: Record<string, unknown>) => ({ type: 'function_call' as const, name, call_id, arguments: args });
  const say = (text: string) => ({ kind: 'response' as const, items: [{ type: 'message' as const, text }] });

  it('quotes commands as a shell reads them, shows retries and the calls a rule refused, and why', async () => {
    await writeFile(join(scratch.home, 'rules.json'), JSON.stringify({ rules: [{ prefix: ['touch'], decision: 'forbidden', reason: 'no touching here' }] }));
    scratch.model.enqueue(
      { kind: 'http_error', status: 500, body: { error: { message: 'the model is busy' } } },
      { kind: 'response', items: [call('c1', 'shell', { command: ['bash', '-lc', 'echo "a b" && echo done'] })] },
      { kind: 'response', items: [call('c2', 'shell', { command: ['touch', 'x'] })] },
      say('finished'),
    );
    const result = await troupe(['exec', '--approval-policy', 'never', '--sandbox', 'danger-full-access', '-C', scratch.workspace, 'go']);
    expect(result.code).toBe(0);
    const lines = result.stderr.split('\n');
    expect(lines).toContain(`$ bash -lc 'echo "a b" && echo done'`);
    expect(result.stderr).toMatch(/^model stream failed \(attempt 1\/\d+\): .*the model is busy; retrying$/m);
    const refused = lines.find((line) => line.startsWith('✗ refused shell: '));
    expect(refused, result.stderr).toMatch(/forbidden by the exec-policy rule .*no touching here/);
    // The reason shown is the one the model was given.
    expect(outputFor(scratch.model.requests.at(-1)!, 'c2')).toContain(refused!.slice('✗ refused shell: '.length));
    expect(existsSync(join(scratch.workspace, 'x'))).toBe(false);
  });

  it('shows MCP tool calls with their results and failures', async () => {
    await writeFile(join(scratch.home, 'config.json'), JSON.stringify({ mcp_servers: { echo: { command: process.execPath, args: [mcpEchoServerPath()] } } }));
    scratch.model.enqueue(
      { kind: 'response', items: [call('m1', 'echo__echo', { text: 'over the wire' })] },
      { kind: 'response', items: [call('m2', 'echo__fail', { message: 'it broke' })] },
      say('both called'),
    );
    const result = await troupe(['exec', '--approval-policy', 'never', '-C', scratch.workspace, 'call the tools']);
    expect(result.code).toBe(0);
    const lines = result.stderr.split('\n');
    const first = lines.indexOf('mcp echo.echo({"text":"over the wire"})');
    expect(first).toBeGreaterThanOrEqual(0);
    expect(lines.slice(first + 1, first + 3).join('\n')).toMatch(/over the wire[^]*✓ mcp call · \d+ ms/);
    const second = lines.indexOf('mcp echo.fail({"message":"it broke"})');
    expect(second).toBeGreaterThan(first);
    expect(lines.slice(second + 1).join('\n')).toMatch(/it broke[^]*✗ mcp call failed/);
  });

  it('shows sub-agents as an indented tree with their nicknames and roles', async () => {
    scratch.model.enqueue(
      {
        kind: 'response',
        match: (r) => mentions(r, 'PARENT') && outputFor(r, 's1') === undefined,
        items: [call('s1', 'spawn_agent', { message: 'CHILD: look around', agent_type: 'explorer' })],
      },
      {
        kind: 'response',
        match: (r) => mentions(r, 'CHILD') && outputFor(r, 'k1') === undefined,
        items: [call('k1', 'shell', { command: ['echo', 'from the child'] })],
      },
      { kind: 'response', match: (r) => mentions(r, 'CHILD') && outputFor(r, 'k1') !== undefined, items: [{ type: 'message', text: 'child is done' }] },
      {
        kind: 'reply',
        match: (r) => outputFor(r, 's1') !== undefined && outputFor(r, 'w1') === undefined,
        handler: (r) => ({ kind: 'response', items: [call('w1', 'wait_agent', { agent_ids: spawnedAgentIds(r) })] }),
      },
      { kind: 'response', match: (r) => outputFor(r, 'w1') !== undefined, items: [{ type: 'message', text: 'parent is done' }] },
    );
    const result = await troupe(['exec', '--approval-policy', 'never', '--sandbox', 'danger-full-access', '-C', scratch.workspace, 'PARENT: delegate']);
    expect(result.code).toBe(0);
    const spawned = /^spawned agent (\S+) · explorer: CHILD: look around$/m.exec(result.stderr);
    expect(spawned, result.stderr).not.toBeNull();
    const label = `  [${spawned![1]} · explorer] `;
    const lines = result.stderr.split('\n');
    expect(lines, result.stderr).toContain(`${label}$ echo 'from the child'`);
    expect(lines).toContain(`${label}  from the child`);
    expect(lines).toContain(`${label}child is done`);
  });

  it('shows compaction', async () => {
    scratch.model.enqueue(
      { kind: 'response', items: [call('c1', 'shell', { command: ['echo', 'hi'] })], usage: { input_tokens: 50_000, output_tokens: 10 } },
      say('SUMMARY of the work so far'),
      say('done after compacting'),
    );
    const result = await troupe(['exec', '--approval-policy', 'never', '--sandbox', 'danger-full-access', '-C', scratch.workspace, 'work'], {
      ...env(),
      TROUPE_MODEL_CONTEXT_WINDOW: '10000',
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^context compacted: /m);
    expect(result.stdout).toBe('done after compacting\n');
  });

  it.skipIf(!sandbox.ok)('shows a command the sandbox blocked', async () => {
    const outside = await mkdtemp('/var/tmp/troupe-cli-outside-');
    try {
      scratch.model.enqueue({ kind: 'response', items: [call('c1', 'shell', { command: ['sh', '-c', `echo hi > ${outside}/f`] })] }, say('blocked'));
      const result = await troupe(['exec', '--approval-policy', 'never', '--sandbox', 'workspace-write', '-C', scratch.workspace, 'write outside']);
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/^✗ blocked by the sandbox: .*sandbox blocked the command/m);
      expect(existsSync(join(outside, 'f'))).toBe(false);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });
});
