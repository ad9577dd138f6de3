/**
 * A fresh temporary directory for each test of the file or describe block that calls
 * `scratchDirectory`, removed after the test, and a way to write a file into it.
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';

export interface ScratchDirectory {
  /** The directory of the running test, with symbolic links resolved. */
  readonly path: string;
  /** Write `text` to `name` in the directory; resolves to the file's path. */
  file(name: string, text: string): Promise<string>;
}

export function scratchDirectory(prefix: string): ScratchDirectory {
  let current: string | undefined;
  beforeEach(async () => {
    current = realpathSync(await mkdtemp(join(tmpdir(), prefix)));
  });
  afterEach(async () => {
    if (current !== undefined) await rm(current, { recursive: true, force: true });
    current = undefined;
  });
  const path = (): string => {
    if (current === undefined) throw new Error('the scratch directory is made in beforeEach: use it inside a test');
    return current;
  };
  return {
    get path() {
      return path();
    },
    file: async (name, text) => {
      const file = join(path(), name);
      await writeFile(file, text);
      return file;
    },
  };
}
