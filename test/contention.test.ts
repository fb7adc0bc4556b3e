// Swap-aware contention and the hazards of the old engine, on the fake driver and the fake clock:
// collation with swap_hold, max_wait, minimum residency, cost-aware victims, atomic multi-model
// loads, the status a swap shows, a child that survives SIGKILL, two auto-port starts at once, a
// removed model's queue, a 5xx that must not reset the crash backoff, and the step function's table.
import t from 'tap';
import { parseConfig } from '../lib/config/load.js';
import type { HubError } from '../lib/errors.js';
import { releaseOutcome } from '../lib/http/proxy.js';
import { Controller } from '../lib/scheduler/controller.js';
import type { Transition } from '../lib/scheduler/context.js';
import { newModelState } from '../lib/scheduler/state.js';
import { step, type ActorEvent } from '../lib/scheduler/step.js';
import { FakeClock } from './support/fake-clock.js';
import { fakeDriver } from './support/fake-driver.js';

const fake = (extra = '') => `{ backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}"${extra ? `, ${extra}` : ''} }`;

function setup(t: { teardown(fn: () => unknown): void }, yaml: string) {
  const clock = new FakeClock();
  const driver = fakeDriver({ clock });
  const config = parseConfig(`state_dir: /tmp/modelhub-fake\ndefaults: { start_timeout: 20s, stop_timeout: 5s, health: { interval: 100ms } }\n${yaml}`, '/tmp/hub.yaml');
  const c = new Controller(config, { driver, hubCommand: ['hub'], drainTimeoutMs: 30_000 });
  const transitions: Transition[] = [];
  const bugs: string[] = [];
  c.on('transition', (x) => transitions.push(x));
  c.on('bug', (x) => bugs.push(x));
  t.teardown(async () => {
    let done = false;
    void c.shutdown().then(() => { done = true; });
    await clock.until(() => done, 600_000);
  });
  const box = <T>(p: Promise<T>) => {
    const b: { value?: T; error?: HubError; done: boolean; at?: number } = { done: false };
    p.then((value) => Object.assign(b, { value, done: true, at: clock.now() }), (error: HubError) => Object.assign(b, { error, done: true, at: clock.now() }));
    return b;
  };
  const use = (name: string) => box(c.acquire(c.get(name)));
  const state = (name: string) => `${c.get(name).process}/${c.get(name).memory}`;
  return { clock, driver, c, transitions, bugs, box, use, state };
}

const swapGroup = (hold: string, extra = '') => `groups: { gpu: { max_loaded: 1, swap_hold: ${hold}${extra} } }\nmodels:\n  a: ${fake('group: gpu')}\n  b: ${fake('group: gpu')}\n`;

t.test('collation: the loaded model keeps admitting for swap_hold, then one swap serves all of b\'s waiters', async (t) => {
  const s = setup(t, swapGroup('3s'));
  Object.assign(s.driver.behaviour('a'), { memoryTakesMs: 500 });
  Object.assign(s.driver.behaviour('b'), { readyAfterMs: 500 });
  const first = s.use('a');
  await s.clock.advance(0);
  const b1 = s.use('b');
  await s.clock.advance(1000);
  const a2 = s.use('a');
  await s.clock.advance(0);
  t.ok(a2.value, 'a still admits within swap_hold although b waits');
  const b2 = s.use('b');
  first.value!.release('answered');
  a2.value!.release('answered');
  await s.clock.advance(100);
  t.equal(s.state('a'), 'running/loaded', 'a is idle, but for a moment its agent may come back: a 250 ms grace');
  await s.clock.advance(200);
  t.equal(s.state('a'), 'running/unloading', 'then it is evicted, before the hold ends');
  await s.clock.advance(2000);
  t.ok(b1.value && b2.value, 'both of b\'s requests are served by one swap');
  t.equal(b1.value!.swapMs, 1750, 'b1 waited 1.75 s for the room (a\'s second request, the grace, a\'s 500 ms unload)');
  t.ok(b1.value!.coldStartMs! >= 500 && b1.value!.coldStartMs! < 600, `then about 500 ms for b to start (${b1.value!.coldStartMs} ms: readiness is probed with backoff)`);
  t.equal(b1.value!.queueMs, 1750, 'queue time is all waiting that was not b\'s own start');
  t.equal(s.driver.calls.filter((x) => x.startsWith('unload')).length, 1, 'one swap');
  b1.value!.release('answered');
  b2.value!.release('answered');
});

