// The contention benchmark: K simulated agents over M models in a max_loaded: 1 group, each working
// in runs as agents do (after a request it stays with its model with probability 0.75, else moves to
// another), for a fixed number of requests, against demo backends with real load times. The same
// workload runs against a group with swap_hold: 0 (first come, first served) and one with the
// default swap_hold, in the same hub, one after the other. Two skewed mixes show starvation if there
// were any: one hot model plus an agent that only uses a rare one, and one agent that goes round-robin.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SWAP_HOLD, loadConfig } from '../lib/config/load.js';
import { startHub } from '../lib/hub.js';
import { silentLogger } from '../lib/log.js';
import { mulberry32 } from '../test/support/prng.js';

const K = 8;
const M = 4;
const LOAD = '500ms';
const SERVICE_TOKENS = 10; // at 100 tokens/s: 100 ms of service per request
const MAX_WAIT_S = 30;
const REQUESTS = Number(process.env.BENCH_CONTENTION_REQUESTS ?? 64);


type Chooser = (agent: number, previous: number | undefined, random: () => number) => number;

/** After a request an agent stays with its model with probability 0.75, else moves to another. */
const runs: Chooser = (_agent, previous, random) => {
  if (previous !== undefined && random() < 0.75) return previous;
  const others = [...Array(M).keys()].filter((m) => m !== previous);
  return others[Math.floor(random() * others.length)];
};
/** Agents 0–6 stay on model 0 (hot); agent 7 only ever uses model 3 (rare). */
const hotAndRare: Chooser = (agent) => (agent === K - 1 ? M - 1 : 0);
/** Agent 0 goes round-robin over every model; the others work in runs. */
const roundRobin: Chooser = (agent, previous, random) => (agent === 0 ? ((previous ?? -1) + 1) % M : runs(agent, previous, random));

const codes = new Map<string, number>();

interface Result {
  rps: number;
  swaps: number;
  waits: number[];
  errors: number;
}

export async function contentionBench(seed = Number(process.env.BENCH_SEED ?? Date.now() % 100_000)): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-contention-'));
  const demo = `\${HUB} demo-model --port \${PORT} --model \${MODEL} --load-time ${LOAD} --memory 64MiB --token-rate 100`;
  const models = (group: string) => Array.from({ length: M }, (_, i) => `  ${group}-${i}: { backend: demo, group: ${group}, idle: { unload_after: 0, stop_after: 0 }, cmd: "${demo}" }\n`).join('');
  writeFileSync(
    join(dir, 'hub.yaml'),
    `listen: { port: 0 }\nstate_dir: ${dir}\nports: { start: ${20000 + Math.floor(Math.random() * 12000)} }\n` +
      `groups:\n  fifo: { max_loaded: 1, swap_hold: 0, max_wait: ${MAX_WAIT_S}s }\n  held: { max_loaded: 1, max_wait: ${MAX_WAIT_S}s }\n` +
      `models:\n${models('fifo')}${models('held')}`,
  );
  const hub = await startHub(loadConfig(join(dir, 'hub.yaml')), { log: silentLogger() });
  const loads = new Map<string, number>();
  hub.controller.on('transition', (t) => {
    if (t.to === 'loading' || (t.axis === 'process' && t.to === 'starting')) loads.set(t.model, (loads.get(t.model) ?? 0) + 1);
  });
  // Start every backend once (the first start is not a swap), then leave them all asleep.
  for (const group of ['fifo', 'held']) for (let i = 0; i < M; i++) await hub.controller.start(`${group}-${i}`);
  for (const group of ['fifo', 'held']) for (let i = 0; i < M; i++) await hub.controller.unload(`${group}-${i}`);

  async function workload(group: string, choose: Chooser, caseSeed: number): Promise<Result> {
    const random = mulberry32(caseSeed);
    const before = [...loads.entries()].filter(([m]) => m.startsWith(`${group}-`)).reduce((n, [, c]) => n + c, 0);
    let issued = 0;
    let errors = 0;
    const waits: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: K }, async (_, agent) => {
        let model: number | undefined;
        while (issued < REQUESTS) {
          issued++;
          model = choose(agent, model, random);
          const res = await fetch(`${hub.origin}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: `${group}-${model}`, messages: [{ role: 'user', content: 'hi' }], max_tokens: SERVICE_TOKENS }),
          });
          await res.text();
          if (res.status !== 200) {
            errors++;
            codes.set(String(res.status), (codes.get(String(res.status)) ?? 0) + 1);
          }
          waits.push(Number(res.headers.get('x-hub-queue-ms') ?? 0) + Number(res.headers.get('x-hub-cold-start-ms') ?? 0));
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const after = [...loads.entries()].filter(([m]) => m.startsWith(`${group}-`)).reduce((n, [, c]) => n + c, 0);
    await Promise.all(Array.from({ length: M }, (_, i) => hub.controller.unload(`${group}-${i}`)));
    return { rps: REQUESTS / seconds, swaps: after - before, waits, errors };
  }

  const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? 0;
  const line = (label: string, r: Result) =>
    `  ${label.padEnd(22)} ${r.rps.toFixed(2).padStart(6)} req/s  ${String(r.swaps).padStart(3)} swaps (${((100 * r.swaps) / REQUESTS).toFixed(0)} per 100)  wait p50 ${pct(r.waits, 0.5).toFixed(0)} ms  p99 ${pct(r.waits, 0.99).toFixed(0)} ms  max ${Math.max(...r.waits).toFixed(0)} ms${r.errors ? `  ${r.errors} errors` : ''}`;
  console.log(`contention: K=${K} agents over M=${M} models, max_loaded 1, load ${LOAD}, service ~100 ms, ${REQUESTS} requests per figure, seed ${seed}`);
  for (const [name, choose] of [['agents in runs (p=0.75)', runs], ['hot model + rare one', hotAndRare], ['one round-robin agent', roundRobin]] as const) {
    const fifo = await workload('fifo', choose, seed);
    const held = await workload('held', choose, seed);
    console.log(` ${name}`);
    console.log(line('swap_hold 0 (FIFO)', fifo));
    console.log(line(`swap_hold ${DEFAULT_SWAP_HOLD} (default)`, held));
    const maxWait = Math.max(...held.waits) / 1000;
    console.log(`  default/FIFO throughput ${(held.rps / fifo.rps).toFixed(2)}x${name.startsWith('agents') ? ' (budget >= 1.5x)' : ''}   longest wait ${maxWait.toFixed(1)} s (max_wait ${MAX_WAIT_S} s)${maxWait > MAX_WAIT_S || held.errors ? '  OVER BUDGET' : ''}`);
  }
  if (codes.size) console.log(`  errors by status: ${[...codes].map(([c, n]) => `${c} x${n}`).join(', ')}`);
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
}
