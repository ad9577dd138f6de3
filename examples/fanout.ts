/**
 * Parallel sub-agents with a tool of your own and a role: the root spawns one `auditor` per
 * module; each auditor may use only count_todos and read_file, in a read-only sandbox.
 *
 *   npm run example -- fanout
 *
 * In your own project, import from 'troupe' instead of '../index.js'.
 */
import { createRuntime } from '../index.js';
import { countTodos } from './fanout-tools.js';
import { FILES, PROMPT, ROLES, script } from './fanout-task.js';
import { exampleModel, workspace } from './support.js';

const model = await exampleModel(script);
const project = await workspace(FILES);
const runtime = createRuntime({ ...model.options, tools: [countTodos] });
runtime.onEvent(({ msg }) => {
  if (msg.type === 'agent_spawned') console.log(`spawned ${msg.nickname ?? msg.agent_id} (${msg.role ?? 'no role'}): ${msg.prompt}`);
  if (msg.type === 'tool_call_end') console.log(`  ${msg.tool} -> ${msg.output.slice(0, 80)}`);
});
try {
  const result = await runtime.run({ prompt: PROMPT, cwd: project.dir, agent_roles: ROLES, approval_policy: 'never' });
  console.log(`\n${result.finalMessage ?? '(no final message)'}`);
  console.log(`\n${result.items.length} items, ${result.usage?.total_tokens ?? 0} tokens`);
} finally {
  await runtime.close();
  await project.dispose();
  await model.close();
}
