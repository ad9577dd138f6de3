/**
 * Exec-policy rules hold through wrappers, shells and quoting tricks: every case is planned by
 * the function the `shell` tool itself plans with (planShell → planCommand → planExec), under
 * each of the four approval policies, with the rules read from a TROUPE_HOME on disk.
 *
 * The sandbox mode is danger-full-access so that the plans do not depend on the host having a
 * sandbox; which cells ask or refuse is the same in every mode (test/sandbox-plan.test.ts).
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planExecCommand } from '../actors/tools/handlers/exec-command.js';
import { planShell } from '../actors/tools/handlers/shell.js';
import type { ToolContext, ToolPlan } from '../actors/tools/tool.js';
import { buildTurnContext, settingsFromConfig } from '../machines/turn-context.js';
import type { AskForApproval, SandboxPolicy } from '../protocol/index.js';
import { TestResources } from './support/tool-context.js';

const POLICIES: readonly AskForApproval[] = ['untrusted', 'on-failure', 'on-request', 'never'];
type Outcome = 'run' | 'ask' | 'reject';
/** Expected plan under [untrusted, on-failure, on-request, never]. */
type Row = readonly [Outcome, Outcome, Outcome, Outcome];

/** A forbidden rule matched: refused under every policy. */
const REFUSED: Row = ['reject', 'reject', 'reject', 'reject'];
/** A prompt rule matched, or troupe cannot rule out a match: asks, and `never` refuses. */
const ASKS: Row = ['ask', 'ask', 'ask', 'reject'];
/** No rule applies and the command is not known read-only: only `untrusted` asks. */
const NO_RULE: Row = ['ask', 'run', 'run', 'run'];
/** Allowed by the rules, or known read-only with no rule: runs under every policy. */
const RUNS: Row = ['run', 'run', 'run', 'run'];

const RULES = {
  rules: [
    { prefix: ['rm'], decision: 'forbidden', reason: 'use the trash' },
    { prefix: ['git', 'push'], decision: 'prompt' },
    { prefix: ['npm', 'publish'], decision: 'prompt' },
    { prefix: ['ls'], decision: 'allow' },
    { prefix: ['env'], decision: 'allow' },
    { prefix: ['sudo', 'apt', 'update'], decision: 'allow' },
    { prefix: ['apt', 'update'], decision: 'allow' },
  ],
};

let home: string;
let cwd: string;
let emptyHome: string;

beforeAll(async () => {
  home = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-rules-home-')));
  emptyHome = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-empty-home-')));
  cwd = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-rules-cwd-')));
  await writeFile(path.join(home, 'rules.json'), JSON.stringify(RULES, null, 2));
});

afterAll(async () => {
  for (const dir of [home, emptyHome, cwd]) await rm(dir, { recursive: true, force: true });
});

function context(policy: AskForApproval, rulesHome = home, sandbox: SandboxPolicy = 'danger-full-access'): ToolContext {
  const settings = settingsFromConfig({ cwd, approval_policy: policy, sandbox_policy: sandbox }, { model: 'test-model', cwd, base_instructions: '' });
  return {
    sessionId: 'session-1',
    callId: 'call-1',
    turn: buildTurnContext(settings, 'turn-1', {}),
    signal: new AbortController().signal,
    resources: new TestResources(),
    home: rulesHome,
    emit: () => {},
  };
}

const noApprovals = { has: () => false };

async function plans(argv: readonly string[], rulesHome = home): Promise<ToolPlan[]> {
  return Promise.all(POLICIES.map((policy) => planShell({ command: [...argv] }, context(policy, rulesHome), noApprovals)));
}

async function outcomes(argv: readonly string[], rulesHome = home): Promise<Outcome[]> {
  return (await plans(argv, rulesHome)).map((plan) => (plan.kind === 'client' ? expect.fail('a shell command is never a client call') : plan.kind));
}

const table = (rows: readonly (readonly [readonly string[], Row])[]) => rows.map(([argv, row]) => ({ argv, row, name: JSON.stringify(argv) }));