t.test('a busy model yields once swap_hold is over; its later requests wait their turn; max_wait bounds everyone', async (t) => {
  const s = setup(t, swapGroup('2s', ', max_wait: 30s'));
  const long = s.use('a');
  await s.clock.advance(0);
  const bSentAt = s.clock.now();
  const b = s.use('b');
  await s.clock.advance(1000);
  const a2 = s.use('a');
  await s.clock.advance(0);
  t.ok(a2.value, 'within the hold a admits');
  await s.clock.advance(1500);
  t.equal(s.c.get('a').admitting, false, 'after the hold a stops admitting and drains');
  const a3 = s.use('a');
  await s.clock.advance(0);
  t.notOk(a3.done, 'a new request for a waits');
  const group = s.c.status().groups.find((g) => g.name === 'gpu')!;
  t.same(group.waiting.map((w) => w.model).sort(), ['a', 'b'], 'status lists who waits');
  t.equal(group.next, 'b', 'and who loads next');
  t.match(group.why, /waits for a/, 'and why not yet');
  a2.value!.release('answered');
  await s.clock.advance(25_000);
  t.notOk(b.done, 'b still waits: a has a long request in flight');
  await s.clock.advance(5_000);
  t.equal(b.error?.code, 'capacity_exhausted', 'b is answered at max_wait instead of waiting for ever');
  t.equal(b.error?.status, 429);
  t.ok(Number(b.error?.headers['retry-after']) >= 1, 'with Retry-After');
  t.ok(b.at! - bSentAt <= 30_000, `answered ${(b.at! - bSentAt) / 1000} s after it was sent, within max_wait`);
  long.value!.release('answered');
  await s.clock.advance(1000);
  t.ok(a3.value ?? a3.error, 'a3 is settled');
  a3.value?.release('answered');
  await s.clock.advance(1000);
  const after = s.c.status().groups.find((g) => g.name === 'gpu')!;
  t.same([after.next, after.waiting], [null, []], 'once nobody waits, the status says so (no stale "next")');
});

