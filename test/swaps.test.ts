// Swaps end to end, with real demo backends behind a real hub: the wait headers (present only when a
// request waited for room), collation under swap_hold while the loaded model is flooded, max_wait,
// the cost-aware choice of victim, and the load-time history kept across a hub restart.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../lib/config/load.js';
import { startHub } from '../lib/hub.js';
import { silentLogger } from '../lib/log.js';
import { demo, freePortRange, getJson, startTestHub, tempDir, waitFor } from './helpers.js';

const chat = (base: string, model: string, maxTokens = 2) =>
  fetch(`${base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens }),
  }).then(async (res) => ({ status: res.status, headers: res.headers, body: await res.text() }));

const header = (h: Headers, name: string) => (h.get(name) === null ? undefined : Number(h.get(name)));

t.test('a cold start nobody else was in the way of carries x-hub-cold-start-ms and no queue or swap time', async (t) => {
  const h = await startTestHub(t, `models:\n  solo: { backend: demo, cmd: "${demo('--load-time 100ms')}" }\n`);
  const cold = await chat(h.base, 'solo');
  t.equal(cold.status, 200);
  t.ok(header(cold.headers, 'x-hub-cold-start-ms')! >= 100, 'the start is reported (at least the backend\'s 100 ms load)');
  t.equal(cold.headers.get('x-hub-swap-ms'), null, 'no swap: nothing had to make room');
  t.equal(cold.headers.get('x-hub-queue-ms'), null, 'no queue: nothing was ahead of it');
  const warm = await chat(h.base, 'solo');
  t.same([warm.headers.get('x-hub-cold-start-ms'), warm.headers.get('x-hub-swap-ms'), warm.headers.get('x-hub-queue-ms')], [null, null, null], 'a warm request carries none of them');
});

t.test('swap_hold: the flooded model keeps serving its batch for the hold, then yields; the waiter is told what it waited for', async (t) => {
  const h = await startTestHub(t, `
groups:
  g: { max_loaded: 1, swap_hold: 1500ms, max_wait: 60s }
models:
  a: { backend: demo, group: g, cmd: "${demo('--token-rate 40 --load-time 50ms')}" }
  b: { backend: demo, group: g, cmd: "${demo('--load-time 50ms')}" }
`);
  t.equal((await chat(h.base, 'a')).status, 200, 'a is up');
  let flooding = true;
  const answers: Array<{ status: number; sent: number; done: number }> = [];
  const agent = async () => {
    while (flooding) {
      const sent = performance.now();
      const r = await chat(h.base, 'a', 4); // ~100 ms each at 40 tokens/s
      answers.push({ status: r.status, sent, done: performance.now() });
    }
  };
  const agents = [agent(), agent(), agent()];
  await waitFor('a to serve the flood', () => answers.length >= 6);

  const bSent = performance.now();
  const bAnswer = chat(h.base, 'b');
  const group = async () => (await getJson(`${h.origin}/hub/api/status`)).body.groups.find((g: { name: string }) => g.name === 'g');
  const shown = await waitFor('the status to show b waiting', async () => ((await group()).waiting.length ? group() : undefined));
  t.match(shown, { next: 'b', waiting: [{ model: 'b', count: 1 }] }, 'status: who waits, how many, and who loads next');
  t.match(shown.why, /a, which keeps serving until .* \(swap_hold\)/, 'and why it is not loaded yet');

  const b = await bAnswer;
  const bDone = performance.now();
  flooding = false;
  await Promise.all(agents);
  t.equal(b.status, 200, 'b is served');
  const swapMs = header(b.headers, 'x-hub-swap-ms')!;
  t.ok(swapMs >= 1500, `b waited for the room at least the swap_hold (${swapMs} ms)`);
  t.ok(bDone - bSent < 20_000, 'and not without end');
  t.ok(header(b.headers, 'x-hub-queue-ms')! >= swapMs, 'its queue time includes the swap');
  const servedWhileHeld = answers.filter((x) => x.sent > bSent && x.done < bSent + swapMs);
  t.ok(servedWhileHeld.length >= 1, `a kept admitting new requests during the hold (${servedWhileHeld.length} served after b began to wait)`);
  t.same(answers.filter((x) => x.status !== 200), [], 'no request of the flood was lost: those that came after the yield waited and were served');
  t.ok(h.transitions.some((x) => x.model === 'a' && x.to === 'unloading' && x.reason.startsWith('yielded to b: its requests waited')), 'a yielded, saying why');
});

t.test('max_wait: a request that would wait past it is answered 429 capacity_exhausted with Retry-After', async (t) => {
  const h = await startTestHub(t, `
groups:
  g: { max_loaded: 1, swap_hold: 60s, max_wait: 1s }
models:
  hot: { backend: demo, group: g, cmd: "${demo('--token-rate 40 --load-time 1500ms')}" }
  rare: { backend: demo, group: g, cmd: "${demo()}" }
`);
  const first = await chat(h.base, 'hot');
  t.equal(first.status, 200, 'a start longer than max_wait is not cut by it: max_wait bounds the wait for room');
  t.ok(header(first.headers, 'x-hub-cold-start-ms')! >= 1500);
  let flooding = true;
  const agent = async () => { while (flooding) await chat(h.base, 'hot', 4); };
  const flood = Promise.all([agent(), agent(), agent()]); // never idle, not even between two requests
  await waitFor('hot to be busy', () => h.hub.controller.get('hot').inflight > 0);
  const sent = performance.now();
  const rare = await chat(h.base, 'rare');
  const waited = performance.now() - sent;
  flooding = false;
  await flood;
  t.equal(rare.status, 429);
  t.match(JSON.parse(rare.body), { error: { code: 'capacity_exhausted', message: /max_wait/ } }, 'the envelope says which limit it hit');
  t.ok(Number(rare.headers.get('retry-after')) >= 1, 'with a Retry-After');
  t.ok(waited >= 1000, `answered once max_wait was up (${Math.round(waited)} ms), not before`);
  t.ok(waited < 15_000, 'and not long after');
  t.equal(h.hub.controller.get('rare').process, 'stopped', 'rare was never started');
});

t.test('cost-aware eviction: the model that is cheap to bring back goes, not the one used least recently', async (t) => {
  const h = await startTestHub(t, `
groups:
  g: { max_loaded: 2 }
models:
  slow: { backend: demo, group: g, cmd: "${demo('--load-time 3s')}" }
  fast: { backend: demo, group: g, cmd: "${demo()}" }
  third: { backend: demo, group: g, cmd: "${demo()}" }
`);
  t.equal((await chat(h.base, 'slow')).status, 200, 'slow is up (a 3 s load)');
  t.equal((await chat(h.base, 'fast')).status, 200, 'fast is up, used after slow');
  const fastDone = performance.now();
  // Idle for a second, fast costs (its load ~0.3 s) / 1 s; slow, idle longer, costs (3 s+) / ~1.3 s.
  await waitFor('fast to be idle for a second', () => performance.now() - fastDone >= 1000);
  t.equal((await chat(h.base, 'third')).status, 200);
  const evicted = h.transitions.find((x) => x.to === 'unloading' && x.reason.startsWith('evicted for third'));
  t.equal(evicted?.model, 'fast', 'fast was evicted although slow was used less recently');
  t.match(evicted?.reason, /^evicted for third: idle [\d.]+s, reload ~[\d.]+s$/, 'the reason names the idle time and the reload cost');
  t.equal(h.hub.controller.get('slow').memory, 'loaded', 'slow stays loaded');
});

t.test('the measured load times are kept in state_dir and shown by a new hub before it loads anything', async (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'hub.yaml');
  writeFileSync(config, `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${dir}\nports: { start: ${await freePortRange(4)} }\nmodels:\n  m: { backend: demo, cmd: "${demo('--load-time 200ms')}" }\n`);
  const loadMs = async (origin: string) => (await getJson(`${origin}/hub/api/status`)).body.models[0].load_ms;
  const first = await startHub(loadConfig(config), { log: silentLogger() });
  t.same(await loadMs(first.origin), { start_ms: null, wake_ms: null }, 'nothing measured yet');
  t.equal((await chat(`${first.origin}/v1`, 'm')).status, 200);
  const measured = await loadMs(first.origin);
  t.ok(measured.start_ms >= 200, `the start was measured (${measured.start_ms} ms)`);
  await first.close();

  const second = await startHub(loadConfig(config), { log: silentLogger() });
  t.teardown(() => second.close());
  t.same(await loadMs(second.origin), measured, 'a new hub on the same state_dir knows it before the model runs');
  t.equal(second.controller.get('m').process, 'stopped');
});

t.test('a client that hangs up while it waits for room leaves the queue: no swap is made for nobody', async (t) => {
  const h = await startTestHub(t, `
groups:
  g: { max_loaded: 1, swap_hold: 60s }
models:
  busy: { backend: demo, group: g, cmd: "${demo('--token-rate 20')}" }
  other: { backend: demo, group: g, cmd: "${demo()}" }
`);
  t.equal((await chat(h.base, 'busy')).status, 200);
  const long = chat(h.base, 'busy', 60); // ~3 s at 20 tokens/s: busy stays in use, other must wait
  await waitFor('busy to be serving', () => h.hub.controller.get('busy').inflight > 0);
  const leaving = new AbortController();
  const abandoned = fetch(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'other', messages: [{ role: 'user', content: 'hi' }] }),
    signal: leaving.signal,
  }).catch((err: Error) => err.name);
  await waitFor('the request for other to wait', () => h.hub.controller.get('other').queued === 1);
  leaving.abort();
  t.equal(await abandoned, 'AbortError');
  await waitFor('it to leave the queue', () => h.hub.controller.get('other').queued === 0);
  const group = (await getJson(`${h.origin}/hub/api/status`)).body.groups.find((g: { name: string }) => g.name === 'g');
  t.same([group.waiting, group.next], [[], null], 'the status no longer shows anyone waiting');
  t.equal((await long).status, 200, 'the busy model finished its answer');
  t.equal(h.spawns('other'), 0, 'other was never started for the client that left');
  t.equal(h.hub.controller.get('busy').memory, 'loaded', 'and busy was not evicted for it');
});
