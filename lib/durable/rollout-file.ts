import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { RolloutLine, SessionMeta } from '../../protocol/index.js';
import { DurableError } from './errors.js';

/**
 * Write an adopted session's rollout file from its log. The log is the truth, so whatever a
 * file at that path holds (a shared TROUPE_HOME, an earlier adoption) is replaced.
 */
export async function writeRolloutFile(path: string, meta: SessionMeta, lines: readonly RolloutLine[]): Promise<void> {
  const text = [{ timestamp: meta.created_at, type: 'session_meta', payload: meta }, ...lines].map((line) => `${JSON.stringify(line)}\n`).join('');
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, 'utf8');
  } catch (error) {
    throw new DurableError(`cannot write the rollout ${path} of an adopted session`, { cause: error });
  }
}
