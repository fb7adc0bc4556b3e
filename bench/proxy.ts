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
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

interface Load {
  rps: number;
  p50_ms: number;
  errors: number;
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
  const load = async (base: string, connections: number): Promise<Load> => {
    const { stdout } = await run(process.execPath, [loadScript, `${base}/v1/chat/completions`, String(connections), String(SECONDS), body]);
    return JSON.parse(stdout) as Load;
  };
  const fmt = (x: Load) => `${x.rps.toFixed(0).padStart(6)} req/s  p50 ${x.p50_ms.toFixed(2)} ms${x.errors ? `  (${x.errors} errors)` : ''}`;
  const over = (bad: boolean) => (bad ? ': OVER BUDGET' : '');

  console.log(`proxy overhead, small JSON chat request, ${SECONDS}s per figure (load generator in its own process)`);
  for (const connections of [1, 32]) {
    const direct = await load(backend, connections);
    const pipe = await load(bareUrl, connections);
    const proxyAlone = await load(aloneUrl, connections);
    const viaHub = await load(hubOrigin, connections);
    console.log(`  ${String(connections).padStart(2)} conn  direct ${fmt(direct)} | bare pipe ${fmt(pipe)} | http-proxy-3 alone ${fmt(proxyAlone)} | hub ${fmt(viaHub)}`);
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
