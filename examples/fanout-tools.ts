/**
 * The tools of the fan-out examples, as a module a worker can load (`troupe worker --tools`):
 * every export made by tool() is a tool of the set.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { z } from 'zod';
import { tool } from '../index.js';

/** Count the TODO and FIXME lines of one file of the turn's working directory. */
export const countTodos = tool({
  name: 'count_todos',
  description: 'Count the TODO and FIXME comments of one file, with their line numbers.',
  parameters: z.object({ file: z.string().describe('The file, relative to the working directory.') }),
  async execute({ file }, ctx) {
    const path = isAbsolute(file) ? file : join(ctx.turn.cwd, file);
    if (relative(ctx.turn.cwd, path).startsWith('..')) throw new Error(`${file} is outside the working directory`);
    const lines = (await readFile(path, 'utf8')).split('\n');
    const todos = lines.flatMap((text, i) => (/\b(TODO|FIXME)\b/.test(text) ? [{ line: i + 1, text: text.trim() }] : []));
    ctx.progress({ file, todos: todos.length });
    return { file, count: todos.length, todos };
  },
});
