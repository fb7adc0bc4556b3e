// A small closed-loop load generator, run as its own process so it does not share an event loop
// with what it measures: `node load.js URL CONNECTIONS SECONDS BODY [KEY]` → JSON {requests, rps, p50_ms,
// errors}. With KEY, every request carries `Authorization: Bearer KEY`.
import { Agent, request } from 'node:http';

const [url, connections, seconds, body, key] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), process.argv[5], process.argv[6]];
const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(key ? { authorization: `Bearer ${key}` } : {}) };
const agent = new Agent({ keepAlive: true, maxSockets: connections });
const latencies: number[] = [];
let errors = 0;
const end = performance.now() + seconds * 1000;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = request(url, { method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) latencies.push(performance.now() - t0);
        else errors++;
        resolve();
      });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end(body);
  });
}

async function worker(): Promise<void> {
  while (performance.now() < end) await once();
}

await Promise.all(Array.from({ length: connections }, worker));
latencies.sort((a, b) => a - b);
process.stdout.write(JSON.stringify({ requests: latencies.length, rps: latencies.length / seconds, p50_ms: latencies[Math.floor(latencies.length / 2)] ?? null, errors }));
agent.destroy();
