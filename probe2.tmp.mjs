import { createRuntime } from './dist/actors/runtime.js';
import { RolloutRecorder } from './dist/actors/rollout/index.js';
import { performance } from 'node:perf_hooks';
import { mkdtempSync } from 'node:fs';
if (process.argv[2] === 'norollout') {
  RolloutRecorder.create = async (path) => ({ path, record() {}, async flush() {}, async close() {} });
}
const home = mkdtempSync('/tmp/probe-');
const rt = createRuntime({ baseURL: 'http://127.0.0.1:45994/v1', apiKey: 'k', home, cwd: home, model: 'm' });
const s = await rt.newSession({ approval_policy: 'never', agent_max_threads: 50 });
let t0, tc, tdone, n = 0;
await new Promise((resolve) => {
  rt.onEvent((e) => { const t = performance.now(); t0 ??= t; if (e.msg.type === 'session_configured' && !tc) tc = t; if (e.session_id === s.id && e.msg.type === 'agent_status' && e.msg.status === 'completed' && ++n === 50) { tdone = t; resolve(); } });
  s.submit({ type: 'user_turn', items: [{ type: 'text', text: 'PARENT go' }] });
});
console.log(process.argv[2], 'first configured', (tc - t0).toFixed(0), 'all done', (tdone - t0).toFixed(0));
await rt.close();
