import { createRuntime } from './dist/actors/runtime.js';
import { performance } from 'node:perf_hooks';
import { mkdtempSync } from 'node:fs';
const home = mkdtempSync('/tmp/probe-');
const rt = createRuntime({ baseURL: 'http://127.0.0.1:45988/v1', apiKey: 'k', home, cwd: home, model: 'm' });
async function fan(marker, n, trace) {
  const s = await rt.newSession({ approval_policy: 'never', agent_max_threads: n });
  const marks = {}; let t0 = performance.now(); let done;
  const p = new Promise((r) => (done = r)); let c = 0;
  const stop = rt.onEvent((e) => { const k = (e.session_id === s.id ? 'P:' : 'C:') + e.msg.type + (e.msg.type === 'agent_status' ? ':' + e.msg.status : ''); const t = performance.now() - t0; marks[k] ??= [t, 0, 0]; marks[k][1] = t; marks[k][2]++; if (e.session_id === s.id && e.msg.type === 'agent_status' && e.msg.status === 'completed' && ++c === n) done(); });
  await s.submit({ type: 'user_turn', items: [{ type: 'text', text: marker + ' go' }] });
  await p; stop();
  if (trace) for (const [k, [a, b, n]] of Object.entries(marks).sort((x, y) => x[1][0] - y[1][0])) console.log(k.padEnd(36), a.toFixed(0).padStart(6), b.toFixed(0).padStart(6), n);
  await s.shutdown();
}
await fan('WARM', 5, false);
await fan('PARENT', 50, true);
await rt.close();
