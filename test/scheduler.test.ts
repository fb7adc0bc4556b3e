// The scheduling core without processes: the reload diff, and the
// controller driven by a fake driver (coalescing, eviction order, busy protection, fairness,
// budgets, pins, reject/wait/evict, concurrency limits, idle ladder, reload).
import t from 'tap';
import { parseConfig } from '../lib/config/load.js';
import type { HubError } from '../lib/errors.js';
import { Controller, type Lease } from '../lib/scheduler/controller.js';
import type { Transition } from '../lib/scheduler/context.js';
import { diffConfigs } from '../lib/scheduler/reload.js';
import { fakeDriver } from './support/fake-driver.js';
import { waitFor } from './helpers.js';

const GiB = 2 ** 30;

// ---- reload diff -------------------------------------------------------------------------------

t.test('diffConfigs sorts models into added, removed, restarted, updated, unchanged', async (t) => {
  const before = parseConfig(`models:
  same: { cmd: "s --port \${PORT}" }
  policy: { cmd: "s --port \${PORT}", idle: { stop_after: 5m } }
  launch: { cmd: "s --port \${PORT}" }
  gone: { cmd: "s --port \${PORT}" }
`, 'hub.yaml');
  const previous = new Map(Object.values(before.models).map((m) => [m.name, m.port!]));
  const after = parseConfig(`models:
  new: { cmd: "s --port \${PORT}" }
  same: { cmd: "s --port \${PORT}" }
  policy: { cmd: "s --port \${PORT}", idle: { stop_after: 9m }, aliases: [p] }
  launch: { cmd: "s --port \${PORT} --flag" }
`, 'hub.yaml', { previousPorts: previous });
  t.same(diffConfigs(before, after), { added: ['new'], removed: ['gone'], restarted: ['launch'], updated: ['policy'], unchanged: ['same'] });
  t.equal(after.models.same.port, before.models.same.port, 'ports stay put');
});

// ---- controller with fake processes ----------------------------------------------------------

function setup(t: { teardown(fn: () => unknown): void }, yaml: string) {
  const driver = fakeDriver({ memoryControl: (m) => m.backend !== 'llama-cpp' });
  const config = parseConfig(`state_dir: /tmp/modelhub-fake\n${yaml}`, '/tmp/hub.yaml');
  const c = new Controller(config, { driver, hubCommand: ['hub'] });
  const transitions: Transition[] = [];
  c.on('transition', (x) => transitions.push(x));
  t.teardown(() => c.shutdown());
  const use = async (name: string) => c.acquire(c.get(name));
  const ask = async (name: string) => (await use(name)).release('answered');
  const state = (name: string) => `${c.get(name).process}/${c.get(name).memory}`;
  const spawns = (name: string) => driver.spawned.filter((p) => p.model === name).length;
  return { driver, c, transitions, use, ask, state, spawns };
}

const fake = (extra = '') => `{ backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}"${extra ? `, ${extra}` : ''} }`;
const fakeNoMem = (extra = '') => `{ backend: llama-cpp, cmd: "fake --port \${PORT} --model \${MODEL}"${extra ? `, ${extra}` : ''} }`;

t.test('coalescing: 200 concurrent requests for a cold model start it once', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  const leases = await Promise.all(Array.from({ length: 200 }, () => s.use('a')));
  t.equal(s.spawns('a'), 1);
  t.equal(s.c.get('a').inflight, 200);
  leases.forEach((l) => l.release('answered'));
  t.equal(s.c.get('a').inflight, 0);
});

