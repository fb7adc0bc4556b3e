// Large bodies and the event loop: 10 uploads of 30 MiB at once (chat requests with a base64 image, and
// bodies of `[{},{},…]`, the scanner's worst case; from another process), while that process times
// GET /health every 20 ms. The hub runs in this process, so monitorEventLoopDelay here is the hub's
// event loop. Its stalls are split into time the hub waited for a core and the rest, beside the same
// figures of an idle process over the same time (loop-stalls.ts): on this 2-core machine the client,
// the hub and the backend compete for the cores, and the machine alone stalls any process. The budget
// is held against the hub's own part: the most CPU time it used in one late turn (its code and its GC).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runUploads, startUploads, type Upload } from '../test/support/uploader.js';
import { idleProbe, StallWatch, type Stalls } from './loop-stalls.js';

const KINDS: Upload['kind'][] = ['image', 'empties'];

export async function bodiesBench(origin: string, model: string): Promise<void> {
  // First a /health and a few smaller uploads of each kind at once: the figure is about large bodies,
  // not about the first requests a fresh hub serves (compiling their path holds the loop for 20-40 ms
  // of CPU, and Node loads its fetch classes on the first JSON answer, which Koa's body setter looks
  // up), nor about its first large ones (until V8 has optimized the scanner, the pacing and the
  // forwarding, one turn of the loop can take 12-17 ms of CPU: measured with 2 × 1 MiB of each kind
  // as the only warm-up).
  await (await fetch(`${origin}/health`)).text();
  await runUploads({ origin, uploads: KINDS.flatMap((kind) => [1, 2, 3, 4].map(() => ({ path: '/v1/chat/completions', kind, model, mib: 4 }))) });
  const uploads: Upload[] = Array.from({ length: 10 }, (_, i) => ({ path: '/v1/chat/completions', kind: KINDS[i % KINDS.length], model, mib: 30 }));
  const run = startUploads({ origin, health: true, uploads });
  await run.ready;
  const probe = await idleProbe();
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const watch = StallWatch.start();
  const report = await run.go();
  watch?.stop();
  delay.disable();
  const idle = await probe.stop();
  const stalledMs = delay.max / 1e6 - 5; // what the loop was late by beyond its 5 ms resolution
  const answered = report.outcomes.filter((o) => o.status === 200).length;
  const others = report.outcomes.filter((o) => o.status !== 200).map((o) => o.code ?? o.error ?? String(o.status));
  console.log(`10 concurrent 30 MiB uploads (from another process), ${answered} answered 200${others.length ? ` (others: ${others.join(', ')})` : ''}`);
  // What the hub said, once per distinct message: a failure here must be explainable from the output.
  const said = new Set(report.outcomes.filter((o) => o.status !== 200).map((o) => (o.body as { error?: { message?: string } } | undefined)?.error?.message ?? o.error ?? ''));
  for (const message of said) if (message) console.log(`    ${message}`);
  console.log(`  longest event-loop stall ${stalledMs.toFixed(1)} ms (monitorEventLoopDelay, all causes)   event-loop delay p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms`);
  const split = (label: string, w: Stalls) => {
    if (!w.longest || !w.busiest) return;
    const { longest: l, busiest: b } = w;
    console.log(`    ${label}: longest stall ${l.ms.toFixed(1)} ms (${l.waitingMs.toFixed(1)} ms waiting for a core, ${l.ownMs.toFixed(1)} ms working, ${l.pausedMs.toFixed(1)} ms paused; ${(l.atMs / 1000).toFixed(1)} s in); ` +
      `most work in one stall ${b.ownMs.toFixed(1)} ms of ${b.ms.toFixed(1)} ms (${(b.atMs / 1000).toFixed(1)} s in)`);
  };
  if (watch) split('the hub', watch);
  split('an idle process beside it (the machine alone)', idle);
  if (watch) {
    // BENCH_STALLS=n: the hub's n stalls with the most work, to look into.
    for (const s of [...watch.all].sort((a, b) => b.ownMs - a.ownMs).slice(0, Number(process.env.BENCH_STALLS ?? 0))) {
      console.log(`      ${(s.atMs / 1000).toFixed(2)} s in: ${s.ms.toFixed(1)} ms late, ${s.waitingMs.toFixed(1)} waiting, ${s.cpuMs.toFixed(1)} CPU (${s.mainMs.toFixed(1)} main thread), ${s.ownMs.toFixed(1)} own, ${s.pausedMs.toFixed(1)} paused`);
    }
    const own = watch.busiest?.ownMs ?? 0;
    console.log(`  the hub's own longest stall (its CPU time in one late turn, not waiting for a core) ${own.toFixed(1)} ms (budget <= 10 ms${own > 10 ? ': OVER BUDGET' : ''})`);
  } else {
    console.log(`  (no schedstat here: the stall cannot be split, and is held against the budget whole${stalledMs > 10 ? ': OVER BUDGET' : ''})`);
  }
  console.log(`  GET /health meanwhile: ${report.health.answers} answers, slowest ${report.health.slowestMs.toFixed(1)} ms`);
}
