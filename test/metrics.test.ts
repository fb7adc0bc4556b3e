// GET /metrics and GET /hub/api/usage against a hub with real demo backends: counters and
// histograms from real requests, gauges read from status, and a scrape that never starts a model.
import t from 'tap';
import { reasonOf, routeOf } from '../lib/http/metrics.js';
import { demo, getJson, startTestHub, waitFor } from './helpers.js';

const yaml = `
models:
  m:
    backend: demo
    cmd: ${demo()}
    memory: 1GiB
  idle-one:
    backend: demo
    cmd: ${demo()}
  crowd:
    backend: demo
    cmd: ${demo('--load-time 1s')}
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

  t.test('twenty requests sharing one start count one cold start, and twenty that waited for it', async (t) => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => chat(h.origin, 'crowd').then(async (r) => { await r.text(); return r.status; })));
    t.same([...new Set(replies)], [200]);
    const text = await (await fetch(`${h.origin}/metrics`)).text();
    t.equal(sample(text, 'modelhub_cold_starts_total{model="crowd"}'), 1, 'one start');
    t.equal(sample(text, 'modelhub_cold_start_seconds_count{model="crowd"}'), 1);
    t.ok(sample(text, 'modelhub_cold_start_seconds_sum{model="crowd"}')! >= 1, 'it took the backend\'s 1 s load time');
    t.equal(sample(text, 'modelhub_cold_start_waits_total{model="crowd"}'), 20, 'twenty requests waited for it');
    const usage = (await (await fetch(`${h.origin}/hub/api/usage`)).json()) as { models: Array<{ model: string; cold_starts: number; cold_start_waits: number }> };
    t.match(usage.models.find((u) => u.model === 'crowd'), { cold_starts: 1, cold_start_waits: 20 }, 'the usage API (hub status --usage, the dashboard) agrees');
    t.equal(h.spawns('crowd'), 1, 'and the timeline\'s one start');
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
  t.equal(routeOf('/v1/messages'), '/v1/messages', 'Anthropic Messages has its own route label');
  t.equal(routeOf('/v1/messages/count_tokens'), '/v1/messages/count_tokens');
  t.equal(routeOf('/v1/some/thing/new'), 'other');
  t.equal(reasonOf('evicted for x'), 'evicted');
  t.equal(reasonOf('evicted for x: idle 40s, reload ~0.3s'), 'evicted');
  t.equal(reasonOf('yielded to x: its requests waited 3.0s'), 'evicted', 'a busy model giving way is an eviction too');
  t.equal(reasonOf('evicted for x (operator)'), 'evicted');
  t.equal(reasonOf('start timed out'), 'start timed out');
  t.equal(reasonOf('request'), 'request');
  t.equal(reasonOf('something new'), 'other');
});

t.test('tokens, time to first byte, resident memory and requests no model took', async (t) => {
  const h = await startTestHub(t, yaml);
  const res = await chat(h.origin, 'm');
  const usage = (await res.json()).usage;
  const stream = await fetch(`${h.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'a b c' }], max_tokens: 4 }),
  });
  await stream.text();
  for (const model of ['nope', 'nope-2']) (await chat(h.origin, model)).body?.cancel();
  await (await fetch(`${h.origin}/v1/models`)).text(); // reaches no model by design: not "unrouted"
  const text = await (await fetch(`${h.origin}/metrics`)).text();
  t.equal(sample(text, 'modelhub_tokens_total{model="m",direction="out"}'), usage.completion_tokens + 4, 'completion tokens of the JSON answer and the stream');
  t.ok(sample(text, 'modelhub_tokens_total{model="m",direction="in"}')! >= usage.prompt_tokens + 3, 'prompt tokens of both');
  t.equal(sample(text, 'modelhub_time_to_first_byte_seconds_count{model="m",route="/v1/chat/completions"}'), 2);
  t.ok(sample(text, 'modelhub_model_resident_memory_bytes{model="m"}')! > 1e6, 'the running backend has a measured RSS');
  t.equal(sample(text, 'modelhub_model_resident_memory_bytes{model="idle-one"}'), undefined, 'a stopped one has none');
  t.equal(sample(text, 'modelhub_unrouted_requests_total{route="/v1/chat/completions",status="404"}'), 2, 'unknown models are counted without their names');
  t.notMatch(text, /nope/, 'no label carries a name the client made up');
  t.notMatch(text, /^modelhub_unrouted_requests_total\{route="other",status="200"\}/m, 'listing models is not counted as unrouted');
  const status = h.hub.controller.status().models.find((s) => s.name === 'm')!;
  t.ok(status.rss_bytes! > 1e6, 'status carries the measured RSS too');
  const usageReport = await getJson(`${h.origin}/hub/api/usage`);
  t.match(usageReport.body.models.find((u: { model: string }) => u.model === 'm'), { requests: 2, tokens_out: usage.completion_tokens + 4 });
});

