// Streaming through the hub: STREAMS concurrent SSE answers at 20 chunks a second each, from a
// backend that stamps every chunk with the time it wrote it, read by a reader in its own process —
// straight from the backend, through a bare Node pipe proxy (its own process) and through the hub.
// Figures: how much later chunks arrive through the hub than straight (p99, budget ≤ 1 ms), and the
// hub's CPU time for the run against the pipe's (budget ≤ 1.5×).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadConfig } from '../lib/config/load.js';
import { startHub } from '../lib/hub.js';
import { silentLogger } from '../lib/log.js';

const run = promisify(execFile);
const script = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));
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
}

/** A helper process that prints its port on its first line. */
async function server(name: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [script(name), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    child.once('exit', (code) => reject(new Error(`${name} exited (${code})`)));
  });
  return { child, port };
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

async function read(url: string): Promise<Reading> {
  const { stdout } = await run(process.execPath, [script('sse-load.js'), url, String(STREAMS)], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Reading;
}

export async function streamsBench(): Promise<void> {
  const backend = await server('sse-backend.js', [String(RATE), String(CHUNKS)]);
  const backendUrl = `http://127.0.0.1:${backend.port}`;
  const pipe = await server('pipe-proxy.js', [backendUrl]);
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-streams-'));
  writeFileSync(join(dir, 'hub.yaml'), `listen: { port: 0 }\nstate_dir: ${dir}\nmodels:\n  sse: { backend: openai, url: "${backendUrl}" }\n`);
  const hub = await startHub(loadConfig(join(dir, 'hub.yaml')), { log: silentLogger() });
  try {
    const path = '/v1/chat/completions';
    const direct = await read(`${backendUrl}${path}`);
    const pipeCpu0 = cpuOf(pipe.child.pid!);
    const piped = await read(`http://127.0.0.1:${pipe.port}${path}`);
    const pipeCpu = cpuOf(pipe.child.pid!) - pipeCpu0;
    const hubCpu0 = process.cpuUsage();
    const hubbed = await read(`${hub.origin}${path}`);
    const used = process.cpuUsage(hubCpu0);
    const hubCpu = (used.user + used.system) / 1e6;
    const line = (name: string, r: Reading) =>
      `  ${name.padEnd(22)} chunk delay p50 ${r.p50_ms.toFixed(2)} ms   p99 ${r.p99_ms.toFixed(2)} ms   max ${r.max_ms.toFixed(1)} ms   (${r.chunks} chunks, ${r.errors} errors)`;
    console.log(`streaming: ${STREAMS} concurrent SSE answers, ${RATE} chunks/s each, ${CHUNKS} chunks per answer`);
    console.log(line('straight to backend', direct));
    console.log(line('bare pipe proxy', piped));
    console.log(line('through the hub', hubbed));
    const added = hubbed.p99_ms - direct.p99_ms;
    console.log(`  p99 delay added by the hub (hub − straight)    ${added.toFixed(2)} ms   (budget <= 1 ms${added > 1 ? ': OVER BUDGET' : ''}); the pipe adds ${(piped.p99_ms - direct.p99_ms).toFixed(2)} ms`);
    const ratio = hubCpu / pipeCpu;
    console.log(`  CPU for the run: hub ${hubCpu.toFixed(2)} s, bare pipe ${pipeCpu.toFixed(2)} s   ratio ${ratio.toFixed(2)}x   (budget <= 1.5x${ratio > 1.5 ? ': OVER BUDGET' : ''})`);
  } finally {
    await hub.close();
    backend.child.kill();
    pipe.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