t.test('minimum residency: a model loaded for a batch serves all of it before it yields', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 1, swap_hold: 0 } }\nmodels:\n  a: ${fake('group: gpu')}\n  b: ${fake('group: gpu, max_concurrency: 1')}\n`);
  const a = s.use('a');
  await s.clock.advance(0);
  const bs = [s.use('b'), s.use('b'), s.use('b')];
  a.value!.release('answered');
  await s.clock.advance(0);
  t.ok(bs[0].value, 'b loaded for its batch');
  const aAgain = s.use('a');
  await s.clock.advance(0);
  bs[0].value!.release('answered');
  await s.clock.advance(0);
  t.ok(bs[1].value, 'b serves the second of its batch although a waits (swap_hold 0)');
  bs[1].value!.release('answered');
  await s.clock.advance(0);
  t.ok(bs[2].value, 'and the third');
  t.notOk(aAgain.done, 'a waits meanwhile');
  bs[2].value!.release('answered');
  await s.clock.advance(1000);
  t.ok(aAgain.value, 'then a gets its turn');
  aAgain.value!.release('answered');
});

t.test('load times are measured and kept; the victim is the one cheapest to bring back', async (t) => {
  const s = setup(t, `groups: { gpu: { max_loaded: 2 } }\nmodels:\n  slow: ${fake('group: gpu')}\n  quick: ${fake('group: gpu')}\n  c: ${fake('group: gpu')}\n`);
  s.driver.behaviour('slow').readyAfterMs = 8000;
  s.driver.behaviour('quick').readyAfterMs = 200;
  for (const name of ['slow', 'quick']) {
    const r = s.use(name);
    await s.clock.advance(9000);
    r.value!.release('answered');
  }
  const measured = s.c.status().models.find((m) => m.name === 'slow')!.load_ms.start_ms!;
  t.ok(measured >= 8000 && measured < 8200, `start time measured (${measured} ms)`);
  await s.clock.advance(5000); // quick was used more recently, but costs far less to bring back
  const c = s.use('c');
  await s.clock.advance(1000);
  t.ok(c.value);
  t.equal(s.state('slow'), 'running/loaded', 'the slow model stays');
  t.equal(s.state('quick'), 'running/unloaded', 'the quick one gave way');
  t.ok(s.transitions.some((x) => x.model === 'quick' && x.to === 'unloading' && /^evicted for c: idle 5\.\ds, reload ~0\.[23]s$/.test(x.reason)), 'the reason says why');
  c.value!.release('answered');
});

t.test('hub load-model a b: refused at once where both cannot be loaded together, both loaded where they can', async (t) => {
  const s = setup(t, `groups: { one: { max_loaded: 1 }, two: { max_loaded: 2 } }\nmodels:\n  a: ${fake('group: one')}\n  b: ${fake('group: one')}\n  c: ${fake('group: two')}\n  d: ${fake('group: two')}\n`);
  const refused = s.box(s.c.loadMany(['a', 'b']));
  await s.clock.advance(0);
  t.equal(refused.error?.code, 'conflict');
  t.match(refused.error?.message, /cannot all be loaded at once: group one holds at most 1 \(max_loaded\)/);
  t.equal(s.driver.spawned.length, 0, 'nothing was started');
  const both = s.box(s.c.loadMany(['c', 'd']));
  await s.clock.advance(1000);
  t.ok(both.done && !both.error);
  t.same([s.state('c'), s.state('d')], ['running/loaded', 'running/loaded']);
});

t.test('a child that survives SIGKILL is given up on: failed with the reason, and shutdown goes on', async (t) => {
  const s = setup(t, `models:\n  z: ${fake()}\n`);
  const r = s.use('z');
  await s.clock.advance(0);
  r.value!.release('answered');
  Object.assign(s.driver.behaviour('z'), { ignoresTerm: true, unkillable: true });
  const stop = s.box(s.c.stop('z'));
  await s.clock.advance(20_000);
  t.ok(stop.done, 'the stop returns (stop_timeout 5 s, then a 5 s grace)');
  t.equal(s.state('z'), 'failed/unloaded');
  t.match(s.c.get('z').lastError?.message, /did not exit after SIGKILL/);
  t.ok(s.transitions.some((x) => x.model === 'z' && x.to === 'failed' && x.reason === 'did not exit after SIGKILL'));
  const down = s.box(s.c.shutdown());
  await s.clock.advance(20_000);
  t.ok(down.done, 'shutdown is not blocked');
  t.same(s.bugs, []);
});

t.test('two auto-port models whose ports are taken, started at once, get different ports', async (t) => {
  const s = setup(t, `ports: { start: 21000 }\nmodels:\n  a: ${fake()}\n  b: ${fake()}\n`);
  s.driver.takenPorts.add(21000);
  s.driver.takenPorts.add(21001);
  const both = [s.use('a'), s.use('b')];
  await s.clock.advance(100);
  t.ok(both.every((x) => x.value));
  const ports = ['a', 'b'].map((n) => s.c.get(n).config.port);
  t.not(ports[0], ports[1], `distinct ports (${ports.join(', ')})`);
  t.notOk(ports.some((p) => p === 21000 || p === 21001), 'neither took a taken port');
  for (const x of both) x.value!.release('answered');
});

t.test('a model removed by a reload releases its queue: the waiting requests are served, then it stops', async (t) => {
  const text = (withQ: boolean) => `state_dir: /tmp/modelhub-fake\nmodels:\n  keep: ${fake()}\n${withQ ? `  q: ${fake('max_concurrency: 1')}\n` : ''}`;
  const s = setup(t, `models:\n  keep: ${fake()}\n  q: ${fake('max_concurrency: 1')}\n`);
  const first = s.use('q');
  await s.clock.advance(0);
  const queued = [s.use('q'), s.use('q')];
  const old = s.c.get('q');
  s.c.applyConfig(parseConfig(text(false), '/tmp/hub.yaml', { previousPorts: new Map([['keep', s.c.get('keep').config.port!], ['q', old.config.port!]]) }));
  first.value!.release('answered');
  await s.clock.advance(0);
  t.ok(queued[0].value, 'the first queued request is served');
  queued[0].value!.release('answered');
  await s.clock.advance(0);
  t.ok(queued[1].value, 'and the second');
  queued[1].value!.release('answered');
  await s.clock.advance(10_000);
  t.equal(old.process, 'stopped', 'then it stops');
  t.notOk(s.c.holders().includes(old), 'and is gone from the hub');
});

t.test('an upstream 5xx does not count as a healthy answer (the crash backoff stays)', async (t) => {
  t.equal(releaseOutcome({ healthy: true, answered: true, status: 200 }), 'answered');
  t.equal(releaseOutcome({ healthy: true, answered: true, status: 404 }), 'answered', 'a client error is still a working backend');
  t.equal(releaseOutcome({ healthy: true, answered: true, status: 500 }), 'failed');
  t.equal(releaseOutcome({ healthy: true, answered: true, status: 503 }), 'failed');
  t.equal(releaseOutcome({ healthy: true, answered: false }), 'abandoned');
  t.equal(releaseOutcome({ healthy: false, answered: true, status: 200 }), 'failed');
});

t.test('the step function: a table of events against states, each step pure and microseconds long', async (t) => {
  const s = setup(t, `models:\n  m: ${fake('max_concurrency: 2, max_queue: 1')}\n`);
  const base = newModelState(s.c.get('m').config, true, { maxWaitMs: Infinity }, '/tmp/m.log');
  const run = (events: ActorEvent[], now = 1000) => {
    let state = base;
    const effects = [];
    for (const e of events) {
      const r = step(state, e, now);
      t.not(r.state, state, 'a new state object: the old one is never changed');
      state = r.state;
      effects.push(...r.effects);
    }
    return { state, effects };
  };
  const frozen = JSON.stringify(base);
  let r = run([{ type: 'arrive', id: 1, kind: 'request' }]);
  t.same(r.effects.map((e) => e.kind), [], 'a request for a stopped model waits for room from the coordinator');
  r = run([{ type: 'arrive', id: 1, kind: 'request' }, { type: 'granted' }]);
  t.same(r.effects.map((e) => e.kind), ['publish', 'spawn'], 'room granted: start');
  t.equal(r.state.proc.process, 'starting');
  r = run([{ type: 'arrive', id: 1, kind: 'request' }, { type: 'leave', id: 1 }, { type: 'granted' }]);
  t.same(r.effects.map((e) => e.kind), ['reject'], 'a waiter that left is answered; a grant that lands after it is not used');
  t.same([r.state.reserved, r.state.proc.process], [false, 'stopped'], 'no room held, nothing started');
  r = run([{ type: 'arrive', id: 1, kind: 'request' }, { type: 'granted' }, { type: 'leave', id: 1 }, { type: 'spawned', gen: 1 }, { type: 'probed', gen: 1, ready: true }]);
  t.same([r.state.reserved, r.state.proc.process, r.state.idleSince], [false, 'running', 1000], 'a start whose waiter left: up, holding no grant, its idle clock running');
  r = run([{ type: 'arrive', id: 1, kind: 'request' }, { type: 'granted' }, { type: 'spawned', gen: 1 }, { type: 'probed', gen: 1, ready: false }, { type: 'probed', gen: 1, ready: true }]);
  t.same(r.effects.filter((e) => e.kind === 'admit').map((e) => (e as { id: number }).id), [1], 'ready: the waiter is admitted');
  t.equal(r.state.inflight, 1);
  const ready = r.state;
  const at = (events: ActorEvent[]) => {
    let state = ready;
    const effects = [];
    for (const e of events) {
      const x = step(state, e, 2000);
      state = x.state;
      effects.push(...x.effects);
    }
    return { state, effects };
  };
  r = at([{ type: 'arrive', id: 2, kind: 'request' }]);
  t.ok(r.effects.some((e) => e.kind === 'admit'), 'a free slot admits at once');
  r = at([{ type: 'arrive', id: 2, kind: 'request' }, { type: 'arrive', id: 3, kind: 'request' }, { type: 'arrive', id: 4, kind: 'request' }]);
  t.same(r.effects.filter((e) => e.kind === 'reject').map((e) => (e as { ids: number[] }).ids), [[4]], 'two slots, one may wait behind them, the fourth is refused');
  r = at([{ type: 'probed', gen: 1, ready: true }]);
  t.same(r.effects, [], 'a late probe is ignored');
  r = at([{ type: 'exited', gen: 0, exit: { code: 0, signal: null }, tail: [] }]);
  t.same(r.effects, [], 'an exit of an older generation is ignored');
  r = at([{ type: 'memory-done', gen: 1, op: 'load' }]);
  t.same(r.effects.map((e) => e.kind), ['bug'], 'a load result with no load under way is refused as a bug, the state kept');
  r = at([{ type: 'down', to: 'unload', reason: 'operator', drainMs: Infinity }]);
  t.equal(r.state.proc.memory, 'loaded', 'an unload waits for the request in flight');
  r = at([{ type: 'down', to: 'unload', reason: 'operator', drainMs: Infinity }, { type: 'finish', outcome: 'answered' }]);
  t.equal(r.state.proc.memory, 'unloading', 'then unloads');
  r = at([{ type: 'down', to: 'stop', reason: 'operator', drainMs: 0, force: true }]);
  t.equal(r.state.proc.process, 'stopping', 'a forced stop does not wait');
  r = at([{ type: 'exited', gen: 1, exit: { code: 1, signal: null }, tail: ['boom'] }]);
  t.equal(r.state.proc.process, 'failed');
  t.match(r.state.lastError?.message, /crashed/);
  t.equal(JSON.stringify(base), frozen, 'the initial state was never mutated');
  const started = process.hrtime.bigint();
  let x = ready;
  for (let i = 0; i < 10_000; i++) x = step(step(x, { type: 'arrive', id: 10 + i, kind: 'request' }, 3000).state, { type: 'finish', outcome: 'answered' }, 3000).state;
  t.comment(`a request's two steps: ${(Number(process.hrtime.bigint() - started) / 20_000 / 1000).toFixed(2)} µs each`);
  t.equal(x.served, ready.served + 10_000);
});

