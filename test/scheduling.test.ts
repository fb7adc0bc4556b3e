// Scheduling with real demo backends: swapping by sleep/wake, busy protection for a long stream,
// reject (RateLimitError in the SDK), memory budgets, the control API (actions, events, logs), and
// reload under live traffic.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { RateLimitError } from 'openai';
import { demo, getJson, postJson, serveHub, startTestHub, tempDir, freePortRange, waitFor } from './helpers.js';

const chat = (base: string, model: string, extra: object = {}) =>
  postJson(`${base}/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...extra });

t.test('scheduling', async (t) => {
  const h = await startTestHub(t, `
groups:
  gpu: { max_loaded: 1 }
  strict: { max_loaded: 1, on_full: reject }
  budget: { max_memory: 300MiB }
models:
  a: { backend: demo, group: gpu, memory: 64MiB, cmd: "${demo('--memory 64MiB --token-rate 50')}" }
  b: { backend: demo, group: gpu, memory: 64MiB, cmd: "${demo('--memory 64MiB --load-time 100ms')}" }
  r1: { backend: demo, group: strict, cmd: "${demo()}" }
  r2: { backend: demo, group: strict, cmd: "${demo()}" }
  m1: { backend: demo, group: budget, memory: 200MiB, cmd: "${demo()}" }
  m2: { backend: demo, group: budget, memory: 150MiB, cmd: "${demo()}" }
  plain: { backend: openai, cmd: "${demo()}" }
  remote: { url: "http://127.0.0.1:9" }
`);
  const { base, origin, client } = h;
  const status = (name: string) => h.hub.controller.status().models.find((m) => m.name === name)!;
  const direct = async (name: string) => (await getJson(`http://127.0.0.1:${status(name).port}/demo/stats`)).body;
  const api = (path: string, body: object = {}) => postJson(`${origin}/hub/api/${path}`, body);

  t.test('a group of two with max_loaded 1 swaps by sleep and wake, one spawn each', async (t) => {
    for (const model of ['a', 'b', 'a', 'b']) t.equal((await chat(base, model)).status, 200, `${model} answers`);
    t.same([h.spawns('a'), h.spawns('b')], [1, 1], 'exactly one spawn each');
    t.match(status('a'), { process: 'running', memory: 'unloaded' });
    t.match(status('b'), { process: 'running', memory: 'loaded' });
    t.equal((await direct('a')).state, 'sleeping', 'the backend itself reports it is asleep');
    t.equal((await direct('a')).allocated_bytes, 0);
    t.equal((await direct('a')).rejected, 0, 'no request ever reached a sleeping backend');
    t.ok(h.transitions.some((x) => x.model === 'b' && x.to === 'unloaded' && x.reason.startsWith('evicted for a: ')), 'evicted for a, with why b was chosen');
  });

  t.test('a long stream on A is never cut; B waits for it', async (t) => {
    const started = await fetch(`${base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'a', stream: true, max_tokens: 20, messages: [{ role: 'user', content: 'long' }] }),
    });
    const reader = started.body!.getReader();
    await reader.read();
    let streamEnded = 0;
    let bAnswered = 0;
    const b = chat(base, 'b').then((r) => { bAnswered = performance.now(); return r; });
    let text = '';
    const decoder = new TextDecoder();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value);
    streamEnded = performance.now();
    t.ok(text.endsWith('data: [DONE]\n\n'), 'the stream finished normally');
    t.notMatch(text, /"error"/, 'without an error');
    const res = await b;
    t.equal(res.status, 200);
    t.ok(bAnswered >= streamEnded, 'B was served after A finished');
    t.ok(Number(res.headers.get('x-hub-cold-start-ms')) > 0, 'and says it waited');
  });

  t.test('on_full reject: the SDK sees RateLimitError with capacity_exhausted', async (t) => {
    t.equal((await chat(base, 'r1')).status, 200);
    const err = await client.chat.completions.create({ model: 'r2', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    t.type(err, RateLimitError);
    t.equal((err as RateLimitError).code, 'capacity_exhausted');
    t.ok(Number((err as RateLimitError).headers?.get('retry-after')) >= 1);
    t.equal(h.spawns('r2'), 0, 'r2 was never started');
  });

  t.test('memory budgets: a group max_memory evicts to fit the declared sizes', async (t) => {
    await chat(base, 'm1');
    await chat(base, 'm2');
    t.equal(status('m1').memory, 'unloaded', '200 + 150 > 300: m1 made room');
    const group = h.hub.controller.status().groups.find((g) => g.name === 'budget')!;
    t.match(group, { loaded: 1, memory_bytes: 150 * 2 ** 20, max_memory_bytes: 300 * 2 ** 20 });
  });

  t.test('control API: start/stop/load/unload are idempotent and report the state', async (t) => {
    t.match((await api('models/plain/start')).body, { process: 'running', memory: 'loaded' });
    t.match((await api('models/plain/start')).body, { process: 'running' }, 'again: no-op');
    t.match((await api('models/plain/unload')).body, { process: 'stopped', memory: 'unloaded' }, 'no memory control: unload stops');
    t.match((await api('models/a/load')).body, { process: 'running', memory: 'loaded' });
    t.match((await api('models/a/unload')).body, { process: 'running', memory: 'unloaded' }, 'sleep keeps the process');
    t.match((await api('models/a/unload')).body, { memory: 'unloaded' }, 'again: no-op');
    const accepted = await api('models/a/load?wait=false');
    t.equal(accepted.status, 202);
    await waitFor('a loaded', () => status('a').memory === 'loaded');
    t.match((await api('models/a/stop')).body, { process: 'stopped' });
    t.equal((await api('models/nope/start')).status, 404);
    t.equal((await api('models/remote/load')).status, 409);
    t.equal((await api('models/a/explode')).status, 404);
    t.ok(h.transitions.some((x) => x.model === 'a' && x.reason === 'operator'), 'operator actions carry their reason');
  });

  t.test('events stream transitions with reasons and request summaries; logs tail and follow', async (t) => {
    const abort = new AbortController();
    const res = await fetch(`${origin}/hub/api/events`, { signal: abort.signal });
    t.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(seen)) seen += decoder.decode((await reader.read()).value);
    };
    await readUntil(/event: status/);
    await chat(base, 'plain');
    await readUntil(/"model":"plain","axis":"process","from":"starting","to":"running","reason":"request"/);
    await readUntil(/event: request\ndata: \{[^\n]*"model":"plain"[^\n]*"status":200/);
    abort.abort();
    t.pass('saw the status snapshot, the transition and the request');

    const logs = await fetch(`${origin}/hub/api/models/plain/logs?tail=2`);
    const tail = await logs.text();
    t.equal(tail.trim().split('\n').length, 2, 'tail=2 gives two lines');
    const follow = new AbortController();
    const followed = await fetch(`${origin}/hub/api/models/plain/logs?tail=0&follow=1`, { signal: follow.signal });
    const logReader = followed.body!.getReader();
    await api('models/plain/stop');
    await api('models/plain/start');
    let got = '';
    while (!/listening on/.test(got)) got += decoder.decode((await logReader.read()).value);
    follow.abort();
    t.match(got, /modelhub starting plain \(operator\)/, 'follow delivers lines as they are written');
  });
});

t.test('reload under live traffic: add, remove, change, with zero failed requests', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'hub.yaml');
  const portsStart = await freePortRange(8);
  const write = (models: string) => writeFileSync(path, `listen: { port: 0 }\nstate_dir: ${dir}\nports: { start: ${portsStart} }\nmodels:\n${models}`);
  write(`  stay: { backend: demo, cmd: "${demo()}" }\n  changing: { backend: demo, cmd: "${demo()}" }\n  doomed: { backend: demo, cmd: "${demo('--token-rate 20')}" }\n`);
  const hub = await serveHub(t, path, { watch: true });
  const url = hub.origin;
  const base = `${url}/v1`;
  const status = async () => (await getJson(`${url}/hub/api/status`)).body.models as Array<{ name: string; pid: number | null; port: number }>;

  // Traffic that must never fail while the config changes under it.
  let failures = 0;
  let served = 0;
  let running = true;
  const loop = async (model: string) => {
    while (running) {
      const res = await chat(base, model);
      if (res.status === 200) served++;
      else { failures++; t.comment(`${model}: ${res.status} ${JSON.stringify(res.body)}`); }
    }
  };
  const loops = [loop('stay'), loop('stay'), loop('changing'), loop('changing')];
  await waitFor('traffic to flow', () => served > 20);
  const doomedStream = fetch(`${base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'doomed', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
  }).then((r) => r.text());
  await waitFor('doomed running', async () => (await status()).find((m) => m.name === 'doomed')?.pid);
  const before = await status();

  write(`  stay: { backend: demo, cmd: "${demo()}", aliases: [steady] }\n  changing: { backend: demo, cmd: "${demo('--max-tokens 5')}" }\n  fresh: { backend: demo, cmd: "${demo()}" }\n`);
  const diff = await api(`${url}/hub/api/reload`);
  t.same(diff.body, { added: ['fresh'], removed: ['doomed'], restarted: ['changing'], updated: ['stay'], unchanged: [] });
  const servedAtReload = served;
  await waitFor('traffic to go on after the reload', () => served > servedAtReload + 20);
  running = false;
  await Promise.all(loops);
  t.equal(failures, 0, `zero failed requests (${served} served)`);
  const doomedText = await doomedStream;
  t.ok(doomedText.endsWith('data: [DONE]\n\n'), `the removed model finished its in-flight stream (${doomedText.slice(-200)})`);

  const after = await status();
  const port = (list: typeof after, name: string) => list.find((m) => m.name === name)?.port;
  t.equal(port(after, 'stay'), port(before, 'stay'), 'ports stay stable');
  t.equal(after.find((m) => m.name === 'stay')!.pid, before.find((m) => m.name === 'stay')!.pid, 'an updated model keeps its process');
  t.not(after.find((m) => m.name === 'changing')!.pid, before.find((m) => m.name === 'changing')!.pid, 'a changed model was restarted');
  t.equal((await chat(base, 'steady')).status, 200, 'the new alias works');
  t.equal((await chat(base, 'fresh')).status, 200, 'the added model works');
  t.equal((await chat(base, 'doomed')).status, 404, 'the removed one is gone');

  writeFileSync(path, 'models:\n  x: { cmd: "s --port ${PORT}", idle: { stop_after: soon } }\n');
  const rejected = await api(`${url}/hub/api/reload`);
  t.equal(rejected.status, 422);
  t.equal(rejected.body.error.code, 'invalid_config');
  t.match(rejected.body.error.errors, ['hub.yaml:2: models.x.idle.stop_after: expected a duration like "5m", 0 or "never", got "soon"']);
  t.equal((await chat(base, 'fresh')).status, 200, 'the running config stays');

  write(`  stay: { backend: demo, cmd: "${demo()}" }\n  watched: { backend: demo, cmd: "${demo()}" }\n`);
  await waitFor('--watch to reload', () => /config reloaded \(added: watched/.test(hub.output()));
  t.equal((await chat(base, 'watched')).status, 200, '--watch picked up the change');
  const shutdown = await api(`${url}/hub/api/shutdown`);
  t.equal(shutdown.status, 202);
  t.same(await hub.exited, { code: 0, signal: null }, 'POST /hub/api/shutdown stops the hub');
});

const api = (url: string, body: object = {}) => postJson(url, body);
