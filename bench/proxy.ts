// Proxy overhead: the same small JSON chat request sent straight to the backend, through a bare Node
// http.request pipe proxy, through http-proxy-3 alone and through the hub, each driven by the load
// generator (load.ts) in its own process. The hub is `hub serve` as an operator runs it, in a process of
// its own, with an API key required and its request log on (stdout, to a file, and hub.log); the pipe
// also runs in its own process; http-proxy-3 alone runs in the bench's process (idle otherwise while it
// is measured). Every request carries the key, whichever way it goes. The budgets compare the hub with
// the pipe measured in the same run.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createProxyServer } from 'http-proxy-3';
import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchScript, freePort, helper, serveHub, type Started } from './processes.js';

const run = promisify(execFile);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const KEY = 'bench-key-0123456789abcdef';
const MODEL = 'plain';

interface Load {
  rps: number;
  p50_ms: number;
  errors: number;
}

/** The median run by throughput and, separately, the median p50 (errors summed). */
function median(runs: Load[]): Load {
  const mid = <T>(xs: T[], by: (x: T) => number) => [...xs].sort((a, b) => by(a) - by(b))[Math.floor(xs.length / 2)];
  return { rps: mid(runs, (x) => x.rps).rps, p50_ms: mid(runs, (x) => x.p50_ms).p50_ms, errors: runs.reduce((n, x) => n + x.errors, 0) };
}

export async function proxyBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-proxy-'));
  // A port the system says is free now, for the model's backend: the figures must come from this one.
  const port = await freePort();
  const backend = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'hub.yaml'), `listen: { port: 0 }\nstate_dir: ${dir}\nauth: { api_keys: [${KEY}] }\nmodels:\n` +
    `  ${MODEL}: { backend: demo, port: ${port}, preload: true, cmd: "\${HUB} demo-model --port \${PORT} --model \${MODEL} --max-tokens 1" }\n`);
  const pipeAgent = new Agent({ keepAlive: true });
  // The ceiling the hub's proxy library sets: http-proxy-3 alone, keep-alive, nothing else around it.
  const library = createProxyServer({ target: backend, agent: pipeAgent });
  const alone = createServer((req, res) => library.web(req, res, {}, () => res.destroy()));
  const started: Started[] = [];
  try {
    const hub = await serveHub(join(dir, 'hub.yaml'));
    started.push(hub);
    const pipe = await helper('pipe-proxy.js', [backend]);
    started.push(pipe);
    // The model is preloaded: its backend answers once it is up (30 s at most).
    for (let tries = 0; !(await servesModel(backend)); tries++) {
      if (tries > 300) throw new Error(`the ${MODEL} model's backend at ${backend} did not come up`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise<void>((r) => alone.listen(0, '127.0.0.1', r));
    const aloneUrl = `http://127.0.0.1:${(alone.address() as AddressInfo).port}`;
    await measure(hub.origin, backend, `http://127.0.0.1:${pipe.port}`, aloneUrl);
  } finally {
    alone.close();
    pipeAgent.destroy();
    for (const p of started.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether the server at `base` is up and is the demo backend of MODEL (not some other server). */
async function servesModel(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/v1/models`);
    return res.ok && ((await res.json()) as { data?: { id: string }[] }).data?.some((m) => m.id === MODEL) === true;
  } catch {
    return false;
  }
}

async function measure(hubOrigin: string, backend: string, bareUrl: string, aloneUrl: string): Promise<void> {
  const model = MODEL;
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
  const load = async (base: string, connections: number, seconds = SECONDS): Promise<Load> => {
    const { stdout } = await run(process.execPath, [benchScript('load.js'), `${base}/v1/chat/completions`, String(connections), String(seconds), body, KEY]);
    return JSON.parse(stdout) as Load;
  };
  const fmt = (x: Load) => `${x.rps.toFixed(0).padStart(6)} req/s  p50 ${x.p50_ms.toFixed(2)} ms${x.errors ? `  (${x.errors} errors)` : ''}`;
  const over = (bad: boolean) => (bad ? ': OVER BUDGET' : '');

  // This machine's speed drifts from second to second (other work, the host): one run of each would
  // compare a fast moment with a slow one. The pipe, the library and the hub take turns, ROUNDS times,
  // and each figure is the median of its rounds.
  console.log(`proxy overhead, small JSON chat request, ${ROUNDS} rounds of ${SECONDS}s per figure, medians (load generator in its own process)`);
  // Each is warmed first, so that no figure is of code V8 has not optimized yet (the hub's first few
  // thousand requests ran ~2x slower than its later ones, and after 5,000 V8 was still optimizing and
  // deoptimizing its path: --trace-opt --trace-deopt printed ~120 lines in the next 2 s at one connection).
  for (const base of [backend, bareUrl, aloneUrl, hubOrigin]) await load(base, 32, 3);
  for (const connections of [1, 32]) {
    const direct = await load(backend, connections);
    const runs: Record<'pipe' | 'alone' | 'hub', Load[]> = { pipe: [], alone: [], hub: [] };
    for (let round = 0; round < ROUNDS; round++) {
      runs.pipe.push(await load(bareUrl, connections));
      runs.alone.push(await load(aloneUrl, connections));
      runs.hub.push(await load(hubOrigin, connections));
    }
    const [pipe, proxyAlone, viaHub] = [median(runs.pipe), median(runs.alone), median(runs.hub)];
    console.log(`  ${String(connections).padStart(2)} conn  direct ${fmt(direct)} | bare pipe ${fmt(pipe)} | http-proxy-3 alone ${fmt(proxyAlone)} | hub ${fmt(viaHub)}`);
    console.log(`          hub throughput per round ${runs.hub.map((x) => x.rps.toFixed(0)).join(' ')}, pipe ${runs.pipe.map((x) => x.rps.toFixed(0)).join(' ')}`);
    console.log(`          http-proxy-3 alone/bare throughput ${(proxyAlone.rps / pipe.rps).toFixed(2)}x (the library's own ceiling)`);
    const ratio = viaHub.rps / pipe.rps;
    const added = viaHub.p50_ms - pipe.p50_ms;
    if (connections === 1) console.log(`          hub p50 minus the pipe's ${added.toFixed(2)} ms (budget <= 0.15 ms${over(added > 0.15)})   hub/bare throughput ${ratio.toFixed(2)}x`);
    else console.log(`          hub/bare throughput ${ratio.toFixed(2)}x (budget >= 0.7x${over(ratio < 0.7)}, aim 0.9x)   hub p50 minus the pipe's ${added.toFixed(2)} ms`);
  }
}
