// A hub with 500 configured models (none running), as its own `hub serve` process: GET /v1/models
// latency, reload time (POST /hub/api/reload with one model changed), and the hub's resident memory
// once idle. Each figure is printed with its budget.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveHub } from './processes.js';

const MODELS = 500;

export async function scaleBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-scale-'));
  const port = 20000 + Math.floor(Math.random() * 12000);
  const config = join(dir, 'hub.yaml');
  const write = (changed: number) => {
    const models = Array.from({ length: MODELS }, (_, i) => `  model-${i}: { backend: demo, cmd: "\${HUB} demo-model --port \${PORT} --model \${MODEL}${i === changed ? ' --max-tokens 3' : ''}" }`);
    writeFileSync(config, `listen: { host: 127.0.0.1, port: ${port} }\nstate_dir: ${dir}\nports: { start: ${port + 1} }\nmodels:\n${models.join('\n')}\n`);
  };
  write(-1);
  const hub = await serveHub(config);
  const origin = hub.origin;
  try {
    const times = async (n: number, fn: () => Promise<unknown>) => {
      const xs: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await fn();
        xs.push(performance.now() - t0);
      }
      return xs.sort((a, b) => a - b)[Math.floor(n / 2)];
    };
    await new Promise((r) => setTimeout(r, 2000)); // idle after its start: let it settle before its memory is read
    const rssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${hub.child.pid}/status`, 'utf8'))?.[1]);
    const rssMB = rssKiB / 1024;
    const list = await times(100, async () => {
      const res = await fetch(`${origin}/v1/models`);
      if ((await res.json() as { data: unknown[] }).data.length !== MODELS) throw new Error('/v1/models did not list every model');
    });
    let changed = 0;
    const reload = await times(10, async () => {
      write(changed++ % MODELS);
      const res = await fetch(`${origin}/hub/api/reload`, { method: 'POST' });
      if (!res.ok) throw new Error(`reload answered ${res.status}: ${await res.text()}`);
      await res.text();
    });
    const over = (bad: boolean) => (bad ? ': OVER BUDGET' : '');
    console.log(`${MODELS} configured models (hub serve in its own process)`);
    console.log(`  GET /v1/models  p50 ${list.toFixed(2)} ms (budget <= 5 ms${over(list > 5)})`);
    console.log(`  reload (one model changed)  p50 ${reload.toFixed(1)} ms (budget <= 200 ms${over(reload > 200)})`);
    console.log(`  hub resident memory, idle  ${rssMB.toFixed(0)} MB (budget <= 120 MB${over(rssMB > 120)})`);
  } finally {
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