t.test('max_loaded 1 with on_full evict swaps by unloading memory; the process stays warm', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 1 } }\nmodels:\n  a: ${fake('group: gpu')}\n  b: ${fake('group: gpu')}\n`);
  await s.ask('a');
  await s.ask('b');
  t.equal(s.state('a'), 'running/unloaded', 'a was put to sleep, not stopped');
  t.equal(s.state('b'), 'running/loaded');
  t.ok(s.transitions.some((x) => x.model === 'a' && x.to === 'unloaded' && /^evicted for b: idle [\d.]+s, reload ~[\d.]+s$/.test(x.reason)), 'the reason names who it was evicted for, and why it was chosen');
  await s.ask('a');
  t.equal(s.state('b'), 'running/unloaded');
  t.same([s.spawns('a'), s.spawns('b')], [1, 1], 'exactly one spawn each');
  t.same(s.driver.calls, ['unload a', 'unload b', 'load a'], 'swaps happen by sleep and wake');
});

t.test('without memory control, eviction stops the process', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 1 } }\nmodels:\n  a: ${fakeNoMem('group: gpu')}\n  b: ${fakeNoMem('group: gpu')}\n`);
  await s.ask('a');
  await s.ask('b');
  t.equal(s.state('a'), 'stopped/unloaded');
  t.ok(s.driver.spawned[0].exit, 'a process exited');
});

t.test('a busy model is never evicted: the newcomer waits, the busy model takes no new requests', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 1 } }\nmodels:\n  a: ${fake('group: gpu')}\n  b: ${fake('group: gpu')}\n`);
  const longA = await s.use('a');
  const order: string[] = [];
  const b = s.use('b').then((l) => { order.push('b'); return l; });
  await waitFor('a to stop admitting', () => s.c.get('a').admitting === false);
  const a2 = s.use('a').then((l) => { order.push('a2'); return l; });
  t.equal(s.state('a'), 'running/loaded', 'a keeps serving its in-flight request');
  t.same(order, [], 'nobody got through yet');
  longA.release('answered');
  const leaseB = await b;
  t.same(order, ['b'], 'b first: a second request for a cannot jump the queue');
  t.equal(s.state('a'), 'running/unloaded');
  leaseB.release('answered');
  (await a2).release('answered');
  t.same(order, ['b', 'a2']);
  t.equal(s.state('b'), 'running/unloaded');
});

t.test('memory budgets: group max_memory and the hub-wide max_memory', async (t) => {
  const s = setup(t, `max_memory: 10GiB\ngroups: { gpu: { max_memory: 8GiB } }\nmodels:
  a: ${fake('group: gpu, memory: 5GiB')}
  b: ${fake('group: gpu, memory: 2GiB')}
  c: ${fake('group: gpu, memory: 4GiB')}
  d: ${fake('memory: 3GiB')}
`);
  await s.ask('a');
  await s.ask('b');
  t.same([s.state('a'), s.state('b')], ['running/loaded', 'running/loaded'], '5 + 2 fits in 8');
  await s.ask('c');
  t.equal(s.state('a'), 'running/unloaded', 'c (4) needs a (5, least recently used) out');
  t.equal(s.state('b'), 'running/loaded');
  await s.ask('d');
  t.same([s.state('b'), s.state('c'), s.state('d')], ['running/loaded', 'running/loaded', 'running/loaded'], 'hub: 2 + 4 + 3 = 9 <= 10');
  await s.ask('a');
  // Which of b and c goes first is the cost-aware choice (reload time over idle time, both a few
  // milliseconds here, so either may come first); c must go in any case: without it a (5) cannot fit.
  t.equal(s.state('a'), 'running/loaded', 'a (5) back');
  t.equal(s.state('c'), 'running/unloaded', 'c (4) made room: b (2) alone would not have been enough');
  t.equal(s.state('d'), 'running/loaded', 'd is outside the group, and the hub budget still fits: it stays');
  const groups = s.c.status().groups;
  const gpu = groups.find((g) => g.name === 'gpu')!;
  const bLoaded = s.state('b') === 'running/loaded';
  t.match(gpu, { loaded: bLoaded ? 2 : 1, memory_bytes: (bLoaded ? 7 : 5) * GiB, max_memory_bytes: 8 * GiB }, 'the group within its 8 GiB');
  t.match(groups.find((g) => g.name === '*'), { loaded: bLoaded ? 3 : 2, memory_bytes: (bLoaded ? 10 : 8) * GiB }, 'the hub within its 10 GiB');
});

t.test("the hub's budget across groups: one group's model makes room by evicting an idle model of another group, and waits for a busy one", async (t) => {
  // Each group has room; only the hub's 8 GiB is short. The group's coordinator lets the model in, the
  // hub's coordinator decides across groups.
  const s = setup(t, `max_memory: 8GiB\ngroups: { left: { max_loaded: 1 }, right: { max_loaded: 1, swap_hold: 0s } }\nmodels:
  a: ${fake('group: left, memory: 5GiB')}
  b: ${fake('group: right, memory: 5GiB')}
  c: ${fake('memory: 1GiB')}
