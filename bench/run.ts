// `npm run bench`: figures for SPEC §8 measured in one run against baselines from the same run.
// Today: cold-start overhead (first byte minus the backend's own time to ready), the 1,000-request
// cold burst, model swaps in a max_loaded: 1 group by sleep/wake vs by restart, proxy
// throughput/latency against a bare Node http.request pipe proxy and the backend itself, and the
// contention benchmark (contention.ts: agents over more models than fit, swap_hold 0 vs default), and
// the dashboard with 60 models in headless chromium (dashboard.ts: page ready, live update bytes).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCommand } from '../lib/config/command.js';
import { loadConfig } from '../lib/config/load.js';
import { HUB_COMMAND } from '../lib/paths.js';
import { startHub } from '../lib/hub.js';
import { silentLogger } from '../lib/log.js';
import { contentionBench } from './contention.js';
import { bodiesBench } from './bodies.js';
import { proxyBench } from './proxy.js';
import { scaleBench } from './scale.js';
import { streamsBench } from './streams.js';

// BENCH_ONLY=contention runs just the contention figures (they take a minute or two); BENCH_ONLY=proxy
// just the proxy overhead; BENCH_ONLY=bodies the 30 MiB uploads; BENCH_ONLY=scale the 500-model figures;
// BENCH_ONLY=startup the cold start, cold burst and swap figures; BENCH_ONLY=streams the 1,000 SSE streams;
// BENCH_ONLY=dashboard the dashboard's page load and live updates with 60 models (headless chromium).
// BENCH_ONLY=proxy,bodies runs both, in that order, as the full run does.
if (process.env.BENCH_ONLY === 'contention') {
  await contentionBench();
  process.exit(0);
}
if (process.env.BENCH_ONLY === 'streams') {
  await streamsBench();
  process.exit(0);
}
// The dashboard figures drive Chromium through playwright-core, whose modules would otherwise sit in
// this process's heap (about 20 MB, more than the hub's own) through the proxy and upload figures,
// which measure this process as the hub: its garbage collections would mark them all.
const dashboardBench = async () => (await import('./dashboard.js')).dashboardBench();
if (process.env.BENCH_ONLY === 'dashboard') {
  await dashboardBench();
  process.exit(0);
}
if (process.env.BENCH_ONLY === 'scale') {
  await scaleBench();
  process.exit(0);
}

const RUNS = Number(process.env.BENCH_RUNS ?? 15);