t.test('load times survive a restart of the hub (kept in state_dir); a damaged file is only a lost hint', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { LoadHistory, UNKNOWN_LOAD_MS } = await import('../lib/scheduler/load-history.js');
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-loads-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = new LoadHistory(dir);
  t.equal(first.expected('m'), UNKNOWN_LOAD_MS, 'never seen: a default guess');
  for (const ms of [900, 1100, 1000]) first.record('m', 'start', ms);
  first.record('m', 'wake', 300);
  await first.flush(); // written in the background
  const second = new LoadHistory(dir); // the next hub on the same state_dir
  t.same(second.of('m'), { start_ms: 1000, wake_ms: 300 }, 'medians read back');
  t.equal(second.expected('m'), 300, 'a wake-up is what bringing it back costs when it has memory control');
  for (let i = 0; i < 20; i++) second.record('m', 'start', 5000);
  await second.flush();
  t.equal(new LoadHistory(dir).of('m').start_ms, 5000, 'only the last few are kept');
  writeFileSync(join(dir, 'load-times.json'), '{not json');
  t.equal(new LoadHistory(dir).expected('m'), UNKNOWN_LOAD_MS, 'a damaged file is ignored');
  const s = setup(t, `models:\n  m: ${fake()}\n`);
  const r = s.use('m');
  await s.clock.advance(0);
  r.value!.release('answered');
  t.match(s.c.status().models[0].load_ms, { start_ms: Number }, 'status shows the measured start');
});

