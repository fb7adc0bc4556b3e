// Streaming through the hub: STREAMS concurrent SSE answers at 20 chunks a second each, from a
// backend that stamps every chunk with the time it wrote it, read by a reader in its own process —
// straight from the backend, through a bare Node pipe proxy and through `hub serve` (each its own process).
// Figures: how much later chunks arrive through the hub than straight (p99, budget ≤ 1 ms), and the
// hub's CPU time for the run against the pipe's (budget ≤ 1.5×). Beside each reading, how many of the
// machine's cores the backend, the reader and the proxy kept busy: where they add up to about all of
// them, chunks wait for a core in any proxy, and the tail says more about the machine than the proxy.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchScript, helper, serveHub, type HubProcess, type Started } from './processes.js';

const run = promisify(execFile);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 1000);
const RATE = 20;
const CHUNKS = Number(process.env.BENCH_STREAM_CHUNKS ?? 100);

interface Reading {
  streams: number;
  chunks: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  errors: number;
  /** CPU seconds the reader used. */
  cpu_s: number;
}

/** A reading, with how busy the machine was meanwhile: CPU seconds of each process in the path. */
interface Measured extends Reading {
  wall_s: number;
  backend_s: number;
  proxy_s: number;
}

/** /proc counts CPU time in clock ticks, as many a second as the system says. */
const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S; // utime, stime
}

/** Reads every stream from url; proxyCpu is the CPU seconds so far of the proxy in between, if any. */
async function read(url: string, backend: ChildProcess, proxyCpu: () => number = () => 0): Promise<Measured> {
  const [wall0, backend0, proxy0] = [performance.now(), cpuOf(backend.pid!), proxyCpu()];
  const { stdout } = await run(process.execPath, [benchScript('sse-load.js'), url, String(STREAMS)], { maxBuffer: 1 << 20 });
  const reading = JSON.parse(stdout) as Reading;
  return { ...reading, wall_s: (performance.now() - wall0) / 1000, backend_s: cpuOf(backend.pid!) - backend0, proxy_s: proxyCpu() - proxy0 };
}

export async function streamsBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-streams-'));
  const started: Started[] = [];
  try {
    const backend = await helper('sse-backend.js', [String(RATE), String(CHUNKS)]);
    started.push(backend);
    const backendUrl = `http://127.0.0.1:${backend.port}`;
    const pipe = await helper('pipe-proxy.js', [backendUrl]);
    started.push(pipe);
    writeFileSync(join(dir, 'hub.yaml'), `listen: { port: 0 }\nstate_dir: ${dir}\nmodels:\n  sse: { backend: openai, url: "${backendUrl}" }\n`);
    // In a process of its own, as the pipe is: the figures are the two processes' CPU time and delays,
    // with nothing else in the hub's heap (in the bench's own process, the earlier figures' hub was).
    const hub: HubProcess = await serveHub(join(dir, 'hub.yaml'));
    started.push(hub);
    const path = '/v1/chat/completions';
    // Each path once with 10 chunks per stream first, so that the figures are of code V8 has compiled
    // (a proxy's first thousand requests and ten thousand chunks are also its slowest).
    for (const origin of [backendUrl, `http://127.0.0.1:${pipe.port}`, hub.origin]) await read(`${origin}${path}?chunks=10`, backend.child);
    const direct = await read(`${backendUrl}${path}`, backend.child);
    const piped = await read(`http://127.0.0.1:${pipe.port}${path}`, backend.child, () => cpuOf(pipe.child.pid!));
    const hubbed = await read(`${hub.origin}${path}`, backend.child, () => cpuOf(hub.child.pid!));
    const line = (name: string, r: Measured) =>
      `  ${name.padEnd(22)} chunk delay p50 ${r.p50_ms.toFixed(2)} ms   p99 ${r.p99_ms.toFixed(2)} ms   max ${r.max_ms.toFixed(1)} ms   (${r.chunks} chunks, ${r.errors} errors)\n` +
      // How busy the machine's cores were: a proxy that is one of three busy processes may wait for one.
      `  ${''.padEnd(22)} cores busy ${((r.backend_s + r.cpu_s + r.proxy_s) / r.wall_s).toFixed(2)} of ${availableParallelism()}: backend ${r.backend_s.toFixed(2)} s, reader ${r.cpu_s.toFixed(2)} s` +
      `${r.proxy_s ? `, proxy ${r.proxy_s.toFixed(2)} s` : ''} of CPU in ${r.wall_s.toFixed(2)} s`;
    console.log(`streaming: ${STREAMS} concurrent SSE answers, ${RATE} chunks/s each, ${CHUNKS} chunks per answer`);
    console.log(line('straight to backend', direct));
    console.log(line('bare pipe proxy', piped));
    console.log(line('through the hub', hubbed));
    const added = hubbed.p99_ms - direct.p99_ms;
    console.log(`  p99 delay added by the hub (hub − straight)    ${added.toFixed(2)} ms   (budget <= 1 ms${added > 1 ? ': OVER BUDGET' : ''}); the pipe adds ${(piped.p99_ms - direct.p99_ms).toFixed(2)} ms`);
    const ratio = hubbed.proxy_s / piped.proxy_s;
    console.log(`  CPU for the run: hub ${hubbed.proxy_s.toFixed(2)} s, bare pipe ${piped.proxy_s.toFixed(2)} s   ratio ${ratio.toFixed(2)}x   (budget <= 1.5x${ratio > 1.5 ? ': OVER BUDGET' : ''})`);
  } finally {
    for (const p of started.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
