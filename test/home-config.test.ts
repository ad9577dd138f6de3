import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HomeConfigError, homeConfigPath, readHomeConfig } from '../actors/host/home-config.js';

describe('TROUPE_HOME/config.json', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'troupe-home-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  const server = (command: string) => ({ mcp_servers: { tool: { command } } });

  it('is read again whenever the file changes, and is empty while there is none', async () => {
    const path = homeConfigPath(home);
    expect(await readHomeConfig(home)).toEqual({});
    await writeFile(path, JSON.stringify(server('one')));
    expect(await readHomeConfig(home)).toEqual(server('one'));
    expect(await readHomeConfig(home)).toEqual(server('one'));
    // Same size, new content: a new session must see it.
    await writeFile(path, JSON.stringify(server('two')));
    expect(await readHomeConfig(home)).toEqual(server('two'));
    await unlink(path);
    expect(await readHomeConfig(home)).toEqual({});
    await writeFile(path, JSON.stringify({ mcp_servers: { tool: { args: ['x'] } } }));
    await expect(readHomeConfig(home)).rejects.toThrow(HomeConfigError);
    await expect(readHomeConfig(home)).rejects.toThrow(/mcp_servers\.tool/);
  });
});
