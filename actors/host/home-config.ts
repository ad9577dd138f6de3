import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeZodError, HomeConfig } from '../../protocol/index.js';

/** A config file that exists but cannot be used; its message names the file and the field. */
export class HomeConfigError extends Error {
  override readonly name = 'HomeConfigError';
}

export function homeConfigPath(home: string): string {
  return join(home, 'config.json');
}

/** Read `TROUPE_HOME/config.json`; a missing file is an empty config. */
export async function readHomeConfig(home: string): Promise<HomeConfig> {
  const path = homeConfigPath(home);
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
  return parsed.data;
}