const dir = mkdtempSync(join(tmpdir(), 'modelhub-bench-'));
const demo = (flags: string) => `\${HUB} demo-model --port \${PORT} --model \${MODEL} ${flags}`;
// A random start below the ephemeral range (32768+), where outgoing connections would hold ports at random.
writeFileSync(
  join(dir, 'hub.yaml'),
  // max_body_total: ten 30 MiB uploads at once (bodies.ts).
  `listen: { port: 0 }\nstate_dir: ${dir}\nlimits: { max_body_total: 512MiB }\nports: { start: ${20000 + Math.floor(Math.random() * 12000)} }\nmodels:\n` +
    `  cold: { backend: demo, cmd: "${demo('--load-time 200ms')}" }\n` +
    `  burst: { backend: demo, cmd: "${demo('--load-time 200ms --max-tokens 4')}" }\n` +
    `  plain: { backend: demo, cmd: "${demo('--max-tokens 1')}" }\n` +
    // The same backend twice per group: with memory control (swap = sleep + wake) and without (swap =
    // stop + spawn). Wake time = load time, so the difference is what a restart costs on top.
    `  sleep-a: { backend: demo, group: sleepers, cmd: "${demo('--load-time 300ms --memory 256MiB')}" }\n` +
    `  sleep-b: { backend: demo, group: sleepers, cmd: "${demo('--load-time 300ms --memory 256MiB')}" }\n` +
    `  restart-a: { backend: openai, group: restarters, cmd: "${demo('--load-time 300ms --memory 256MiB')}" }\n` +
    `  restart-b: { backend: openai, group: restarters, cmd: "${demo('--load-time 300ms --memory 256MiB')}" }\n` +
    `groups:\n  sleepers: { max_loaded: 1 }\n  restarters: { max_loaded: 1 }\n`,
);
const hub = await startHub(loadConfig(join(dir, 'hub.yaml')), { log: silentLogger() });
const only = new Set(process.env.BENCH_ONLY?.split(','));
if (only.size && [...only].every((part) => part === 'proxy' || part === 'bodies')) {
  if (only.has('proxy')) await proxyBench();
  if (only.has('bodies')) {
    await hub.controller.start('plain');
    await bodiesBench(hub.origin, 'plain');
  }
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
let burstSpawns = 0;
hub.controller.on('transition', (t) => { if (t.model === 'burst' && t.to === 'starting') burstSpawns++; });
const body = JSON.stringify({ model: 'cold', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });

/** Milliseconds from sending the request to its first response byte. */
function timeToFirstByte(payload: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(`${hub.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.once('data', () => resolve(performance.now() - t0));
      res.resume();
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const stats = async () => (await (await fetch(`${hub.origin}/upstream/cold/demo/stats`)).json()) as { started_at: number; ready_at: number; last_answer_ms: number };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

const overhead: number[] = [];
const ttfb: number[] = [];
const spawnBaseline: number[] = [];
for (let i = 0; i < RUNS; i++) {
  await hub.controller.stop('cold');
  const first = await timeToFirstByte(body);
  const s = await stats();
  // The backend's own time: to ready from its process start, then to answer (a fresh Node process
  // answers its first request slowly: compiling its handlers is the backend's cost, not the hub's).
  const backendOwn = s.ready_at - s.started_at + s.last_answer_ms;
  ttfb.push(first);
  overhead.push(first - backendOwn);
  spawnBaseline.push(await bareSpawn(hub.controller.get('cold').config.argv!));
}

/**
 * The OS's share, measured the same way without the hub: a bare child_process.spawn of the same
 * command, from the call to the new process's own time origin (fork + exec, which no hub can avoid).
 */
async function bareSpawn(argv: readonly string[]): Promise<number> {
  const port = 20000 + Math.floor(Math.random() * 12000);
  const [cmd, ...args] = resolveCommand(argv, { port, model: 'baseline', hub: HUB_COMMAND });
  const called = performance.timeOrigin + performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('ready on port') && resolve()));
  const s = (await (await fetch(`http://127.0.0.1:${port}/demo/stats`)).json()) as { started_at: number };
  child.kill();
  await new Promise((resolve) => child.once('exit', resolve));
  return s.started_at - called;
}

const t0 = performance.now();
const burst = await Promise.all(
  Array.from({ length: 1000 }, () =>
    fetch(`${hub.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body.replace('"cold"', '"burst"') }).then((r) => r.status),
  ),
);
const burstMs = performance.now() - t0;

/**
 * Milliseconds for a whole request that makes the group swap from the other model to `model`. Sent
 * with node:http over a kept-alive connection, as the cold start's are: fetch's own cost per request
 * (a millisecond or more here) is the client's, not the hub's.
 */
const swapAgent = new Agent({ keepAlive: true });
function swap(model: string): Promise<number> {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(`${hub.origin}/v1/chat/completions`, { method: 'POST', agent: swapAgent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume(); // the previous request must be over, or the swap waits for it
      res.on('end', () => resolve(performance.now() - t0));
    });
    req.on('error', reject);
    req.end(body);
  });
}
/** The demo backend's own figures, asked directly (not through the hub, which would count as traffic). */
const demoStats = async (model: string) => (await (await fetch(`${hub.controller.get(model).target}/demo/stats`)).json()) as { last_sleep_ms: number; last_wake_ms: number; last_answer_ms: number };
const sleepSwaps: number[] = [];
const sleepShare: number[] = []; // the swap minus the backends' own sleep and wake time
const restartSwaps: number[] = [];
// Every model started once first: the samples are swaps, not first starts.
for (const model of ['sleep-a', 'sleep-b', 'restart-a', 'restart-b', 'sleep-a', 'restart-a']) await swap(model);
for (let i = 0; i < Math.max(5, Math.floor(RUNS / 2)); i++) {
  const [to, from] = i % 2 ? ['sleep-a', 'sleep-b'] : ['sleep-b', 'sleep-a'];
  const ms = await swap(to);
  sleepSwaps.push(ms);
  const woken = await demoStats(to);
  sleepShare.push(ms - (await demoStats(from)).last_sleep_ms - woken.last_wake_ms - woken.last_answer_ms);
  restartSwaps.push(await swap(i % 2 ? 'restart-a' : 'restart-b'));
}

console.log(`cold start, demo backend with 200 ms load time, ${RUNS} runs`);
console.log(`  time to first byte            p50 ${median(ttfb).toFixed(1)} ms   p90 ${p(ttfb, 0.9).toFixed(1)} ms`);
const hubShare = median(overhead) - median(spawnBaseline);
console.log(`  overhead vs backend's own time to ready and to answer (incl. OS spawn)   p50 ${median(overhead).toFixed(1)} ms   p90 ${p(overhead, 0.9).toFixed(1)} ms`);
console.log(`  OS spawn alone (bare spawn to the child's time origin)  p50 ${median(spawnBaseline).toFixed(1)} ms   p90 ${p(spawnBaseline, 0.9).toFixed(1)} ms`);
console.log(`  the hub's share (overhead minus OS spawn, p50s)         ${hubShare.toFixed(1)} ms   (budget p50 <= 10 ms${hubShare > 10 ? ': OVER BUDGET' : ''})`);
console.log(`cold burst: 1000 concurrent requests, ${burst.filter((s) => s === 200).length} answered 200 in ${burstMs.toFixed(0)} ms, ${burstSpawns} spawn(s)`);

console.log(`  samples (ms): sleep/wake ${sleepSwaps.map(Math.round).join(" ")} · restart ${restartSwaps.map(Math.round).join(" ")}`);
console.log(`swap in a max_loaded: 1 group (demo backend, 256 MiB, 300 ms load/wake), ${sleepSwaps.length} swaps each`);
console.log(`  by sleep/wake (memory control)  p50 ${median(sleepSwaps).toFixed(1)} ms   p90 ${p(sleepSwaps, 0.9).toFixed(1)} ms`);
console.log(`    minus the backends' own sleep + wake + answer   p50 ${median(sleepShare).toFixed(1)} ms   p90 ${p(sleepShare, 0.9).toFixed(1)} ms   (budget p50 <= 20 ms${median(sleepShare) > 20 ? ': OVER BUDGET' : ''})`);
console.log(`  by stop/restart                 p50 ${median(restartSwaps).toFixed(1)} ms   p90 ${p(restartSwaps, 0.9).toFixed(1)} ms   (ratio ${(median(restartSwaps) / median(sleepSwaps)).toFixed(2)}x)`);

if (process.env.BENCH_ONLY === 'startup') {
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
await proxyBench();
await hub.controller.start('plain');
await bodiesBench(hub.origin, 'plain');
await streamsBench();

await hub.close();
rmSync(dir, { recursive: true, force: true });
await scaleBench();
await dashboardBench();
await contentionBench();
