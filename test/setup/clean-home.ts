/**
 * Vitest global setup: every test runs with a HOME of its own, whose profile files are empty.
 *
 * troupe starts login shells (`$SHELL -lc` for user shell commands and PTY sessions), and a
 * login shell sources the user's profile. The suite must not depend on what the machine's
 * profile does (version managers, lock files, slow network look-ups): a test that interrupts a
 * login shell could otherwise leave the machine's own lock behind and stall every later shell.
 * The workers inherit this environment, and so do the processes the tests start.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Startup files bash, sh and zsh read from HOME; each exists and is empty. */
const PROFILE_FILES = ['.profile', '.bash_profile', '.bash_login', '.bashrc', '.zshenv', '.zprofile', '.zshrc', '.zlogin'];

/** Variables that make a shell source a file of the machine's choosing, or point at its config. */
const MACHINE_VARIABLES = ['BASH_ENV', 'ENV', 'ZDOTDIR', 'XDG_CONFIG_HOME', 'GIT_CONFIG_GLOBAL', 'PROMPT_COMMAND'];

export default async function setup(): Promise<() => Promise<void>> {
  const home = await mkdtemp(join(tmpdir(), 'troupe-test-home-'));
  await Promise.all(PROFILE_FILES.map((name) => writeFile(join(home, name), '')));
  // Test repositories commit with this identity unless they set their own.
  await writeFile(join(home, '.gitconfig'), '[user]\n\tname = troupe tests\n\temail = tests@troupe.invalid\n');
  process.env.HOME = home;
  process.env.SHELL = '/bin/bash';
  for (const name of MACHINE_VARIABLES) delete process.env[name];
  return async () => {
    await rm(home, { recursive: true, force: true });
  };
}