`);
  await s.ask('a');
  await s.ask('c');
  await s.ask('b');
  t.equal(s.state('a'), 'running/unloaded', 'a (left) was evicted for b (right): 5 + 5 > 8');
  t.equal(s.state('b'), 'running/loaded');
  t.equal(s.state('c'), 'running/loaded', 'c (1 GiB) stays: evicting a was enough');
  const evicted = s.transitions.find((x) => x.model === 'a' && x.to === 'unloading');
  t.match(evicted?.reason, /evicted for b/, 'the eviction names the model it made room for');

  const busy = await s.use('b'); // b now serves a request: a must wait for it
  const waiting = s.use('a');
  await waitFor('the hub to say who is next', async () => s.c.status().groups.find((g) => g.name === '*')?.next === 'a', 5000);
  t.equal(s.state('b'), 'running/loaded', 'a busy b is not evicted under a request');
  busy.release('answered');
  await (await waiting).release('answered');
  t.equal(s.state('a'), 'running/loaded', 'a loaded once b was idle');
  t.equal(s.state('b'), 'running/unloaded');
});

t.test('memory: auto plans with what models measure: unknown only into an empty group, then by the measured sizes', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 3, max_memory: 10GiB } }\nmodels:
  a: ${fake('group: gpu, memory: auto')}
  b: ${fake('group: gpu, memory: auto')}
  c: ${fake('group: gpu, memory: 2GiB')}
`);
  const notices: string[] = [];
  s.c.on('notice', (n) => notices.push(n));
  const sizes = new Map<string, number>();
  s.c.sizeOf = (name) => (sizes.has(name) ? { bytes: sizes.get(name)!, source: 'measured' } : undefined);
  await s.ask('a');
  t.match(notices.join('\n'), /model a has memory: auto and has not been measured yet: it is loaded only into an otherwise empty group/, 'it says so');
  t.match(s.c.status().models.find((m) => m.name === 'a'), { memory_bytes: 0, memory_source: 'unknown' });
  await s.ask('b');
  t.same([s.state('a'), s.state('b')], ['running/unloaded', 'running/loaded'], 'b, size unknown, loads only once a is out, although the group has room for 3');
  sizes.set('a', 6 * GiB);
  sizes.set('b', 6 * GiB);
  await s.ask('a');
  t.same([s.state('a'), s.state('b')], ['running/loaded', 'running/unloaded'], 'measured 6 + 6 GiB do not fit in 10: never loaded together');
  await s.ask('c');
  t.same([s.state('a'), s.state('c')], ['running/loaded', 'running/loaded'], 'a declared 2 GiB fits beside a measured 6');
  t.match(s.c.status().models.find((m) => m.name === 'a'), { memory_bytes: 6 * GiB, memory_source: 'measured' });
  sizes.set('b', 3 * GiB);
  await s.ask('b');
  // a (6) + c (2) + b (3) = 11 > 10: one of a and c makes room (whichever is cheaper to bring back).
  t.equal(s.state('b'), 'running/loaded', 'b measured 3 GiB loads');
  t.equal([s.state('a'), s.state('c')].filter((x) => x === 'running/loaded').length, 1, 'one of a and c made room');
  t.ok(s.c.status().groups.find((g) => g.name === 'gpu')!.memory_bytes <= 10 * GiB, 'the group stays within 10 GiB by the measured sizes');
});

