/**
 * The shell parser is WebAssembly, loaded once per process at the first command troupe plans.
 * Before that, every script counts as one troupe cannot read: nothing is known safe or allowed.
 */
import { describe, expect, it } from 'vitest';
import { ExecPolicy, loadShellParser } from '../lib/exec-policy/index.js';
import { parseScript } from '../lib/exec-policy/shell-script.js';
import { isKnownSafeCommand } from '../lib/approval/safe-commands.js';

describe('loading the shell parser', () => {
  it('fails closed until it is loaded, and reads scripts after', async () => {
    const policy = new ExecPolicy([{ prefix: ['ls'], decision: 'allow', file: 'rules.json', line: 1 }]);
    const argv = ['bash', '-lc', 'ls -la && ls'];
    expect(parseScript('ls')).toBeUndefined();
    expect(isKnownSafeCommand(argv)).toBe(false);
    expect(policy.evaluate(argv)).toBeUndefined();
    expect(isKnownSafeCommand(['ls', '-la'])).toBe(true); // no script: no parser needed

    await Promise.all([loadShellParser(), loadShellParser()]);
    expect(parseScript('ls')?.commands).toHaveLength(1);
    expect(isKnownSafeCommand(argv)).toBe(true);
    expect(policy.evaluate(argv)?.decision).toBe('allow');
  });
});
