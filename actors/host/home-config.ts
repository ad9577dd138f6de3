import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeZodError, HomeConfig, TroupeError } from '../../protocol/index.js';

/** A config file that exists but cannot be used; its message names the file and the field. */
export class HomeConfigError extends TroupeError {
  override readonly name = 'HomeConfigError';
  override readonly code = 'bad_request';
}

export function homeConfigPath(home: string): string {
  return join(home, 'config.json');
}

/** The last config read from each path, with what its file looked like then. */
const cache = new Map<string, { readonly signature: string; readonly config: HomeConfig }>();

/**
 * Read `TROUPE_HOME/config.json`; a missing file is an empty config. A host reads it for every
 * session it starts, so the file is parsed again only when it changed (its inode, size or
 * modification time), and a missing one costs a stat.
 */
export async function readHomeConfig(home: string): Promise<HomeConfig> {
  const path = homeConfigPath(home);
  let info;
  try {
    info = statSync(path, { throwIfNoEntry: false });
  } catch (error) {
    throw new HomeConfigError(`${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!info) {
    cache.delete(path);
    return {};
  }
  const signature = `${info.ino}:${info.size}:${info.mtimeMs}`;
  const cached = cache.get(path);
  if (cached?.signature === signature) return cached.config;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new HomeConfigError(`${path}: ${(error as Error).message}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new HomeConfigError(`${path}: not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = HomeConfig.safeParse(raw);
  if (!parsed.success) throw new HomeConfigError(`${path}: ${describeZodError(parsed.error)}`);
  cache.set(path, { signature, config: parsed.data });
  return parsed.data;
}