t.test('pinned models are never evicted; a request that needs their room is refused', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 1 } }\nmodels:\n  a: ${fake('group: gpu, pinned: true')}\n  b: ${fake('group: gpu')}\n`);
  await s.ask('a');
  const err = (await s.use('b').catch((e: unknown) => e)) as HubError;
  t.equal(err.code, 'capacity_exhausted');
  t.match(err.message, /pinned models \(a\)/);
  t.equal(s.state('a'), 'running/loaded');
});

t.test('on_full reject answers 429 at once; on_full wait waits for room, bounded by start_timeout', async (t) => {
  const s = setup(t, `groups:\n  r: { max_loaded: 1, on_full: reject }\n  w: { max_loaded: 1, on_full: wait }\nmodels:
  a: ${fake('group: r')}
  b: ${fake('group: r')}
  c: ${fake('group: w')}
  d: ${fake('group: w')}
  e: ${fake('group: w, start_timeout: 200ms')}
`);
  await s.ask('a');
  const rejected = (await s.use('b').catch((e: unknown) => e)) as HubError;
  t.equal(rejected.code, 'capacity_exhausted');
  t.equal(rejected.status, 429);
  t.ok(Number(rejected.headers['retry-after']) >= 1, 'with Retry-After');
  t.equal(s.state('a'), 'running/loaded', 'reject evicts nothing');

  await s.ask('c');
  let served = false;
  const d = s.use('d').then((l) => { served = true; l.release('answered'); });
  await waitFor('d to be waiting', () => s.c.get('d').queued === 1);
  t.notOk(served, 'd waits while c holds the room');
  await s.c.unload('c');
  await d;
  t.ok(served, 'd is served once room appears');
  const timedOut = (await s.use('e').catch((e: unknown) => e)) as HubError;
  t.equal(timedOut.code, 'capacity_exhausted');
  t.match(timedOut.message, /within start_timeout/);
});

t.test('max_concurrency and max_queue: extra requests wait, beyond the queue get 429 model_busy', async (t) => {
  const s = setup(t, `models:\n  a: ${fake('max_concurrency: 1, max_queue: 1')}\n`);
  const first = await s.use('a');
  let second: Lease | undefined;
  const pending = s.use('a').then((l) => (second = l));
  await waitFor('the second to queue', () => s.c.get('a').inflight === 1);
  const third = (await s.use('a').catch((e: unknown) => e)) as HubError;
  t.equal(third.code, 'model_busy');
  t.equal(third.status, 429);
  t.equal(third.headers['retry-after'], '1');
  t.equal(second, undefined, 'the second waits for a slot');
  t.equal(s.c.status().models[0].queued, 1, 'and shows as queued');
  const queuedBy = performance.now();
  await waitFor('some time in the queue', () => performance.now() - queuedBy >= 3);
  first.release('answered');
  await pending;
  t.ok(second!.queueMs! >= 3, `and reports how long it queued (${second!.queueMs} ms)`);
  t.equal(s.c.get('a').inflight, 1);
  second!.release('answered');
});

t.test('the idle ladder runs from the last finished request; pinned models are exempt', async (t) => {
  const s = setup(t, `models:
  a: ${fake('idle: { unload_after: 60ms, stop_after: 150ms }')}
  p: ${fake('idle: { unload_after: 10ms, stop_after: 20ms }, pinned: true')}
  n: ${fakeNoMem('idle: { unload_after: 60ms, stop_after: 1h }')}
`);
  const lease = await s.use('a');
  await s.ask('p');
  await s.ask('n');
  // n idles out 60 ms after its request; a has had a request in flight for longer than that.
  await waitFor('n stopped at its first idle step', () => s.state('n') === 'stopped/unloaded');
  t.equal(s.state('a'), 'running/loaded', 'never idle while a request is in flight');
  lease.release('answered');
  await waitFor('a unloaded', () => s.state('a') === 'running/unloaded');
  await waitFor('a stopped', () => s.state('a') === 'stopped/unloaded');
  t.equal(s.state('p'), 'running/loaded', 'pinned stays');
  t.ok(s.transitions.filter((x) => x.model === 'a' && x.reason === 'idle').length >= 2);
});

t.test('preload starts and loads models at start; a crash fails in-flight work and restarts on demand', async (t) => {
  const s = setup(t, `models:\n  a: ${fake('preload: true')}\n  b: ${fake()}\n`);
  await s.c.preload();
  t.equal(s.state('a'), 'running/loaded');
  t.equal(s.state('b'), 'stopped/unloaded');
  s.driver.live('a')!.crash(3);
  await waitFor('a failed', () => s.c.get('a').process === 'failed');
  t.equal(s.c.get('a').lastError?.exitCode, 3);
  await s.ask('a');
  t.equal(s.spawns('a'), 2, 'the first crash restarts at once');
});

t.test('reload: removed drained then stopped, policy applied live, launch changes restarted when idle', async (t) => {
  const s = setup(t, `models:\n  keep: ${fake()}\n  gone: ${fake()}\n  relaunch: ${fake()}\n`);
  const inflight = await s.use('gone');
  const relaunchLease = await s.use('relaunch');
  await s.ask('keep');
  const next = parseConfig(`state_dir: /tmp/modelhub-fake\nmodels:
  keep: ${fake('aliases: [k]')}
  relaunch: { backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL} --new" }
  added: ${fake('preload: true')}
