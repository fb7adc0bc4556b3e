// A client in its own process that sends large request bodies at once, so that a test measuring the
// hub (its event loop, its memory) measures the hub and not the client. Run as
// `node uploader.js '<json Plan>'`; prints one JSON line: the Outcome of every request, in order.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';

export interface Upload {
  path: string;
  /** image: a chat request with a base64 image; empties: {"model", "input":[{},{},…]}; array: a top-level [{},{},…]. */
  kind: 'image' | 'empties' | 'array';
  model: string;
  /** Approximate body size in MiB. */
  mib: number;
  /** Send all but the last byte, then wait for whatever the hub does. */
  withholdLast?: boolean;
}

export interface Plan {
  origin: string;
  uploads: Upload[];
  /** Also time GET /health every 20 ms while the uploads run. */
  health?: boolean;
}

export interface Report {
  outcomes: Outcome[];
  /** How many /health answers came back, and the slowest, in ms. */
  health: { answers: number; slowestMs: number };
}

export interface Outcome {
  status?: number;
  code?: string;
  /** What the hub answered (JSON) when it is small. */
  body?: unknown;
  /** A client-side failure (reset, EPIPE, …) instead of an answer. */
  error?: string;
  ms: number;
  /** withholdLast: from when all but the last byte had been sent to the answer (undefined: answered before that). */
  quietMs?: number;
}

const MiB = 1024 * 1024;
const built = new Map<string, Buffer>();

function bodyOf(u: Upload): Buffer {
  const key = `${u.kind}/${u.model}/${u.mib}`;
  let body = built.get(key);
  if (!body) {
    const n = Math.round(u.mib * MiB);
    if (u.kind === 'image') {
      const base64 = Buffer.alloc(Math.floor(((n - 300) * 3) / 4), 7).toString('base64');
      body = Buffer.from(JSON.stringify({ model: u.model, max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${base64}` } }] }] }));
    } else {
      const items = `${'{},'.repeat(Math.floor((n - 40) / 3))}{}`;
      body = Buffer.from(u.kind === 'array' ? `[${items}]` : `{"model":${JSON.stringify(u.model)},"input":[${items}]}`);
    }
    built.set(key, body);
  }
  return body;
}

function upload(origin: string, u: Upload): Promise<Outcome> {
  const body = bodyOf(u);
  const started = performance.now();
  let quietSince: number | undefined;
  return new Promise((resolve) => {
    const done = (o: Omit<Outcome, 'ms'>) => resolve({
      ...o,
      ms: Math.round(performance.now() - started),
      ...(quietSince === undefined ? {} : { quietMs: Math.round(performance.now() - quietSince) }),
    });
    const req = request(`${origin}${u.path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => { if (chunks.length < 64) chunks.push(c); });
      res.on('end', () => {
        let parsed: any;
        try { parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { /* not JSON */ }
        done({ status: res.statusCode, code: parsed?.error?.code, body: parsed });
      });
      res.on('error', (e) => done({ status: res.statusCode, error: e.message }));
    });
    req.on('error', (e) => done({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    if (u.withholdLast) req.write(body.subarray(0, body.length - 1), () => { quietSince = performance.now(); });
    else req.end(body);
  });
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2]) as Plan;
  for (const u of plan.uploads) bodyOf(u);
  // Building 30 MiB bodies is heavy: the caller may wait for it to be over before it measures.
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  process.stdin.pause();
  let running = true;
  const health = { answers: 0, slowestMs: 0 };
  const pinger = (async () => {
    while (running && plan.health) {
      const started = performance.now();
      const ok = await fetch(`${plan.origin}/health`).then((r) => r.ok, () => false);
      if (ok) health.answers++;
      health.slowestMs = Math.max(health.slowestMs, Math.round(performance.now() - started));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const outcomes = await Promise.all(plan.uploads.map((u) => upload(plan.origin, u)));
  running = false;
  await pinger;
  const report: Report = { outcomes, health };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Runs the plan in a new process: `ready` resolves once its bodies are built, `go()` sends them. */
export function startUploads(plan: Plan): { ready: Promise<void>; go(): Promise<Report> } {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify(plan)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => { onReady = resolve; });
  const finished = new Promise<Report>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.startsWith('ready\n')) onReady();
    });
    child.once('close', (code) => { // 'close': its whole output has been read by then
      const result = out.split('\n')[1];
      if (code === 0 && result) resolve(JSON.parse(result) as Report);
      else reject(new Error(`the uploader exited with ${code}: ${out}`));
    });
  });
  return { ready, go: () => { child.stdin!.end('go\n'); return finished; } };
}

/** Runs the plan in a new process, at once. */
export async function runUploads(plan: Plan): Promise<Outcome[]> {
  const run = startUploads(plan);
  await run.ready;
  return (await run.go()).outcomes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) void main();