t.test('start_timeout counts from the spawn: waiting for a predecessor of the same name is not the backend being slow', async (t) => {
  const text = (withD: boolean) => `state_dir: /tmp/modelhub-fake\ndefaults: { start_timeout: 20s, stop_timeout: 5s }\nmodels:\n${withD ? `  d: ${fake()}\n` : '  keep: ' + fake() + '\n'}`;
  const s = setup(t, `models:\n  d: ${fake()}\n`);
  s.driver.behaviour('d').readyAfterMs = 12_000;
  const first = s.use('d');
  await s.clock.advance(0);
  s.c.applyConfig(parseConfig(text(false), '/tmp/hub.yaml')); // removed while it starts: it serves what it accepted, then stops
  s.c.applyConfig(parseConfig(text(true), '/tmp/hub.yaml')); // added back: the new one waits for the old one
  const second = s.use('d');
  await s.clock.advance(13_000);
  t.ok(first.value, 'the old one served the request it had accepted');
  first.value!.release('answered');
  await s.clock.advance(15_000);
  t.ok(second.value, `the new one started after the old one stopped and was served (${second.error?.message ?? 'no error'})`);
  second.value?.release('answered');
});

t.test('readiness: a line of output from the backend makes the probe come at once, not at the next backoff step', async (t) => {
  const slowProbes = `{ backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}", health: { interval: 2s } }`;
  const s = setup(t, `models:\n  says: ${slowProbes}\n  silent: ${slowProbes}\n`);
  s.driver.behaviour('says').readyAfterMs = 3000;
  s.driver.behaviour('silent').readyAfterMs = 3000;
  const t0 = s.clock.now();
  const says = s.use('says');
  const silent = s.use('silent');
  await s.clock.advance(3000);
  t.equal(s.state('says'), 'starting/unloaded', 'not seen as ready yet: the probes back off');
  s.driver.live('says')!.print(); // "server is listening"
  await s.clock.advance(10);
  t.equal(s.state('says'), 'running/loaded', 'seen within a few ms of the line');
  t.ok(says.done && says.at! - t0 <= 3010, `its request admitted at ${says.at! - t0} ms`);
  t.equal(s.state('silent'), 'starting/unloaded', 'a silent backend is seen at the next probe of the backoff');
  await s.clock.advance(2000);
  t.equal(s.state('silent'), 'running/loaded');
  says.value?.release('answered');
  silent.value?.release('answered');
});

