import { createRuntime } from './dist/actors/runtime.js';
import { ResponsesModelClient } from './dist/actors/model/responses-client.js';
import { AgentSupervisor } from './dist/actors/agents/supervisor.js';
import { performance } from 'node:perf_hooks';
import { mkdtempSync } from 'node:fs';
let T0 = performance.now();
const log = (...a) => console.log((performance.now() - T0).toFixed(1).padStart(7), ...a);
const orig = ResponsesModelClient.prototype.stream;
ResponsesModelClient.prototype.stream = async function* (prompt, signal) {
  const parent = JSON.stringify(prompt.input).includes('PARENT');
  if (parent) log('stream start');
  let n = 0;
  for await (const ev of orig.call(this, prompt, signal)) { if (parent && ev.type === 'output_item_done') { n++; if (n === 1 || n === 50) log('item', n); } if (parent && ev.type === 'completed') log('completed'); yield ev; }
};
const origSpawn = AgentSupervisor.prototype.spawn;
let ns = 0;
AgentSupervisor.prototype.spawn = async function (...a) { const k = ++ns; if (k === 1 || k === 50) log('spawn start', k); const r = await origSpawn.apply(this, a); if (k === 1 || k === 50) log('spawn done', k); return r; };
const home = mkdtempSync('/tmp/probe-');
const rt = createRuntime({ baseURL: 'http://127.0.0.1:45991/v1', apiKey: 'k', home, cwd: home, model: 'm' });
const s = await rt.newSession({ approval_policy: 'never', agent_max_threads: 50 });
T0 = performance.now();
rt.onEvent((e) => { if (e.msg.type === 'session_configured') { ns > 0 && (globalThis.c = (globalThis.c ?? 0) + 1) && (globalThis.c === 1 || globalThis.c === 50) && log('configured', globalThis.c); } });
await s.submit({ type: 'user_turn', items: [{ type: 'text', text: 'PARENT go' }] });
await new Promise((r) => setTimeout(r, 1500));
await rt.close();