`, '/tmp/hub.yaml', { previousPorts: new Map(s.c.all().map((m) => [m.name, m.config.port!])) });
  const diff = s.c.applyConfig(next);
  t.same(diff, { added: ['added'], removed: ['gone'], restarted: ['relaunch'], updated: ['keep'], unchanged: [] });
  t.equal(s.c.resolve('k')?.name, 'keep', 'new alias works at once');
  t.equal(s.c.resolve('gone'), undefined, 'a removed model takes no new requests');
  t.equal(s.driver.live('gone')?.exit, undefined, 'but its in-flight request goes on');
  inflight.release('answered');
  await waitFor('gone stopped', () => !s.driver.live('gone'));

  const meanwhile = await s.use('relaunch'); // arrives while the old process is busy: served by it at once
  t.equal(s.spawns('relaunch'), 1, 'not restarted while busy');
  t.equal(s.c.status().models.find((m) => m.name === 'relaunch')?.restart_pending, true, 'status shows the restart waiting');
  relaunchLease.release('answered');
  t.equal(s.spawns('relaunch'), 1, 'still busy with the second request');
  meanwhile.release('answered');
  await waitFor('the swap once idle', () => !s.c.get('relaunch').restartPending);
  (await s.use('relaunch')).release('answered');
  t.equal(s.spawns('relaunch'), 2);
  t.match(s.driver.live('relaunch')!.spec.argv.join(' '), /--new$/, 'the new command runs');
  await waitFor('added preloaded', () => s.state('added') === 'running/loaded');
  t.equal(s.spawns('keep'), 1, 'keep untouched');
});

t.test('${PORT} and ${MODEL} are filled in env values too (e.g. OLLAMA_HOST)', async (t) => {
  const s = setup(t, `models:\n  o: { backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}", env: { OLLAMA_HOST: "127.0.0.1:\${PORT}", NAME: "\${MODEL}" } }\n`);
  await s.ask('o');
  t.same(s.driver.spawned[0].spec.env, { OLLAMA_HOST: `127.0.0.1:${s.c.get('o').config.port}`, NAME: 'o' });
  const c = parseConfig('models:\n  ollama: { backend: ollama, cmd: [ollama, serve], env: { OLLAMA_HOST: "127.0.0.1:${PORT}" } }\n', 'hub.yaml');
  t.ok(c.models.ollama.port, 'a cmd without ${PORT} is fine when env passes it');
});

t.test('a request arriving during an unload waits, then is served after a load: never by the sleeping backend', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  await s.ask('a');
  const openGate = s.driver.holdMemory();
  const unloading = s.c.unload('a');
  await waitFor('unloading', () => s.state('a') === 'running/unloading');
  let served = false;
  const request = s.use('a').then((l) => { served = true; return l; });
  await waitFor('the request to wait', () => s.c.get('a').queued === 1);
  t.notOk(served, 'not admitted while unloading');
  openGate();
  await unloading;
  const lease = await request;
  t.ok(served);
  t.same(s.driver.calls, ['unload a', 'load a'], 'unloaded, then loaded again for the request');
  t.equal(s.driver.live('a')!.loaded, true, 'the backend has its weights when the request goes through');
  lease.release('answered');
});