t.test("readiness: an adapter's ready line is readiness itself, with no probe; any other line only brings the probe", async (t) => {
  const slowProbes = `{ backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}", health: { interval: 2s } }`;
  const s = setup(t, `models:\n  announces: ${slowProbes}\n  chatty: ${slowProbes}\n`);
  // Both would answer their probes "not ready" (held): only the ready line can bring one up.
  s.driver.hold('announces');
  s.driver.hold('chatty');
  const announces = s.use('announces');
  s.use('chatty');
  await s.clock.advance(100);
  s.driver.live('chatty')!.print('loading the weights\n');
  s.driver.live('announces')!.print('some log line\nfake ready\n');
  await s.clock.advance(10);
  t.equal(s.state('announces'), 'running/loaded', 'the ready line made it ready although its probe would say no');
  t.ok(announces.done, 'and its request was admitted');
  t.equal(s.state('chatty'), 'starting/unloaded', 'another line only makes the hub probe, and the probe says not yet');
  announces.value?.release('answered');
  s.driver.release('chatty');
  await s.clock.advance(2100);
  t.equal(s.state('chatty'), 'running/loaded');
});

t.test('a request that leaves while its model starts: the model comes up, holds no grant, and idles out', async (t) => {
  const s = setup(t, `models:\n  a: { backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}", idle: { unload_after: 2s, stop_after: 4s } }\n`);
  s.driver.behaviour('a').readyAfterMs = 1000;
  const gone = new AbortController();
  const left = s.box(s.c.acquire(s.c.get('a'), gone.signal));
  await s.clock.advance(500);
  gone.abort();
  await s.clock.advance(0);
  t.match(left.error, { code: 'bad_request', message: /closed the connection while its request waited/ }, 'the waiter is answered and gone');
  await s.clock.advance(600);
  t.equal(s.state('a'), 'running/loaded', 'the start already under way finished');
  t.ok(s.c.status().models[0].idle_deadline, 'and its idle clock runs (no grant is left holding it)');
  await s.clock.advance(4000);
  t.equal(s.state('a'), 'stopped/unloaded', 'it stopped after stop_after');
});

t.test('a grant that comes after every waiter left is not kept: the room goes to the next model', async (t) => {
  const s = setup(t, `groups:\n  g: { max_loaded: 1, swap_hold: 0 }\nmodels:\n  a: ${fake('group: g')}\n  b: ${fake('group: g')}\n  c: ${fake('group: g')}\n`);
  const first = s.use('a');
  await s.clock.advance(10);
  const gone = new AbortController();
  const b = s.box(s.c.acquire(s.c.get('b'), gone.signal));
  await s.clock.advance(0);
  const c = s.use('c');
  first.value!.release('answered'); // a can go: b (the oldest) is planned for the room...
  gone.abort(); // ...and b's client leaves before the grant lands
  await s.clock.advance(5000);
  t.ok(b.error, 'b was answered (its client left)');
  t.equal(s.driver.spawned.filter((p) => p.model === 'b').length, 0, 'b was never started');
  t.ok(c.value, `c got the room (${c.error?.message ?? 'served'})`);
  t.equal(s.state('b'), 'stopped/unloaded');
  c.value?.release('answered');
});
