// Each lifecycle defect that was observed in use, replayed exactly on the fake driver and fake clock:
// the interleaving that broke the engine, and what must happen instead. (The model-based test
// explores such interleavings at random; these pin the ones seen in practice.)
import t from 'tap';
import { parseConfig } from '../lib/config/load.js';
import type { HubError } from '../lib/errors.js';
import { Controller, type Lease } from '../lib/scheduler/controller.js';
import type { Transition } from '../lib/scheduler/context.js';
import { FakeClock } from './support/fake-clock.js';
import { fakeDriver } from './support/fake-driver.js';

const fake = (extra = '') => `{ backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}"${extra ? `, ${extra}` : ''} }`;
const fakeNoMem = (extra = '') => `{ backend: llama-cpp, cmd: "fake --port \${PORT} --model \${MODEL}"${extra ? `, ${extra}` : ''} }`;

function setup(t: { teardown(fn: () => unknown): void }, yaml: string) {
  const clock = new FakeClock();
  const driver = fakeDriver({ clock, memoryControl: (m) => m.backend !== 'llama-cpp' });
  const config = parseConfig(`state_dir: /tmp/modelhub-fake\ndefaults: { start_timeout: 20s, stop_timeout: 5s }\n${yaml}`, '/tmp/hub.yaml');
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
  const state = (name: string) => `${c.get(name).process}/${c.get(name).memory}`;
  const spawns = (name: string) => driver.spawned.filter((p) => p.model === name).length;
  const alive = (name?: string) => driver.spawned.filter((p) => !p.exit && (name === undefined || p.model === name)).length;
  /** Settles a promise into a value or its HubError, without unhandled rejections. */
  const outcome = <T>(p: Promise<T>) => {
    const box: { value?: T; error?: HubError; done: boolean } = { done: false };
    p.then((value) => Object.assign(box, { value, done: true }), (error: HubError) => Object.assign(box, { error, done: true }));
    return box;
  };
  const use = (name: string) => outcome(c.acquire(c.get(name)));
  const shutdown = async () => {
    let done = false;
    void c.shutdown().then(() => { done = true; });
    await clock.until(() => done, 600_000);
  };
  return { clock, driver, c, transitions, bugs, state, spawns, alive, outcome, use, shutdown };
}

t.test('1. unload under way, a request waits, an operator stops: one process, never an orphan', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  const first = s.use('a');
  await s.clock.advance(0);
  first.value!.release('answered');
  Object.assign(s.driver.behaviour('a'), { memoryTakesMs: 5000, stopTakesMs: 3000 });
  const unload = s.outcome(s.c.unload('a'));
  await s.clock.advance(100);
  t.equal(s.state('a'), 'running/unloading');
  const waiting = s.use('a');
  await s.clock.advance(100);
  t.equal(s.c.get('a').queued, 1, 'the request waits for the unload to finish');
  const stop = s.outcome(s.c.stop('a'));
  await s.clock.advance(10_000);
  t.ok(stop.done && !stop.error, 'the stop finished');
  t.ok(unload.done, 'the unload it cut short settled');
  t.equal(waiting.error?.code, 'model_start_failed', 'the waiting request is told the model was stopped');
  t.match(waiting.error?.message, /was stopped \(operator\) while this request waited/);
  t.equal(s.state('a'), 'stopped/unloaded');
  t.equal(s.spawns('a'), 1, 'the stop was not undone by a second process');
  t.equal(s.alive(), 0);
  const again = s.use('a');
  await s.clock.advance(1000);
  t.ok(again.value, 'a later request starts it again');
  t.equal(s.alive('a'), 1, 'with exactly one process');
  again.value!.release('answered');
  await s.shutdown();
  t.equal(s.alive(), 0, 'and shutdown leaves nothing running');
  t.same(s.driver.duplicates, []);
  t.same(s.bugs, []);
});

