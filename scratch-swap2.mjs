import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';
import { loadConfig } from './dist/lib/config/load.js';
import { startHub } from './dist/lib/hub.js';
import { silentLogger } from './dist/lib/log.js';
import { demoAdapter } from './dist/lib/backends/demo.js';
const dir = mkdtempSync(join(tmpdir(), 'swap-'));
const demo = (flags) => `\${HUB} demo-model --port \${PORT} --model \${MODEL} ${flags}`;
writeFileSync(join(dir, 'hub.yaml'), `listen: { port: 0 }\nstate_dir: ${dir}\nports: { start: ${20000 + Math.floor(Math.random() * 12000)} }\nmodels:\n` +
  `  sleep-a: { backend: demo, group: sleepers, cmd: "${demo('--load-time 300ms --memory 256MiB')}" }\n` +
  `  sleep-b: { backend: demo, group: sleepers, cmd: "${demo('--load-time 300ms --memory 256MiB')}" }\n` +
  `groups:\n  sleepers: { max_loaded: 1 }\n`);
const hub = await startHub(loadConfig(join(dir, 'hub.yaml')), { log: silentLogger() });
const T = () => performance.now();
let t0 = 0; const marks = [];
const mark = (what) => marks.push([what, T() - t0]);
const mem = demoAdapter.memory;
for (const op of ['unload', 'load', 'isLoaded']) { const f = mem[op]; mem[op] = async (...a) => { mark(op + '>'); try { return await f(...a); } finally { mark(op + '<'); } }; }
hub.controller.on('transition', (t) => mark(`${t.model.slice(-1)} ${t.axis[0]}:${t.to}`));
const agent = new Agent({ keepAlive: true });
const ask = (model) => new Promise((resolve) => {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
  const req = request(`${hub.origin}/v1/chat/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => { mark('head'); res.resume(); res.on('end', resolve); });
  req.end(body);
});
const stats = async (m) => (await (await fetch(`${hub.controller.get(m).target}/demo/stats`)).json());
for (const m of ['sleep-a', 'sleep-b', 'sleep-a']) await ask(m);
for (let i = 0; i < 4; i++) {
  const [to, from] = i % 2 ? ['sleep-a', 'sleep-b'] : ['sleep-b', 'sleep-a'];
  marks.length = 0; t0 = T(); await ask(to); const total = T() - t0;
  const w = await stats(to), f = await stats(from);
  console.log(`total ${total.toFixed(1)} sleep ${f.last_sleep_ms.toFixed(1)} wake ${w.last_wake_ms.toFixed(1)} answer ${w.last_answer_ms.toFixed(1)} share ${(total - f.last_sleep_ms - w.last_wake_ms - w.last_answer_ms).toFixed(1)}`);
  console.log('  ' + marks.map(([w, t]) => `${w}@${t.toFixed(1)}`).join(' '));
}
await hub.close(); process.exit(0);