t.test('why a model left memory: idle, evicted and crash each counted under their reason', async (t) => {
  const h = await startTestHub(t, `
groups:
  one: { max_loaded: 1, on_full: evict }
models:
  idler:
    backend: demo
    cmd: ${demo()}
    idle: { stop_after: 200ms }
  first: { backend: demo, cmd: "${demo()}", group: one }
  second: { backend: demo, cmd: "${demo()}", group: one }
  crasher: { backend: demo, cmd: "${demo('--crash-after 3')}" }
`);
  const metric = async (series: string) => sample(await (await fetch(`${h.origin}/metrics`)).text(), series);

  t.test('idle', async (t) => {
    await (await chat(h.origin, 'idler')).text();
    await waitFor('the idle stop', () => h.hub.controller.get('idler').process === 'stopped');
    t.equal(await metric('modelhub_transitions_total{model="idler",axis="process",to="stopping",reason="idle"}'), 1);
    t.equal(await metric('modelhub_transitions_total{model="idler",axis="process",to="stopped",reason="idle"}'), 1);
  });

  t.test('evicted', async (t) => {
    await (await chat(h.origin, 'first')).text();
    await (await chat(h.origin, 'second')).text();
    t.equal(h.hub.controller.get('first').memory, 'unloaded', 'the group holds one loaded: first made room (the demo backend sleeps)');
    t.equal(await metric('modelhub_transitions_total{model="first",axis="memory",to="unloading",reason="evicted"}'), 1);
    t.equal(await metric('modelhub_transitions_total{model="first",axis="memory",to="unloaded",reason="evicted"}'), 1);
    t.equal(await metric('modelhub_transitions_total{model="second",axis="memory",to="unloading",reason="evicted"}'), undefined);
  });

  t.test('crash', async (t) => {
    const res = await fetch(`${h.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'crasher', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
    });
    await res.text();
    await waitFor('the crash', () => h.hub.controller.get('crasher').process === 'failed');
    t.equal(await metric('modelhub_crashes_total{model="crasher"}'), 1);
    t.equal(await metric('modelhub_transitions_total{model="crasher",axis="process",to="failed",reason="crash"}'), 1);
    t.equal(await metric('modelhub_crashes_total{model="first"}'), undefined, 'an eviction is no crash');
  });
});

t.test('metrics.backends: each running backend\'s /metrics, labelled with its model, never waking one', async (t) => {
  const h = await startTestHub(t, `
metrics: { backends: true }
models:
  a: { backend: demo, cmd: "${demo()}" }
  b: { backend: demo, cmd: "${demo()}" }
  no-metrics: { backend: demo, cmd: "${demo()}", env: { DEMO_METRICS: "off" } }
  slow-metrics: { backend: demo, cmd: "${demo()}", env: { DEMO_METRICS: "hang" } }
  asleep: { backend: demo, cmd: "${demo()}" }
`);
  for (const m of ['a', 'a', 'b', 'no-metrics', 'slow-metrics']) await (await chat(h.origin, m)).text();
  const res = await fetch(`${h.origin}/metrics`);
  t.equal(res.status, 200, 'a backend that never answers does not fail the scrape');
  const text = await res.text();
  t.equal(sample(text, 'modelhub_requests_total{model="a",route="/v1/chat/completions",status="200"}'), 2, "the hub's own series are there");
  t.equal(sample(text, 'demo_requests_total{model="a",served_model="a"}'), 2, "a's own counter, labelled");
  t.equal(sample(text, 'demo_requests_total{model="b",served_model="b"}'), 1);
  t.equal(sample(text, 'demo_tokens_generated_total{model="b"}'), 2, 'a series without labels gets the model label');
  t.match(text, /^demo_memory_allocated_bytes\{model="a"\} \d+$/m);
  for (const kind of ['HELP', 'TYPE']) {
    const lines = text.split('\n').filter((l) => l.startsWith(`# ${kind} `)).map((l) => l.split(' ')[2]);
    t.same(lines.filter((name, i) => lines.indexOf(name) !== i), [], `each ${kind} line once, though two backends expose the same metrics`);
  }
  t.notMatch(text, /^demo_[^\n]*model="(no-metrics|slow-metrics)"/m, 'backends without metrics are left out');
  t.notMatch(text, /^demo_[^\n]*model="asleep"/m, 'a stopped model is not asked');
  t.equal(h.spawns('asleep'), 0, 'the scrape started nothing');
  await h.hub.controller.unload('a');
  const after = await (await fetch(`${h.origin}/metrics`)).text();
  t.equal(h.hub.controller.get('a').memory, 'unloaded', 'a sleeping model stays asleep after a scrape');
  t.match(after, /^demo_memory_allocated_bytes\{model="a"\} 0$/m, 'its metrics still come (the process runs), without waking it');
});

t.test('relabelling keeps the text valid', async (t) => {
  const { relabel } = await import('../lib/http/backend-metrics.js');
  const families = new Map<string, { meta: string[]; samples: string[] }>();
  const text = [
    '# HELP lat Latency.',
    '# TYPE lat histogram',
    'lat_bucket{le="0.1"} 1',
    'lat_bucket{le="+Inf"} 2',
    'lat_sum 0.3',
    'lat_count 2',
    'up{model="inner",x="y"} 1',
    '# HELP modelhub_requests_total Requests (of another modelhub behind this one).',
    '# TYPE modelhub_requests_total counter',
    'modelhub_requests_total{model="x"} 5',
    '# a comment',
    '# EOF',
  ].join('\n');
  relabel(text, 'm"1', families);
  relabel(text, 'm2', families);
  t.same(families.get('lat')!.meta, ['# HELP lat Latency.', '# TYPE lat histogram'], 'HELP/TYPE once for both backends');
  t.same(families.get('lat')!.samples.slice(0, 4), ['lat_bucket{model="m\\"1",le="0.1"} 1', 'lat_bucket{model="m\\"1",le="+Inf"} 2', 'lat_sum{model="m\\"1"} 0.3', 'lat_count{model="m\\"1"} 2']);
  t.same(families.get('up')!.samples, ['up{model="m\\"1",exported_model="inner",x="y"} 1', 'up{model="m2",exported_model="inner",x="y"} 1'], "the backend's own model label is kept as exported_model");
  t.notOk([...families.keys()].some((k) => k.includes('EOF')), 'comments and # EOF are dropped');
  t.notOk([...families.keys()].some((k) => k.startsWith('modelhub_')), "a backend's modelhub_ families are left out: they would clash with the hub's own");
});
