// The gateway's series (metric-series.ts) count outside prom-client; a scrape must read exactly as
// prom-client's own Histogram and Counter would for the same observations: same lines, same values.
import t from 'tap';
import { Counter, Histogram, Registry } from 'prom-client';
import { SeriesCounter, SeriesHistogram } from '../lib/http/metric-series.js';
import { mulberry32 } from './support/prng.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

t.test('a scrape of the series is what prom-client writes for the same observations', async (t) => {
  const seed = Number(process.env.SEED ?? Date.now() % 100_000);
  t.comment(`seed ${seed} (SEED=${seed} repeats this run)`);
  const random = mulberry32(seed);
  const ours = new Registry();
  const theirs = new Registry();
  const config = { name: 'x_duration_seconds', help: 'How long.', labelNames: ['model', 'route'] as const, buckets: BUCKETS };
  const oursHist = new SeriesHistogram({ ...config, labelNames: [...config.labelNames], registers: [ours] });
  const theirHist = new Histogram({ ...config, labelNames: [...config.labelNames], registers: [theirs] });
  const counter = { name: 'x_requests_total', help: 'How many.', labelNames: ['model', 'status'] };
  const oursCount = new SeriesCounter({ ...counter, registers: [ours] });
  const theirCount = new Counter({ ...counter, registers: [theirs] });

  const labelSets = [{ model: 'a', route: '/v1/chat/completions' }, { model: 'b "quoted"\\', route: '/v1/embeddings' }, { model: 'a', route: 'other' }];
  const series = labelSets.map((labels) => oursHist.series(labels));
  t.equal(oursHist.series({ route: '/v1/chat/completions', model: 'a' }), series[0], 'a label set asked for again (in any order) is the same series');
  const statuses = ['200', '404', '500'];
  const counters = labelSets.flatMap(({ model }) => statuses.map((status) => ({ labels: { model, status }, series: oursCount.series({ model, status }) })));
  // The same lines and values; the order of label sets is not the same (prom-client lists them by
  // first observation, the series by when they were made), nor does it matter to Prometheus.
  const lines = async (r: Registry) => (await r.metrics()).split('\n').sort();
  const json = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => ({ ...m, values: m.values.map((v) => JSON.stringify(v)).sort() }));
  const check = async (what: string) => {
    t.same(await lines(ours), await lines(theirs), `${what}: the same text`);
    t.same(await json(ours), await json(theirs), `${what}: the same JSON`);
  };
  await check('nothing observed');

  for (let i = 0; i < 2000; i++) {
    const k = Math.floor(random() * labelSets.length);
    // Values on the bounds, between them, and past the last one.
    const value = random() < 0.2 ? BUCKETS[Math.floor(random() * BUCKETS.length)] : random() < 0.1 ? 10 + random() * 100 : random() * 3;
    series[k].observe(value);
    theirHist.observe(labelSets[k], value);
    if (random() < 0.5) {
      const c = counters[Math.floor(random() * counters.length)];
      const by = random() < 0.2 ? 0 : Math.floor(random() * 5);
      c.series.inc(by);
      theirCount.inc(c.labels, by);
    }
  }
  await check('2000 observations');
  t.match(await ours.metrics(), /x_duration_seconds_bucket\{le="\+Inf",model="a",route="\/v1\/chat\/completions"\} \d+/);

  ours.resetMetrics();
  theirs.resetMetrics();
  series[0].observe(0.02);
  theirHist.observe(labelSets[0], 0.02);
  await check('after a reset');
});
