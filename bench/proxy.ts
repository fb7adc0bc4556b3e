// Proxy overhead: the same small JSON chat request sent straight to the backend, through a bare Node
// http.request pipe proxy, and through the hub, each driven by the load generator (load.ts) in its own
// process. The budgets compare the hub with the pipe measured in the same run.
import { execFile } from 'node:child_process';
import { createProxyServer } from 'http-proxy-3';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const loadScript = fileURLToPath(new URL('./load.js', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

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

/** `hubOrigin` serves `model`, whose backend listens at `backend`. */
export async function proxyBench(hubOrigin: string, backend: string, model: string): Promise<void> {
  const pipeAgent = new Agent({ keepAlive: true });
  const bare = createServer((req, res) => {
    const up = request(`${backend}${req.url}`, { method: req.method, headers: req.headers, agent: pipeAgent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  // The ceiling the hub's proxy library sets: http-proxy-3 alone, keep-alive, nothing else around it.
  const library = createProxyServer({ target: backend, agent: pipeAgent });
  const alone = createServer((req, res) => library.web(req, res, {}, () => res.destroy()));
  const url = async (server: typeof bare) => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const bareUrl = await url(bare);
  const aloneUrl = await url(alone);
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
  const load = async (base: string, connections: number, seconds = SECONDS): Promise<Load> => {
    const { stdout } = await run(process.execPath, [loadScript, `${base}/v1/chat/completions`, String(connections), String(seconds), body]);
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
  bare.close();
  alone.close();
  pipeAgent.destroy();
}
