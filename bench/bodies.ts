// Large bodies and the event loop: 10 uploads of 30 MiB at once (chat requests with a base64 image, and
// bodies of `[{},{},…]`, the scanner's worst case; from another process), while that process times
// GET /health every 20 ms. The hub runs in this process, so monitorEventLoopDelay here is the hub's
// event loop.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startUploads, type Upload } from '../test/support/uploader.js';

const KINDS: Upload['kind'][] = ['image', 'empties'];

export async function bodiesBench(origin: string, model: string): Promise<void> {
  const uploads: Upload[] = Array.from({ length: 10 }, (_, i) => ({ path: '/v1/chat/completions', kind: KINDS[i % KINDS.length], model, mib: 30 }));
  const run = startUploads({ origin, health: true, uploads });
  await run.ready;
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const report = await run.go();
  delay.disable();
  const stalledMs = delay.max / 1e6 - 5; // what the loop was late by beyond its 5 ms resolution
  const answered = report.outcomes.filter((o) => o.status === 200).length;
  const others = report.outcomes.filter((o) => o.status !== 200).map((o) => o.code ?? o.error ?? String(o.status));
  console.log(`10 concurrent 30 MiB uploads (from another process), ${answered} answered 200${others.length ? ` (others: ${others.join(', ')})` : ''}`);
  console.log(`  longest event-loop stall ${stalledMs.toFixed(1)} ms (budget <= 10 ms${stalledMs > 10 ? ': OVER BUDGET' : ''})   event-loop delay p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`);
  console.log(`  GET /health meanwhile: ${report.health.answers} answers, slowest ${report.health.slowestMs.toFixed(1)} ms`);
}