t.test('1b. an activation queued in the group queue is cancelled by an operator stop', async (t) => {
  const s = setup(t, `groups: { g: { max_loaded: 1 } }\nmodels:\n  a: ${fake('group: g')}\n  b: ${fake('group: g')}\n`);
  s.driver.behaviour('b').readyAfterMs = 8000;
  const forB = s.use('b');
  await s.clock.advance(100);
  const forA = s.use('a'); // behind b's start in the group queue
  await s.clock.advance(100);
  await s.c.stop('a');
  await s.clock.advance(10_000);
  t.ok(forB.value, 'b started');
  t.equal(forA.error?.code, 'model_start_failed', 'the queued request for a is failed, not left to start it');
  t.equal(s.spawns('a'), 0, 'a never got a process');
  forB.value!.release('answered');
  await s.shutdown();
  t.equal(s.alive(), 0);
});

t.test('2. a model removed by a reload while it streams is still stopped at shutdown, and status shows it', async (t) => {
  const s = setup(t, `models:\n  keep: ${fake()}\n  gone: ${fake()}\n`);
  const stream = s.use('gone');
  await s.clock.advance(0);
  const previousPorts = new Map(s.c.holders().map((m) => [m.name, m.config.port!]));
  s.c.applyConfig(parseConfig(`state_dir: /tmp/modelhub-fake\nmodels:\n  keep: ${fake()}\n`, '/tmp/hub.yaml', { previousPorts }));
  await s.clock.advance(1000);
  const gone = s.c.status().models.find((m) => m.name === 'gone');
  t.match(gone, { removed: true, process: 'running', in_flight: 1 }, 'status still lists it while it finishes');
  t.equal(s.alive('gone'), 1, 'the stream goes on');
  await s.shutdown();
  t.equal(s.alive('gone'), 0, 'shutdown stopped it even though the config no longer names it');
  stream.value!.release('failed');
  await s.clock.advance(0);
  t.notOk(s.c.status().models.some((m) => m.name === 'gone'), 'gone from status once stopped');
});

t.test('3. a spawn that throws fails the start (503 with the cause) and frees the group', async (t) => {
  const s = setup(t, `groups: { g: { max_loaded: 1 } }\nmodels:\n  a: ${fake('group: g')}\n  b: ${fake('group: g')}\n`);
  s.driver.behaviour('a').spawnThrows = true;
  const r = s.use('a');
  await s.clock.advance(100);
  t.equal(r.error?.code, 'model_start_failed');
  t.equal(r.error?.status, 503);
  t.match(r.error?.message, /model a could not be started: EACCES: permission denied, mkdir/);
  t.equal(s.state('a'), 'failed/unloaded', 'not stuck in starting');
  const other = s.use('b');
  await s.clock.advance(100);
  t.ok(other.value, 'another member of the group starts: a holds no capacity');
  other.value!.release('answered');
});

t.test('4. an idle stop that comes due during a slow unload is taken as soon as the unload ends', async (t) => {
  const s = setup(t, `models:
  a: ${fake('idle: { unload_after: 10s, stop_after: 15s }')}
  b: ${fake('idle: { unload_after: 10s, stop_after: 10s }')}
  n: ${fakeNoMem('idle: { unload_after: 10s, stop_after: 10s }')}
`);
  for (const name of ['a', 'b', 'n']) {
    const r = s.use(name);
    await s.clock.advance(0);
    r.value!.release('answered');
  }
  s.driver.behaviour('a').memoryTakesMs = 8000;
  await s.clock.advance(10_001);
  t.equal(s.state('a'), 'running/unloading', 'a is unloading slowly');
  t.equal(s.state('b'), 'stopped/unloaded', 'b: equal unload_after and stop_after stop it at once');
  t.equal(s.state('n'), 'stopped/unloaded', 'without memory control, the first step stops');
  t.notOk(s.transitions.some((x) => x.model === 'b' && x.to === 'unloading' && x.axis === 'memory' && x.reason === 'idle' && s.transitions.indexOf(x) < s.transitions.findIndex((y) => y.model === 'b' && y.to === 'stopping')), 'b was stopped, not just unloaded');
  await s.clock.advance(5000); // stop_after (15 s) passes while the unload still runs
  t.equal(s.state('a'), 'running/unloading');
  await s.clock.advance(3100); // the unload ends at 18 s
  t.equal(s.state('a'), 'stopped/unloaded', 'the stop that came due meanwhile was not dropped');
});