t.test('start failures back off (1 s, then 2 s); an operator start resets the backoff', async (t) => {
  const s = setup(t, `models:\n  x: ${fake()}\n`);
  s.driver.hold('x');
  const failOnce = async () => {
    const pending = s.use('x').catch((e: unknown) => e as HubError);
    await waitFor('the spawn', () => s.driver.live('x'));
    s.driver.live('x')!.crash(7);
    return pending;
  };
  const first = (await failOnce()) as HubError;
  t.equal(first.code, 'model_start_failed');
  t.match(first.message, /exit code 7/);
  t.equal(first.headers['retry-after'], '1');
  const during = (await s.use('x').catch((e: unknown) => e)) as HubError;
  t.equal(during.code, 'model_start_failed', 'refused while backing off');
  t.equal(during.headers['retry-after'], '1', 'with a short Retry-After: waiting does not change the cause');
  t.equal(s.spawns('x'), 1, 'without spawning');
  const firstRetryAt = s.c.get('x').retryAt;
  await waitFor('the first backoff to pass', () => Date.now() >= firstRetryAt);
  const beforeSecond = Date.now();
  const second = (await failOnce()) as HubError;
  t.equal(second.headers['retry-after'], '1', 'still a short Retry-After');
  t.ok(s.c.get('x').retryAt - beforeSecond >= 1900, 'but the backoff itself doubles (2 s)');
  s.driver.release('x');
  await s.c.start('x');
  t.equal(s.state('x'), 'running/loaded', 'an operator start retries at once');
  t.equal(s.c.get('x').failures, 0);
});

t.test('an operator stop cancels a start; shutdown fails requests still waiting', async (t) => {
  const s = setup(t, `models:\n  x: ${fake()}\n  y: ${fake()}\n`);
  s.driver.hold('x');
  const pending = s.use('x').catch((e: unknown) => e as HubError);
  await waitFor('the spawn', () => s.driver.live('x'));
  const proc = s.driver.live('x')!;
  await s.c.stop('x');
  const err = (await pending) as HubError;
  t.equal(err.code, 'model_start_failed');
  t.match(err.message, /was stopped \(operator\) while this request waited/);
  t.ok(proc.exit, 'the half-started process was stopped');
  t.equal(s.state('x'), 'stopped/unloaded');

  s.driver.hold('y');
  const waiting = s.use('y').catch((e: unknown) => e as HubError);
  await waitFor('the spawn', () => s.driver.live('y'));
  await s.c.shutdown();
  t.equal(((await waiting) as HubError).code, 'hub_shutting_down');
  t.equal(((await s.use('y').catch((e: unknown) => e)) as HubError).code, 'hub_shutting_down', 'and new ones are refused');
});

t.test('concurrent unloads of one model (idle and operator, say) make one backend call', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  await s.ask('a');
  const openGate = s.driver.holdMemory();
  const first = s.c.unload('a');
  await waitFor('unloading', () => s.state('a') === 'running/unloading');
  const second = s.c.unload('a');
  openGate();
  await Promise.all([first, second]);
  t.same(s.driver.calls, ['unload a'], 'one sleep call');
  t.equal(s.state('a'), 'running/unloaded');
  t.ok(s.c.get('a').admitting, 'admitting again');
});

t.test('acquireNow: a lease without a promise when the model can admit at once, else nothing (and nothing queued)', async (t) => {
  const s = setup(t, `models:\n  a: ${fake('max_concurrency: 1')}\n`);
  const m = s.c.get('a');
  t.equal(s.c.acquireNow(m), undefined, 'a stopped model: no');
  t.equal(m.process, 'stopped', 'and it did not start it');
  const first = await s.use('a');
  t.equal(s.c.acquireNow(m), undefined, 'its one slot is busy: no');
  t.same([m.inflight, m.queued], [1, 0], 'nothing was queued by asking');
  first.release('answered');
  const now = s.c.acquireNow(m);
  t.ok(now, 'ready with a free slot: the lease at once');
  t.equal(m.inflight, 1, 'counted in flight');
  now!.release('answered');
  t.equal(m.inflight, 0);
});