describe('a forbidden rule holds through wrappers that only run their argument', () => {
  it.each(
    table([
      [['rm', '-rf', 'x'], REFUSED],
      [['/bin/rm', 'x'], REFUSED],
      [['env', 'rm', 'x'], REFUSED],
      [['/usr/bin/env', 'rm', 'x'], REFUSED],
      [['env', '-i', 'FOO=1', 'BAR=2', 'rm', 'x'], REFUSED],
      [['env', '-u', 'HOME', '-C', '/tmp', '--', 'rm', 'x'], REFUSED],
      [['env', '-iuHOME', 'rm', 'x'], REFUSED],
      [['env', '--unset=HOME', '--chdir', '/tmp', 'rm', 'x'], REFUSED],
      [['env', '-', 'rm', 'x'], REFUSED],
      [['env', '-S', 'rm -rf x'], REFUSED],
      [['env', '-S', '-i bash -c "rm x"'], REFUSED],
      [['command', 'rm', 'x'], REFUSED],
      [['command', '-p', 'rm', 'x'], REFUSED],
      [['command', '-v', 'rm'], REFUSED],
      [['exec', '-a', 'name', 'rm', 'x'], REFUSED],
      [['nice', 'rm', 'x'], REFUSED],
      [['nice', '-n', '5', 'rm', 'x'], REFUSED],
      [['nice', '-n5', 'rm', 'x'], REFUSED],
      [['nice', '-10', 'rm', 'x'], REFUSED],
      [['nice', '--adjustment=3', 'rm', 'x'], REFUSED],
      [['nohup', 'rm', 'x'], REFUSED],
      [['timeout', '5', 'rm', 'x'], REFUSED],
      [['timeout', '-s', 'KILL', '-k', '1', '5s', 'rm', 'x'], REFUSED],
      [['timeout', '--signal=TERM', '--kill-after', '2', '--preserve-status', '5', 'rm', 'x'], REFUSED],
      [['timeout', '--fore', '5', 'rm', 'x'], REFUSED],
      [['stdbuf', '-oL', '-e', '0', '-i0', 'rm', 'x'], REFUSED],
      [['setsid', '-f', 'rm', 'x'], REFUSED],
      [['time', '-p', 'rm', 'x'], REFUSED],
      [['time', '-f', '%e', '-o', 'log', 'rm', 'x'], REFUSED],
      [['sudo', 'rm', 'x'], REFUSED],
      [['sudo', '-u', 'root', '-E', '--', 'rm', 'x'], REFUSED],
      [['sudo', 'FOO=1', 'rm', 'x'], REFUSED],
      [['sudo', '-s', 'rm x'], REFUSED],
      [['doas', '-u', 'root', 'rm', 'x'], REFUSED],
      [['su', '-c', 'rm x'], REFUSED],
      [['su', 'root', '-c', 'rm x'], REFUSED],
      [['xargs', 'rm'], REFUSED],
      [['xargs', '-0', '-n', '1', '-P', '4', 'rm', '-f'], REFUSED],
      [['xargs', '-I', '{}', 'rm', '{}'], REFUSED],
      [['xargs', '-I{}', 'rm', '{}'], REFUSED],
      [['xargs', '--replace', 'rm', '{}'], REFUSED],
      [['find', '.', '-name', '*.o', '-delete'], REFUSED],
      [['find', '.', '-exec', 'rm', '{}', ';'], REFUSED],
      [['find', '.', '-type', 'f', '-execdir', 'rm', '-f', '{}', '+'], REFUSED],
      [['find', '.', '-ok', 'rm', '{}', ';'], REFUSED],
      [['find', '.', '-okdir', '/bin/rm', '{}', ';'], REFUSED],
      [['find', '.', '-exec', 'echo', '{}', ';', '-exec', 'rm', '{}', ';'], REFUSED],
      [['ionice', '-c3', 'rm', 'x'], REFUSED],
      [['taskset', '0x1', 'rm', 'x'], REFUSED],
      [['busybox', 'rm', 'x'], REFUSED],
      [['watch', '-n', '1', 'rm', 'x'], REFUSED],
      [['flock', '/tmp/lock', 'rm', 'x'], REFUSED],
      [['flock', '/tmp/lock', '-c', 'rm x'], REFUSED],
      [['git', 'bisect', 'run', 'rm', 'x'], REFUSED],
      [['git', 'rebase', '-x', 'rm x', 'main'], REFUSED],
      [['git', 'submodule', 'foreach', 'rm', '-rf', 'x'], REFUSED],
      [['rg', '--pre', 'rm', 'pattern'], REFUSED],
      [['env', 'nice', 'timeout', '5', 'bash', '-c', 'sudo rm x'], REFUSED],
      [['sudo', 'env', 'FOO=1', 'nohup', 'nice', '-n', '1', 'xargs', 'rm'], REFUSED],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });

  it('the refusal names the rule and its reason to the model', async () => {
    const [plan] = await plans(['timeout', '5', 'env', 'rm', 'x']);
    expect(plan).toEqual({
      kind: 'reject',
      reason: expect.stringMatching(/forbidden by the exec-policy rule forbidden \["rm"\] \(.*rules\.json:\d+\): use the trash/),
    });
  });

  it('find -delete is refused as rm, and says why', async () => {
    const [plan] = await plans(['find', '.', '-delete']);
    expect(plan).toEqual({ kind: 'reject', reason: expect.stringContaining('`find -delete` deletes files as `rm` does') });
  });
});

describe('a forbidden rule holds through shells, with any flags before -c', () => {
  it.each(
    table([
      [['bash', '-c', 'rm x'], REFUSED],
      [['bash', '-lc', 'rm x'], REFUSED],
      [['bash', '-e', '-c', 'rm x'], REFUSED],
      [['bash', '-ec', 'rm x'], REFUSED],
      [['bash', '-xec', 'rm x'], REFUSED],
      [['bash', '-c', '-e', 'rm x'], REFUSED],
      [['bash', '--norc', '--noprofile', '-c', 'rm x'], REFUSED],
      [['bash', '-o', 'pipefail', '-c', 'rm x'], REFUSED],
      [['bash', '-eo', 'pipefail', '-c', 'rm x'], REFUSED],
      [['bash', '+o', 'histexpand', '-O', 'extglob', '-c', 'rm x'], REFUSED],
      [['sh', '-c', 'rm x'], REFUSED],
      [['zsh', '-c', 'rm x'], REFUSED],
      [['dash', '-c', 'rm x'], REFUSED],
      [['ksh', '-c', 'rm x'], REFUSED],
      [['/bin/bash', '-c', 'rm x'], REFUSED],
      [['/usr/local/bin/zsh', '-fc', 'rm x'], REFUSED],
      [['/usr/bin/env', 'bash', '-c', 'rm x'], REFUSED],
      [['/usr/bin/env', '-i', 'PATH=/bin', 'sh', '-c', 'rm x'], REFUSED],
      [['sh', '-c', 'bash -c "rm x"'], REFUSED],
      [['bash', '-c', "sh -c 'env rm x'"], REFUSED],
      [['bash', '-c', 'ls | xargs rm'], REFUSED],
      [['bash', '-c', 'find . -name "*.o" -exec rm {} \\;'], REFUSED],
      [['bash', '-c', 'echo ok && timeout 5 rm x'], REFUSED],
      [['bash', '-c', 'ls\nrm x'], REFUSED],
      [['bash', '-c', 'if true; then rm x; fi'], REFUSED],
      [['bash', '-c', 'for f in *.o; do rm "$f"; done'], REFUSED],
      [['bash', '-c', 'while read -r f; do rm "$f"; done < list'], REFUSED],
      [['bash', '-c', 'case "$1" in a|b) rm x;; *) ls;; esac'], REFUSED],
      [['bash', '-c', 'clean() { rm -rf build; }; clean'], REFUSED],
      [['bash', '-c', 'function clean { rm x; }'], REFUSED],
      [['bash', '-c', '[[ -f x ]] && rm x'], REFUSED],
      [['bash', '-c', '(cd sub && rm x)'], REFUSED],
      [['bash', '-c', '{ ls; rm x; }'], REFUSED],
      [['bash', '-c', 'echo $(rm x)'], REFUSED],
      [['bash', '-c', 'echo "$(rm x)"'], REFUSED],
      [['bash', '-c', 'echo `rm x`'], REFUSED],
      [['bash', '-c', 'x=$(rm y) ls'], REFUSED],
      [['bash', '-c', 'diff <(rm x) <(ls)'], REFUSED],
      [['bash', '-c', 'echo ${x:-$(rm y)}'], REFUSED],
      [['bash', '-c', 'eval "rm x"'], REFUSED],
      [['bash', '-c', "trap 'rm x' EXIT; ls"], REFUSED],
      [['bash', '-c', 'exec 3>&1; rm x 2>&1 >/dev/null'], REFUSED],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });
});

describe('quoting does not hide a program from a rule', () => {
  it.each(
    table([
      [['bash', '-c', "'r'm x"], REFUSED],
      [['bash', '-c', '"rm" x'], REFUSED],
      [['bash', '-c', '"r""m" x'], REFUSED],
      [['bash', '-c', "r''m x"], REFUSED],
      [['bash', '-c', 'r\\m x'], REFUSED],
      [['bash', '-c', '\\rm x'], REFUSED],
      [['bash', '-c', 'r\\\nm x'], REFUSED],
      [['bash', '-c', "$'\\x72m' x"], REFUSED],
      [['bash', '-c', "$'\\162\\155' x"], REFUSED],
      [['bash', '-c', "$'r\\u006d' x"], REFUSED],
      [['bash', '-c', '/bin/"rm" x'], REFUSED],
      [['zsh', '-c', '=rm x'], REFUSED],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });
});

describe('a script troupe cannot resolve asks when it could reach a named program, and never refuses', () => {
  it.each(
    table([
      // Globs and brace lists that could expand to rm.
      [['bash', '-c', '/bin/r? x'], ASKS],
      [['bash', '-c', '/usr/bin/r* x'], ASKS],
      [['bash', '-c', '/bin/[r]m x'], ASKS],
      [['bash', '-c', '/bin/["r"]m x'], ASKS],
      [['bash', '-c', '{r,x}m y'], ASKS],
      [['bash', '-c', '{"r",x}m y'], ASKS],
      // Program names computed at run time.
      [['bash', '-c', 'x=rm; $x y'], ASKS],
      [['bash', '-c', 'x=r; y=m; "$x$y" z'], ASKS],
      [['bash', '-c', '$(printf rm) x'], ASKS],
      [['bash', '-c', '`echo rm` x'], ASKS],
      [['bash', '-c', 'timeout 5 $CMD x'], ASKS],
      [['bash', '-c', 'eval "$X"'], ASKS],
      [['bash', '-c', 'eval $(echo rm) x'], ASKS],
      [['bash', '-c', 'source ./setup.sh'], ASKS],
      [['bash', '-c', '. ./setup.sh && ls'], ASKS],
      [['bash', '-c', 'hash -p /bin/rm ls; ls x'], ASKS],
      [['bash', '-c', "x='a[$(rm y)]'; echo $((x))"], ASKS],
      [['bash', '-c', "read 'a[$(rm y)]' < f"], ASKS],
      // Commands fed to a shell as data.
      [['bash', '-c', 'echo "rm x" | sh'], ASKS],
      [['bash', '-c', "printf '\\x72m x' | bash"], ASKS],
      [['bash', '-c', 'cat <<EOF | sh\nrm x\nEOF'], ASKS],
      [['bash', '-c', 'ls | xargs -I{} sh -c "{}"'], ASKS],
      [['bash', '-c', 'bash -c "$SCRIPT"'], ASKS],
      [['sh'], ASKS],
      [['bash', '-s'], ASKS],
      // Scripts the parser does not model: their text is searched.
      [['bash', '-c', '(( n = 1 )); rm x'], ASKS],
      [['bash', '-c', 'cat <<EOF\n$(rm x)\nEOF'], ASKS],
      [['bash', '-c', 'a=(r m); "${a[0]}${a[1]}" x'], ASKS],
      [['fish', '-c', 'rm x'], ASKS],
      [['fish', '-c', '\\x72m x'], ASKS],
      // Wrappers whose command is only known at run time.
      [['xargs', '-I{}', '{}'], ASKS],
      [['find', '.', '-exec', '{}', ';'], ASKS],
      [['timeout', '--frobnicate', '5', 'ls'], ASKS],
      [['git', '-c', 'alias.x=!rm -rf .', 'x'], ASKS],
      [['git', '-c', 'core.pager=rm -rf .', 'log'], ASKS],
      // Variables that programs run as commands.
      [['env', 'GIT_EXTERNAL_DIFF=rm', 'git', 'diff'], ASKS],
      [['bash', '-c', "PAGER='rm -rf .' git log"], ASKS],
      [['bash', '-c', 'export LESSOPEN="|rm %s"; less f'], ASKS],
      [['sudo', 'GIT_PAGER=/bin/rm', 'git', 'log'], ASKS],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });

  it('the question says why, and names the rule it could not rule out', async () => {
    const [untrusted, , , never] = await plans(['bash', '-c', 'x=rm; $x y']);
    expect(untrusted).toMatchObject({
      kind: 'ask',
      request: {
        reason: expect.stringMatching(
          /cannot rule out that this command runs what the exec-policy rule forbidden \["rm"\] .* names: the program .* is only known when the command runs/,
        ),
      },
    });
    expect(never).toEqual({ kind: 'reject', reason: expect.stringMatching(/^Not run: troupe cannot rule out .*"never" forbids asking/) });
  });

  it('without prompt or forbidden rules, a script troupe cannot resolve is not asked about for that reason', async () => {
    const rulesHome = realpathSync(await mkdtemp(path.join(tmpdir(), 'troupe-allow-only-')));
    try {
      await writeFile(path.join(rulesHome, 'rules.json'), JSON.stringify({ rules: [{ prefix: ['make'], decision: 'allow' }] }));
      expect(await outcomes(['bash', '-c', 'x=rm; $x y'], rulesHome)).toEqual(NO_RULE);
      expect(await outcomes(['bash', '-c', 'source ./env.sh && make'], rulesHome)).toEqual(NO_RULE);
    } finally {
      await rm(rulesHome, { recursive: true, force: true });
    }
  });
});

describe('a prompt rule with several words holds through wrappers and git options', () => {
  it.each(
    table([
      [['git', 'push'], ASKS],
      [['git', '-C', 'sub', 'push', 'origin'], ASKS],
      [['git', '--no-pager', '-c', 'color.ui=never', 'push'], ASKS],
      [['git', '--git-dir=.git', '--work-tree', '.', 'push'], ASKS],
      [['env', 'GIT_TRACE=1', 'git', 'push'], ASKS],
      [['bash', '-lc', 'git "push" origin'], ASKS],
      [['bash', '-lc', 'git pu""sh'], ASKS],
      // Could be push: asked about, not refused outright.
      [['bash', '-lc', 'git $SUBCOMMAND'], ASKS],
      [['bash', '-lc', 'git pu*'], ASKS],
      [['xargs', 'git'], ASKS],
      [['bash', '-lc', 'npm $COMMAND'], ASKS],
      [['bash', '-lc', 'npm "$COMMAND"'], ASKS],
      [['bash', '-lc', 'npm pub*'], ASKS],
      [['find', '.', '-exec', 'npm', '{}', ';'], ASKS],
      [['bash', '-lc', 'npm publish'], ASKS],
      // Certainly not push or publish.
      [['bash', '-lc', 'npm test $ARGS'], NO_RULE],
      [['xargs', 'npm', 'test'], NO_RULE],
      [['git', 'pull'], NO_RULE],
      [['git', '-C', 'sub', 'log', 'push'], NO_RULE],
      [['bash', '-lc', 'git log --grep push'], NO_RULE],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });
});

describe('allow is never widened by unwrapping', () => {
  it.each(
    table([
      [['ls', '-la'], RUNS],
      [['env', 'ls'], RUNS], // env and ls are each allowed
      [['bash', '-lc', 'ls && ls -la'], RUNS],
      [['bash', '-lc', 'ls $HOME'], RUNS],
      [['bash', '-lc', 'ls 2>&1 >/dev/null'], RUNS],
      // allow ["env"] does not allow what env runs.
      [['env', 'touch', 'x'], NO_RULE],
      [['env', 'bash', '-c', 'ls'], RUNS],
      // A variable set for the command may name a program to run (PAGER, GIT_EXTERNAL_DIFF): not allowed.
      [['env', 'FOO=1', 'bash', '-c', 'ls'], NO_RULE],
      [['env', 'bash', '-c', 'touch x'], NO_RULE],
      // allow ["ls"] does not allow a wrapper around it, a changed environment, or a write.
      [['timeout', '5', 'ls'], NO_RULE],
      [['/bin/ls'], NO_RULE],
      [['bash', '-lc', 'LD_PRELOAD=./x.so ls'], NO_RULE],
      [['bash', '-lc', 'ls > listing.txt'], NO_RULE],
      [['bash', '-lc', 'ls && touch x'], NO_RULE],
      [['bash', '-lc', 'ls $(touch x)'], NO_RULE],
      [['bash', '-lc', 'coproc ls'], NO_RULE],
      // An allow rule never outweighs a forbidden or prompt rule on a command inside.
      [['env', 'rm', 'x'], REFUSED],
      [['bash', '-lc', 'ls; git push'], ASKS],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });
});

describe('sudo and doas always ask', () => {
  it.each(
    table([
      [['sudo', 'ls'], ASKS],
      [['sudo', '-u', 'root', 'cat', '/etc/shadow'], ASKS],
      [['doas', 'ls'], ASKS],
      [['pkexec', 'ls'], ASKS],
      [['su', '-c', 'ls'], ASKS],
      [['sudo', '-e', '/etc/hosts'], ASKS],
      [['sudo', '-i'], ASKS],
      [['env', 'sudo', 'ls'], ASKS],
      [['bash', '-lc', 'ls && sudo ls'], ASKS],
      [['bash', '-lc', "nice sudo 'ls'"], ASKS],
      [['bash', '-lc', '(( 1 )); sudo ls'], ASKS],
      // Unless the user's allow rules name the exact command and everything it runs.
      [['sudo', 'apt', 'update'], RUNS],
      [['sudo', '/usr/bin/apt', 'update'], ASKS],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });

  it('with no rules at all', async () => {
    expect(await outcomes(['sudo', 'ls'], emptyHome)).toEqual(ASKS);
    expect(await outcomes(['bash', '-lc', 'doas ls'], emptyHome)).toEqual(ASKS);
    const [plan] = await plans(['sudo', 'ls'], emptyHome);
    expect(plan).toMatchObject({ kind: 'ask', request: { reason: expect.stringContaining('`sudo` runs a command as another user') } });
  });
});

describe('what rules do not reach', () => {
  it.each(
    table([
      // Mentioning a name as data is not running it.
      [['echo', 'rm'], RUNS],
      [['grep', '-rn', 'rm -rf', 'src'], RUNS],
      [['bash', '-lc', 'echo "rm x" > notes.txt'], NO_RULE],
      [['bash', '-lc', 'ls "$(which rm)"'], NO_RULE],
      [['bash', '-lc', 'CI=1 NODE_ENV=test npm test'], NO_RULE],
      // Interpreters and script files run code a prefix rule cannot see: the sandbox is the boundary.
      [['python3', '-c', 'import os; os.system("rm x")'], NO_RULE],
      [['node', '-e', 'require("child_process").execSync("rm x")'], NO_RULE],
      [['bash', './cleanup.sh'], NO_RULE],
    ]),
  )('$name', async ({ argv, row }) => {
    expect(await outcomes(argv)).toEqual(row);
  });
});

describe('exec_command plans its command line the same way', () => {
  const execOutcomes = (cmd: string) => Promise.all(POLICIES.map(async (policy) => (await planExecCommand({ cmd }, context(policy), noApprovals)).kind));

  it.each([
    ['rm -rf build', REFUSED],
    ['env rm x', REFUSED],
    ['bash -e -c "rm x"', REFUSED],
    ["/usr/bin/env bash -c 'r''m x'", REFUSED],
    ['ls | xargs rm', REFUSED],
    ['find . -delete', REFUSED],
    ['/bin/r? x', ASKS],
    ['git -C . push', ASKS],
    ['ls -la', RUNS],
  ] as const)('%s', async (cmd, row) => {
    expect(await execOutcomes(cmd)).toEqual(row);
  });
});