t.test('5. a launch change keeps serving on the old process until it is idle, then swaps', async (t) => {
  const s = setup(t, `models:\n  r: ${fake()}\n`);
  const long = s.use('r');
  await s.clock.advance(0);
  const previousPorts = new Map(s.c.holders().map((m) => [m.name, m.config.port!]));
  s.c.applyConfig(parseConfig(`state_dir: /tmp/modelhub-fake\nmodels:\n  r: { backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL} --v2" }\n`, '/tmp/hub.yaml', { previousPorts }));
  const meanwhile = s.use('r');
  await s.clock.advance(10);
  t.ok(meanwhile.value, 'a request during the long stream is served at once');
  t.equal(meanwhile.value?.coldStartMs, undefined, 'without waiting');
  t.equal(s.spawns('r'), 1, 'by the old process');
  meanwhile.value!.release('answered');
  await s.clock.advance(60_000);
  t.equal(s.spawns('r'), 1, 'still the old one while the stream runs');
  long.value!.release('answered');
  await s.clock.advance(10);
  const after = s.use('r');
  await s.clock.advance(10);
  t.ok(after.value);
  t.equal(s.spawns('r'), 2, 'swapped once idle');
  t.match(s.driver.live('r')!.spec.argv.join(' '), /--v2$/);
  after.value!.release('answered');
});

t.test('6a. shutdown is bounded while a load hangs', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  const first = s.use('a');
  await s.clock.advance(0);
  first.value!.release('answered');
  await s.c.unload('a');
  s.driver.behaviour('a').memoryTakesMs = Infinity;
  const r = s.use('a');
  await s.clock.advance(1000);
  t.equal(s.state('a'), 'running/loading', 'the load hangs');
  const started = s.clock.now();
  await s.shutdown();
  t.ok(s.clock.now() - started <= 10_000, `shutdown took ${(s.clock.now() - started) / 1000}s of simulated time (stop_timeout is 5 s)`);
  t.equal(r.error?.code, 'hub_shutting_down');
  t.equal(s.alive(), 0);
});

t.test('6b. an operator stop during loading is not undone by the requests waiting for it', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  const first = s.use('a');
  await s.clock.advance(0);
  first.value!.release('answered');
  await s.c.unload('a');
  s.driver.behaviour('a').memoryTakesMs = 8000;
  const waiting = [s.use('a'), s.use('a'), s.use('a')];
  await s.clock.advance(1000);
  t.equal(s.state('a'), 'running/loading');
  await s.c.stop('a');
  await s.clock.advance(30_000);
  t.ok(waiting.every((w) => w.error?.code === 'model_start_failed'), 'every waiting request got an error');
  t.equal(s.state('a'), 'stopped/unloaded', 'and the model stayed stopped');
  t.equal(s.spawns('a'), 1);
});

t.test('6c. a client that left during a cold start does not reset the crash backoff', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  for (let i = 0; i < 2; i++) {
    const r = s.use('a');
    await s.clock.advance(0);
    s.driver.live('a')!.crash(1);
    r.value!.release('failed');
    await s.clock.advance(5000); // past the backoff
  }
  t.equal(s.c.get('a').failures, 2);
  const left = s.use('a');
  await s.clock.advance(0);
  left.value!.release('abandoned');
  t.equal(s.c.get('a').failures, 2, 'an abandoned request proves nothing about the backend');
  const answered = s.use('a');
  await s.clock.advance(0);
  answered.value!.release('answered');
  t.equal(s.c.get('a').failures, 0, 'an answer does');
});

