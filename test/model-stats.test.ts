// Throughput and latency per model (model-stats.ts): exact percentiles and tokens/s for chosen samples,
// the 5-minute and hour windows, bounded memory (a reservoir per minute, weighted so a busy minute
// counts as it should), the sparkline's series; then the same figures through GET /hub/api/usage, on the
// dashboard's card and model page, and in `hub status --usage` against a real hub.
import t from 'tap';
import { MINUTE_MS, ModelStats, SAMPLES_PER_BUCKET } from '../lib/http/model-stats.js';
import { sparkline, statsView } from '../lib/http/dashboard/stats-view.js';
import type { RequestSummary } from '../lib/scheduler/request-summary.js';
import { hub } from './cli-support.js';
import { demo, getJson, postJson, startTestHub } from './helpers.js';

const T0 = 1000 * MINUTE_MS + 5_000;
const req = (over: Partial<RequestSummary>): RequestSummary => ({ id: 'x', model: 'm', method: 'POST', path: '/v1/chat/completions', status: 200, ms: 100, ...over });

/** A deterministic random() (mulberry32) for the reservoirs. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('windows: exact p50/p95 (nearest rank) and tokens/s for chosen samples', async (t) => {
  let now = T0;
  const stats = new ModelStats(undefined, () => now);
  // Ten minutes ago: one request that waited 500 ms for a turn and 500 ms for a start.
  now = T0 - 10 * MINUTE_MS;
  stats.add(req({ ttfb_ms: 1000, ms: 2000, tokens_out: 100, queue_ms: 500, cold_start_ms: 500 }));
  // Now: 20 requests, first tokens 10, 20, … 200 ms, each 100 ms longer in all, 50 tokens each.
  now = T0;
  for (let i = 1; i <= 20; i++) stats.add(req({ ttfb_ms: i * 10, ms: i * 10 + 100, tokens_out: 50, status: i === 7 ? 500 : 200 }));
  stats.add(req({ model: undefined, ms: 5 })); // no model: not counted anywhere

  const r = stats.recent('m');
  t.same(r['5m'], {
    requests: 20, errors: 1, tokens_out: 1000,
    tokens_per_s: 243.9, // 1000 tokens / (2100 + 2000) ms
    ttft_ms: { p50: 100, p95: 190 }, // the 10th and 19th of 20
    duration_ms: { p50: 200, p95: 290 },
  });
  t.same(r['1h'], {
    requests: 21, errors: 1, tokens_out: 1100,
    tokens_per_s: 215.7, // 1100 tokens / (4100 + 2000 - 500 - 500) ms: the waits are not the backend's time
    ttft_ms: { p50: 110, p95: 200 }, // the 11th and 20th of 21
    duration_ms: { p50: 210, p95: 300 },
  });
  t.same(stats.recent('unused'), { '5m': { requests: 0, errors: 0, tokens_out: 0, tokens_per_s: null, ttft_ms: null, duration_ms: null }, '1h': { requests: 0, errors: 0, tokens_out: 0, tokens_per_s: null, ttft_ms: null, duration_ms: null } });

  const series = stats.series('m');
  t.equal(series.requests.length, 60);
  t.equal(series.requests[59], 20, 'the current minute is the last point');
  t.equal(series.requests[49], 1, 'ten minutes ago');
  t.equal(series.tokensPerS[49], 100, '100 tokens in 1 s of backend time');
  t.equal(series.requests.reduce((a, b) => a + b, 0), 21);

  now = T0 + 5 * MINUTE_MS;
  t.equal(stats.recent('m')['5m'].requests, 0, 'five minutes on, the 5-minute window is empty');
  t.equal(stats.recent('m')['1h'].requests, 21);
  now = T0 + 61 * MINUTE_MS;
  t.equal(stats.recent('m')['1h'].requests, 0, 'an hour on, nothing is left');
  t.equal((stats as unknown as { models: Map<string, unknown> }).models.size, 0, 'and the model costs no memory');
});

t.test('bounded: a busy minute keeps a sample, weighted by the requests it stands for', async (t) => {
  let now = T0 - MINUTE_MS;
  const stats = new ModelStats(undefined, () => now, seeded(42));
  for (let i = 0; i < 1000; i++) stats.add(req({ ttfb_ms: 10, ms: 10 }));
  now = T0;
  for (let i = 0; i < 10; i++) stats.add(req({ ttfb_ms: 1000, ms: 1000 }));
  const buckets = (stats as unknown as { models: Map<string, Array<{ ttft: { values: number[] } }>> }).models.get('m')!;
  t.equal(buckets[0].ttft.values.length, SAMPLES_PER_BUCKET, 'a minute keeps at most SAMPLES_PER_BUCKET samples');
  // 10 of 1,010 requests were slow (1%): p95 is fast. Unweighted, the 10 would be 10 of 42 samples (24%).
  t.same(stats.recent('m')['1h'].ttft_ms, { p50: 10, p95: 10 });
  t.equal(stats.recent('m')['1h'].requests, 1010, 'counts stay exact');

  // Values 1..1000 in one minute, in a shuffled order: the estimate stays near the truth.
  const mixed = new ModelStats(undefined, () => T0, seeded(7));
  const values = Array.from({ length: 1000 }, (_, i) => i + 1);
  const rnd = seeded(3);
  for (let i = values.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [values[i], values[j]] = [values[j], values[i]]; }
  for (const v of values) mixed.add(req({ ttfb_ms: v, ms: v }));
  const p = mixed.recent('m')['5m'].ttft_ms!;
  t.ok(p.p50 > 300 && p.p50 < 700, `p50 estimate ${p.p50} near 500`);
  t.ok(p.p95 > 800, `p95 estimate ${p.p95} near 950`);
});

t.test('the card line, its tooltip and the sparkline points', async (t) => {
  let now = T0;
  const stats = new ModelStats(undefined, () => now);
  t.equal(statsView(stats.recent('m'), stats.series('m')).line, 'no requests in the last hour');
  now = T0 - 30 * MINUTE_MS;
  stats.add(req({ ttfb_ms: 120, ms: 400, tokens_out: 40 }));
  now = T0;
  const quiet = statsView(stats.recent('m'), stats.series('m'));
  t.equal(quiet.line, '1 h: 1 req · 100 tok/s · TTFT 120 ms / 120 ms', 'a quiet 5 minutes shows the hour');
  stats.add(req({ ttfb_ms: 1500, ms: 2000, tokens_out: 10 }));
  const v = statsView(stats.recent('m'), stats.series('m'));
  t.equal(v.line, '5 min: 1 req · 5 tok/s · TTFT 1.50 s / 1.50 s');
  t.equal(v.short, '5 tok/s · TTFT 1.50 s', 'the table view\'s cell');
  t.equal(quiet.short, '—', 'a quiet 5 minutes in the table');
  t.match(v.title, /last 5 min: 1 req · 5 tok\/s · first token p50 1\.50 s, p95 1\.50 s · duration p50 2\.00 s, p95 2\.00 s\nlast hour: 2 req/);
  t.same(v.rows.map((r) => r.window), ['last 5 min', 'last hour']);
  const spark = v.spark!;
  t.match(spark.label, /^output tokens\/s per minute, last hour \(peak 100\)$/);
  const pts = spark.points.split(' ');
  t.equal(pts.length, 60);
  t.equal(pts[29], '29.5,1.0', 'the peak minute at the top');
  t.equal(pts[59], '60.0,18.1', '5 tok/s of 100');
  t.equal(pts[0], '0.0,19.0', 'a quiet minute at the bottom');
  t.match(sparkline({ requests: [0, 2, 4], tokensPerS: [0, 0, 0] }), { label: 'requests per minute, last hour (peak 4)', points: '0.0,19.0 30.0,10.0 60.0,1.0' }, 'no tokens reported: requests per minute');
});

t.test('a real hub: /hub/api/usage, the card, the model page and hub status --usage', async (t) => {
  const h = await startTestHub(t, `models:\n  fast: { backend: demo, cmd: "${demo()}" }\n  idle: { backend: demo, cmd: "${demo()}" }\n`);
  for (let i = 0; i < 3; i++) {
    const r = await postJson(`${h.origin}/v1/chat/completions`, { model: 'fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, stream: i === 2 });
    t.equal(r.status, 200);
  }
  const usage = (await getJson(`${h.origin}/hub/api/usage`)).body;
  const fast = usage.models.find((u: { model: string }) => u.model === 'fast');
  t.match(fast, { requests: 3, recent: { '5m': { requests: 3, errors: 0, tokens_out: Number, tokens_per_s: Number, ttft_ms: { p50: Number, p95: Number }, duration_ms: { p50: Number, p95: Number } }, '1h': { requests: 3 } } });
  t.ok(fast.recent['5m'].ttft_ms.p95 <= fast.recent['5m'].duration_ms.p95, 'the first token comes before the end');
  t.match(usage.models.find((u: { model: string }) => u.model === 'idle'), { recent: { '5m': { requests: 0, ttft_ms: null } } });

  const board = await (await fetch(`${h.origin}/hub`, { headers: { accept: 'text/html' } })).text();
  const card = board.slice(board.indexOf('data-model="fast"'), board.indexOf('data-model="idle"'));
  t.match(card, /<dd class="stats" title="last 5 min: 3 req · [\d.]+ tok\/s · first token p50/, 'the card: the full figures in the tooltip');
  t.match(card, /<svg class="spark" viewBox="0 0 60 20"[^>]*role="img" aria-label="output tokens\/s per minute, last hour \(peak [\d.]+\)">/, 'and a sparkline');
  t.match(card, /<span class="stats-line">5 min: 3 req · [\d.]+ tok\/s · TTFT \d+ ms \/ \d+ ms<\/span>/);
  t.notMatch(card, /style=/, 'no inline style (the content policy allows none)');
  const page = await (await fetch(`${h.origin}/hub/models/fast`, { headers: { accept: 'text/html' } })).text();
  t.match(page, /<h2>Throughput and latency<\/h2>/);
  t.match(page, /<tr><td>last 5 min<\/td><td>3<\/td><td>0<\/td><td>[\d.]+ tok\/s<\/td><td>\d+ ms \/ \d+ ms<\/td><td>\d+ ms \/ \d+ ms<\/td><\/tr>/);

  const cli = await hub(['status', '--usage', '--url', h.origin]);
  t.equal(cli.code, 0, cli.err);
  t.match(cli.out, /^MODEL +WINDOW +REQUESTS +ERRORS +TOKENS\/S +FIRST TOKEN P50\/P95 +DURATION P50\/P95$/m);
  t.match(cli.out, /^fast +last 5 min +3 +0 +[\d.]+ +\d+ms \/ \d+ms +\d+ms \/ \d+ms$/m);
  t.match(cli.out, /^fast +last hour +3 +0 /m);
  t.match(cli.out, /^idle +last 5 min +0 +0 +- +- +-$/m);
  const json = JSON.parse((await hub(['status', 'fast', '--usage', '--json', '--url', h.origin])).out);
  t.match(json.models, [{ model: 'fast', recent: { '5m': { requests: 3 }, '1h': { requests: 3 } } }]);
});
