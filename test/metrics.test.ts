// GET /metrics and GET /hub/api/usage against a hub with real demo backends: counters and
// histograms from real requests, gauges read from status, and a scrape that never starts a model.
import t from 'tap';
import { reasonOf, routeOf } from '../lib/http/metrics.js';
import { demo, getJson, startTestHub } from './helpers.js';

const yaml = `
models:
  m:
    backend: demo
    cmd: ${demo()}
    memory: 1GiB
  idle-one:
    backend: demo
    cmd: ${demo()}
`;

const chat = (origin: string, model: string) =>
  fetch(`${origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  });

/** The value of the sample line `series` (name and labels exactly as written), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('metrics and usage', async (t) => {
  const h = await startTestHub(t, yaml);

  t.test('a cold request and two warm ones show up in /metrics', async (t) => {
    for (let i = 0; i < 3; i++) {
      const res = await chat(h.origin, 'm');
      t.equal(res.status, 200);
      await res.text();
    }
    const res = await fetch(`${h.origin}/metrics`);
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4; charset=utf-8$/, 'Prometheus text format');
    const text = await res.text();
    t.equal(sample(text, 'modelhub_requests_total{model="m",route="/v1/chat/completions",status="200"}'), 3);
    t.equal(sample(text, 'modelhub_request_duration_seconds_count{model="m",route="/v1/chat/completions"}'), 3);
    t.equal(sample(text, 'modelhub_cold_starts_total{model="m"}'), 1, 'only the first request was cold');
    t.equal(sample(text, 'modelhub_cold_start_seconds_count{model="m"}'), 1);
    t.ok(sample(text, 'modelhub_cold_start_seconds_sum{model="m"}')! > 0, 'the cold start took some time');
    t.equal(sample(text, 'modelhub_transitions_total{model="m",axis="process",to="running",reason="request"}'), 1);
    t.equal(sample(text, 'modelhub_model_in_flight{model="m"}'), 0);
    t.equal(sample(text, 'modelhub_model_queued{model="m"}'), 0);
    t.equal(sample(text, 'modelhub_model_up{model="m",process="running"}'), 1);
    t.equal(sample(text, 'modelhub_model_up{model="m",process="stopped"}'), 0);
    t.equal(sample(text, 'modelhub_model_memory_loaded{model="m"}'), 1);
    t.equal(sample(text, 'modelhub_model_declared_memory_bytes{model="m"}'), 1024 ** 3);
    t.ok(sample(text, 'modelhub_process_resident_memory_bytes')! > 0, 'default process metrics, with the prefix');
  });

  t.test('a scrape of a stopped model does not start it', async (t) => {
    for (let i = 0; i < 2; i++) {
      const text = await (await fetch(`${h.origin}/metrics`)).text();
      t.equal(sample(text, 'modelhub_model_up{model="idle-one",process="stopped"}'), 1);
      t.equal(sample(text, 'modelhub_model_in_flight{model="idle-one"}'), 0);
    }
    const status = h.hub.controller.status().models.find((m) => m.name === 'idle-one')!;
    t.equal(status.process, 'stopped');
    t.equal(status.memory, 'unloaded');
    t.equal(h.spawns('idle-one'), 0, 'never spawned');
    const usage = await getJson(`${h.origin}/hub/api/usage`);
    t.equal(h.spawns('idle-one'), 0, 'usage does not spawn it either');
    t.match(usage.body.models.find((u: { model: string }) => u.model === 'idle-one'), { requests: 0, errors: 0, cold_starts: 0 });
  });

  t.test('/hub/api/usage counts requests, errors and cold starts per model', async (t) => {
    const paths: string[] = [];
    h.hub.controller.on('request', (r) => paths.push(r.path));
    const bad = await fetch(`${h.origin}/upstream/m/no-such-path`);
    await bad.text();
    t.ok(bad.status >= 400, `the backend answers ${bad.status}`);
    t.same(paths, ['/upstream/m/no-such-path'], 'the request event has the path the client sent, not the backend path');
    const res = await getJson(`${h.origin}/hub/api/usage`);
    t.equal(res.status, 200);
    t.ok(!Number.isNaN(Date.parse(res.body.since)), 'since is a date');
    const m = res.body.models.find((u: { model: string }) => u.model === 'm');
    t.match(m, { model: 'm', requests: 4, errors: 1, cold_starts: 1, tokens_in: 3, tokens_out: 6 });
    t.ok(m.cold_start_ms_total > 0, `cold start total ${m.cold_start_ms_total} ms`);
    const text = await (await fetch(`${h.origin}/metrics`)).text();
    t.equal(sample(text, `modelhub_requests_total{model="m",route="/upstream",status="${bad.status}"}`), 1, 'upstream paths are one route');
    h.hub.reload();
    const after = await getJson(`${h.origin}/hub/api/usage`);
    t.same(after.body, res.body, 'a reload keeps the counts');
  });
});

t.test('each hub has its own registry: two hubs in one process do not share counts', async (t) => {
  const [a, b] = await Promise.all([startTestHub(t, yaml), startTestHub(t, yaml)]);
  const res = await chat(a.origin, 'm');
  t.equal(res.status, 200);
  await res.text();
  const [textA, textB] = await Promise.all([a, b].map(async (h) => (await fetch(`${h.origin}/metrics`)).text()));
  t.equal(sample(textA, 'modelhub_requests_total{model="m",route="/v1/chat/completions",status="200"}'), 1);
  t.equal(sample(textB, 'modelhub_requests_total{model="m",route="/v1/chat/completions",status="200"}'), undefined, 'the other hub counted nothing');
  t.equal(sample(textB, 'modelhub_model_up{model="m",process="stopped"}'), 1);
  t.notOk(/^modelhub_requests_total\{[^}]*route="other"/m.test(textA), 'scrapes themselves are not counted');
});

t.test('route and reason labels stay bounded', async (t) => {
  t.equal(routeOf('/v1/chat/completions'), '/v1/chat/completions');
  t.equal(routeOf('/upstream/m/props'), '/upstream');
  t.equal(routeOf('/v1/some/thing/new'), 'other');
  t.equal(reasonOf('evicted for x'), 'evicted');
  t.equal(reasonOf('evicted for x (operator)'), 'evicted');
  t.equal(reasonOf('start timed out'), 'start timed out');
  t.equal(reasonOf('request'), 'request');
  t.equal(reasonOf('something new'), 'other');
});