t.test('10. max_queue bounds requests waiting behind other requests, never one waiting for its model to start', async (t) => {
  const s = setup(t, `models:\n  z: ${fake('max_concurrency: 1, max_queue: 0')}\n  q: ${fake('max_concurrency: 1, max_queue: 1')}\n  u: ${fake('max_queue: 0')}\n`);
  s.driver.behaviour('z').readyAfterMs = 2000;
  const cold = s.use('z');
  await s.clock.advance(0);
  t.notOk(cold.done, 'max_queue 0: a lone request to a stopped model waits for its start');
  await s.clock.advance(3000);
  t.ok(cold.value, 'and is served');
  const second = s.use('z');
  await s.clock.advance(0);
  t.equal(second.error?.code, 'model_busy', 'a second one while the first is in flight is refused');
  t.match(second.error?.message, /its one slot is busy and 0 requests already wait behind them \(max_queue 0\)/);
  t.equal(second.error?.headers['retry-after'], '1');
  cold.value!.release('answered');
  const warm = s.use('z');
  await s.clock.advance(0);
  t.ok(warm.value, 'a free slot serves at once');
  warm.value!.release('answered');

  s.driver.behaviour('q').readyAfterMs = 2000;
  const one = s.use('q');
  const two = s.use('q');
  const three = s.use('q');
  await s.clock.advance(0);
  t.notOk(one.done || two.done, 'the first waits for the start, the second behind it (max_queue 1)');
  t.equal(three.error?.code, 'model_busy', 'the third would be the second behind others: refused');
  await s.clock.advance(3000);
  t.ok(one.value, 'the first is served');
  t.notOk(two.done, 'the second waits for the slot');
  one.value!.release('answered');
  await s.clock.advance(0);
  t.ok(two.value, 'then gets it');
  two.value!.release('answered');

  s.driver.behaviour('u').readyAfterMs = 2000;
  const many = Array.from({ length: 5 }, () => s.use('u'));
  await s.clock.advance(3000);
  t.ok(many.every((r) => r.value), 'without max_concurrency nobody waits behind anyone: all five served after the start');
  for (const r of many) r.value!.release('answered');
  t.same(s.driver.duplicates, []);
});

t.test('the state machine refuses nothing in these scenarios and a late report of an old child is ignored', async (t) => {
  const s = setup(t, `models:\n  a: ${fake()}\n`);
  const r = s.use('a');
  await s.clock.advance(0);
  const old = s.driver.live('a')!;
  r.value!.release('answered');
  await s.c.stop('a');
  const again = s.use('a');
  await s.clock.advance(0);
  old.crash(9); // the old child "exits" again: its generation is gone
  await s.clock.advance(0);
  t.equal(s.state('a'), 'running/loaded', 'the new child is untouched');
  again.value!.release('answered');
  t.same(s.bugs, []);
});

export type { Lease };

t.test('11. without memory control: a model that sets only stop_after stops after exactly that; otherwise the earlier step stops it', async (t) => {
  const s = setup(t, `models:\n  only-stop: ${fakeNoMem('idle: { stop_after: 20m }')}\n  both: ${fakeNoMem('idle: { unload_after: 5m, stop_after: 30m }')}\n  inherited: ${fakeNoMem()}\n  sleeper: ${fake('idle: { stop_after: 20m }')}\n`);
  t.same(s.c.get('only-stop').config.idle, { unloadAfterMs: 0, stopAfterMs: 20 * 60_000 }, 'the inherited unload_after does not cut stop_after short');
  t.same(s.c.get('sleeper').config.idle, { unloadAfterMs: 10 * 60_000, stopAfterMs: 20 * 60_000 }, 'with memory control both steps stay');
  const leases = ['only-stop', 'both', 'inherited', 'sleeper'].map((m) => s.use(m));
  await s.clock.advance(0);
  const start = s.clock.now();
  for (const l of leases) l.value!.release('answered');
  const deadline = (m: string) => Date.parse(s.c.status().models.find((x) => x.name === m)!.idle_deadline!) - start;
  t.equal(deadline('only-stop'), 20 * 60_000, 'status says 20 minutes');
  t.equal(deadline('both'), 5 * 60_000, 'the earlier of the two');
  t.equal(deadline('inherited'), 10 * 60_000, 'the inherited unload_after, with the built-in 1h stop_after');
  await s.clock.advance(5 * 60_000 + 1000);
  t.equal(s.state('both'), 'stopped/unloaded');
  await s.clock.advance(5 * 60_000);
  t.equal(s.state('inherited'), 'stopped/unloaded');
  t.equal(s.state('sleeper'), 'running/unloaded', 'a backend with memory control unloads at 10 minutes');
  t.equal(s.state('only-stop'), 'running/loaded', 'still up at 10 minutes');
  await s.clock.advance(10 * 60_000);
  t.equal(s.state('only-stop'), 'stopped/unloaded', 'stopped at 20 minutes');
  t.equal(s.state('sleeper'), 'stopped/unloaded');
});
