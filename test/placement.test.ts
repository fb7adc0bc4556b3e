// GPU placement: the pure planner over two and four fake GPUs of mixed sizes (first fit by free
// memory, pinned devices, two-GPU models, eviction on the chosen device only, stability), and the
// controller with fake processes: the environment each child receives, a swap that brings a model
// back to its device, sleeping models that wake where their process is, the reason in transitions
// and status. The hub with a fake nvidia-smi is in placement-hub.test.ts.
import t from 'tap';
import { configProblems } from './support/config-problems.js';
import { parseConfig } from '../lib/config/load.js';
import { plan, type Slot } from '../lib/scheduler/capacity.js';
import { Controller } from '../lib/scheduler/controller.js';
import type { Transition } from '../lib/scheduler/context.js';
import type { GpuRoom, SlotGpu } from '../lib/scheduler/placement.js';
import { FakeClock } from './support/fake-clock.js';
import { fakeDriver } from './support/fake-driver.js';

const GiB = 2 ** 30;

/** A model that wants room now, or one that holds it (`on`: where it is placed). */
function slot(key: string, memoryGiB: number, gpu: SlotGpu, extra: Partial<Slot> = {}): Slot {
  const holds = !!gpu.on;
  return {
    key,
    name: key,
    memory: memoryGiB * GiB,
    counted: holds,
    wants: !holds,
    oldestAt: holds ? undefined : 0,
    busy: false,
    demand: holds ? 0 : 1,
    owed: 0,
    moving: false,
    leaving: false,
    pinned: false,
    held: false,
    servedSinceUp: 0,
    idleSince: holds ? 0 : undefined,
    loadMs: 1000,
    startTimeoutMs: 60_000,
    gpu,
    ...extra,
  };
}

const gpus = (...sizes: number[]): GpuRoom[] => sizes.map((s, id) => ({ id, memory: s * GiB, foreign: 0 }));
const run = (slots: Slot[], rooms: GpuRoom[], now = 10_000) => plan(slots, {}, Infinity, now, rooms);
const grants = (p: ReturnType<typeof plan>) => Object.fromEntries(p.decisions.flatMap((d) => (d.kind === 'grant' ? [[d.key, d.placement?.devices]] : [])));
const evicted = (p: ReturnType<typeof plan>) => p.decisions.filter((d) => d.kind === 'evict').map((d) => d.key);

t.test('two GPUs of mixed sizes: each model goes where the most memory is free', async (t) => {
  const rooms = gpus(24, 48);
  t.same(grants(run([slot('a', 20, { count: 1 })], rooms)), { a: [1] }, 'the 48 GiB device first');
  const p = run([slot('b', 20, { count: 1 }), slot('held', 30, { count: 1, on: [1] })], rooms);
  t.same(grants(p), { b: [0] }, 'GPU 1 has 18 GiB free, GPU 0 has 24: b goes to 0');
  const reason = p.decisions.find((d) => d.kind === 'grant')!;
  t.match(reason.kind === 'grant' && reason.placement?.reason, /^placed on GPU 0: 24GiB free; GPU 1 holds held$/);
  t.same(grants(run([slot('x', 10, { count: 1 }), slot('y', 10, { count: 1 })], gpus(24, 24))), { x: [0], y: [1] }, 'two in one plan spread over both');
});

t.test('four GPUs: pinned devices, two-GPU models split their memory', async (t) => {
  const rooms = gpus(24, 24, 80, 80);
  t.same(grants(run([slot('p', 10, { count: 1, only: [1] })], rooms)), { p: [1] }, 'gpus: [1] goes to 1 though 2 and 3 have more');
  t.same(grants(run([slot('tp', 140, { count: 2 })], rooms)), { tp: [2, 3] }, '70 GiB on each of the two 80 GiB devices');
  t.same(grants(run([slot('tp', 40, { count: 2 }), slot('big', 70, { count: 1, on: [2] })], rooms)), { tp: [0, 3] }, 'GPU 2 nearly full: the two with the most free, 3 (80) and 0 (24, the lower id of a tie)');
  t.same(grants(run([slot('tp', 100, { count: 2 }), slot('big', 70, { count: 1, on: [2] })], rooms)), {}, '50 GiB on each: only 3 could, so room is made');
  t.same(evicted(run([slot('tp', 100, { count: 2 }), slot('big', 70, { count: 1, on: [2] })], rooms)), ['big'], 'on GPU 2, beside 3');
  const never = run([slot('huge', 200, { count: 2 })], rooms);
  t.match(never.decisions, [{ kind: 'refuse', key: 'huge', message: /cannot be placed on a GPU: it needs 100GiB on each of 2 GPUs/ }], 'a model no pair can hold is refused at once, saying why');
  t.match(run([slot('five', 1, { count: 5 })], rooms).decisions, [{ kind: 'refuse', message: /needs 5 GPUs and the hub has 4/ }]);
  t.match(run([slot('gone', 1, { count: 1, only: [7] })], rooms).decisions, [{ kind: 'refuse', message: /GPU 7 is not among the hub's GPUs \(0, 1, 2, 3\)/ }]);
});

t.test('no device has room: idle models are evicted from the cheapest device only', async (t) => {
  const rooms = gpus(24, 24);
  const busyOn0 = slot('busy0', 20, { count: 1, on: [0] }, { busy: true, demand: 1 });
  const idleOn1 = slot('idle1', 20, { count: 1, on: [1] });
  const other = slot('idle1b', 2, { count: 1, on: [1] });
  const p = run([slot('w', 20, { count: 1 }), busyOn0, idleOn1, other], rooms);
  t.same(evicted(p), ['idle1'], 'only the idle model on GPU 1 (its 2 GiB neighbour is not needed), nothing on GPU 0');
  t.same(grants(p), {}, 'w waits for the eviction');
  // The head waits for GPU 1: a later model that fits GPU 0's 4 GiB is not held up, one that needs GPU 1 is.
  const q = run([slot('w', 20, { count: 1 }, { oldestAt: 0 }), slot('small', 3, { count: 1 }, { oldestAt: 1 }), slot('later', 3, { count: 1, only: [1] }, { oldestAt: 2 }), busyOn0, idleOn1, other], rooms);
  t.same(grants(q), { small: [0] });
  t.notOk(q.decisions.some((d) => d.key === 'later'), 'the device the head waits for is not given to a later model');
});

t.test('a model leaving a device is waited for; pinned models are never victims', async (t) => {
  const rooms = gpus(24);
  const leaving = slot('leaving', 20, { count: 1, on: [0] }, { leaving: true });
  const p = run([slot('w', 20, { count: 1 }), leaving], rooms);
  t.same(p.decisions, [], 'nothing evicted or granted');
  t.match(p.outlook['*'], { next: 'w', why: /waits for leaving to free GPU memory/ });
  const pinned = run([slot('w', 20, { count: 1 }), slot('pin', 20, { count: 1, on: [0] }, { pinned: true })], rooms);
  t.match(pinned.decisions, [{ kind: 'refuse', key: 'w', message: /no GPU it may use has room, and the models on them cannot be evicted \(pin: pinned, or being loaded together by an operator\)/ }]);
});

t.test('room made beside a model already leaving; a later model behind the head waits, never refused', async (t) => {
  const rooms = gpus(7);
  const leaving = slot('leaving', 4, { count: 1, on: [0] }, { leaving: true });
  const idle = slot('idle', 2, { count: 1, on: [0] });
  const p = run([slot('w', 6, { count: 1 }), leaving, idle], rooms);
  t.same(evicted(p), ['idle'], 'what is leaving counts as gone: evicting the idle one as well makes room');
  const q = run([slot('head', 6, { count: 1, only: [0] }, { oldestAt: 0 }), slot('next', 6, { count: 1, only: [0] }, { oldestAt: 1 }), slot('x', 6, { count: 1, on: [0] })], rooms);
  t.same(evicted(q), ['x'], 'x makes room for the head');
  t.notOk(q.decisions.some((d) => d.key === 'next'), 'the next one waits behind the head: no refusal');
});

t.test("the waiting model's group decides: on_full reject refuses, wait waits without evicting; a device being emptied is kept", async (t) => {
  const rooms = gpus(24);
  const rule = (onFull: 'evict' | 'reject' | 'wait') => ({ g: { name: 'g', maxLoaded: Infinity, maxMemory: Infinity, onFull, swapHoldMs: 0 } });
  const x = slot('x', 20, { count: 1, on: [0] });
  const reject = plan([slot('w', 20, { count: 1 }, { group: 'g' }), x], rule('reject'), Infinity, 10_000, rooms);
  t.match(reject.decisions, [{ kind: 'refuse', key: 'w', message: /on_full policy is reject/ }]);
  const wait = plan([slot('w', 20, { count: 1 }, { group: 'g' }), x], rule('wait'), Infinity, 10_000, rooms);
  t.same(wait.decisions, [], 'nothing evicted');
  t.equal(wait.wakeAt, 60_000, 'looks again at its start_timeout');
  const late = plan([slot('w', 20, { count: 1 }, { group: 'g' }), x], rule('wait'), Infinity, 60_000, rooms);
  t.match(late.decisions, [{ kind: 'refuse', message: /within start_timeout/ }]);
  const leaving = slot('leaving', 18, { count: 1, on: [0] }, { leaving: true });
  const kept = run([slot('head', 20, { count: 1, only: [0] }, { oldestAt: 0 }), slot('later', 5, { count: 1 }, { oldestAt: 1 }), leaving], rooms);
  t.same(grants(kept), {}, 'later (5 GiB, which fits beside the leaving one) does not take the device head waits for');
});

t.test('stable placement: a model comes back to its device when that device has room', async (t) => {
  const rooms = gpus(24, 48);
  t.same(grants(run([slot('a', 10, { count: 1, before: [0] })], rooms)), { a: [0] }, 'GPU 0 again though GPU 1 has more free');
  const p = run([slot('a', 10, { count: 1, before: [0] }), slot('b', 20, { count: 1, on: [0] })], rooms);
  t.same(grants(p), { a: [1] }, 'its old device is full: elsewhere, nothing evicted');
  t.same(evicted(p), []);
  const wake = run([slot('s', 10, { count: 1, on: [0] }, { counted: false, wants: true, oldestAt: 0 }), slot('b', 20, { count: 1, on: [0] })], rooms);
  t.same(evicted(wake), ['b'], 'a sleeping model wakes only where its process is: room is made there');
});

t.test('other processes on a device count against it (gpus: auto)', async (t) => {
  const rooms: GpuRoom[] = [{ id: 0, memory: 24 * GiB, foreign: 20 * GiB }, { id: 1, memory: 24 * GiB, foreign: 0 }];
  t.same(grants(run([slot('a', 10, { count: 1, before: [0] })], rooms)), { a: [1] }, 'GPU 0 has only 4 GiB left');
  const full: GpuRoom[] = [{ id: 0, memory: 24 * GiB, foreign: 20 * GiB }];
  t.match(run([slot('a', 10, { count: 1 })], full).decisions, [{ kind: 'refuse', message: /GPU 0 24GiB \(20GiB held by other processes\)/ }]);
});

t.test('memory: auto never measured: only onto a device nothing else is placed on', async (t) => {
  const rooms = gpus(48, 24);
  const p = run([slot('u', 0, { count: 1 }, { sizeUnknown: true }), slot('b', 2, { count: 1, on: [0] })], rooms);
  t.same(grants(p), { u: [1] }, 'GPU 0 has more free, but b is on it');
  const beside = run([slot('x', 1, { count: 1, only: [1] }), slot('u', 0, { count: 1, on: [1] }, { sizeUnknown: true })], rooms);
  t.same(grants(beside), {}, 'and nothing goes beside it: its size is unknown');
  t.same(evicted(beside), ['u']);
});

// ---- hub.yaml -------------------------------------------------------------------------------------

const problems = configProblems;

t.test('gpus in hub.yaml: auto or a list; a model says how many or which', async (t) => {
  const c = parseConfig(`gpus:\n  - { id: 0, memory: 24GiB }\n  - { id: 1, memory: 48GiB }\nmodels:\n  a: ${model('10GiB', '1')}\n  b: ${model('40GiB', '[1]')}\n  c: ${model('40GiB', '2')}\n  d: { backend: llama-cpp, cmd: "x --port \${PORT}" }\n`, '/tmp/hub.yaml');
  t.same(c.gpus, { auto: false, devices: [{ id: 0, memory: 24 * GiB }, { id: 1, memory: 48 * GiB }] });
  t.same([c.models.a.gpus, c.models.b.gpus, c.models.c.gpus, c.models.d.gpus], [{ count: 1 }, { count: 1, only: [1] }, { count: 2 }, undefined]);
  t.same(parseConfig(`gpus: auto\nmodels:\n  a: ${model('10GiB', '4')}\n`, '/tmp/hub.yaml').gpus, { auto: true, devices: [] }, 'with auto, the count is checked against what nvidia-smi finds');
  const bad = problems(`gpus:\n  - { id: 0, memory: 24GiB }\n  - { id: 0, memory: 24GiB }\nmodels:
  many: ${model('1GiB', '3')}
  where: ${model('1GiB', '[5]')}
  twice: ${model('1GiB', '[0, 0]')}
  huge: ${model('40GiB', '1')}
  pair: ${model('60GiB', '2')}
  env: { backend: llama-cpp, cmd: "x --port \${PORT}", gpus: 1, env: { CUDA_VISIBLE_DEVICES: "1" } }
  remote: { url: "http://gpu-box:8000", gpus: 1 }
  zero: ${model('1GiB', '0')}
  nomem: { backend: llama-cpp, cmd: "x --port \${PORT}", gpus: 1 }
`);
  t.match(bad.join('\n'), /gpus\[1\]\.id.*GPU 0 is listed twice/);
  t.match(bad.join('\n'), /models\.many\.gpus.*needs 3 GPUs, but gpus lists 2/);
  t.match(bad.join('\n'), /models\.where\.gpus.*GPU 5 is not listed under gpus \(listed: 0, 0\)/);
  t.match(bad.join('\n'), /models\.twice\.gpus.*lists a GPU twice/);
  t.match(bad.join('\n'), /models\.huge\.memory.*40GiB over 1 GPU is 40GiB on each, more than any listed device holds; it could never be placed/);
  t.match(bad.join('\n'), /models\.pair\.memory.*60GiB over 2 GPUs is 30GiB on each, and fewer than 2 of the listed devices hold that much/);
  t.match(bad.join('\n'), /models\.env\.env\.CUDA_VISIBLE_DEVICES.*the hub sets CUDA_VISIBLE_DEVICES/);
  t.match(bad.join('\n'), /models\.remote\.gpus.*only applies to models with cmd/);
  t.match(bad.join('\n'), /models\.zero\.gpus.*expected a number of GPUs like 1, or a list of GPU ids like \[0\]/);
  t.match(bad.join('\n'), /models\.nomem\.gpus.*nomem has gpus but no memory: the hub places models by size; set memory:/);
  const inherited = problems(`gpus: auto\ndefaults: { gpus: 1, memory: 2GiB }\nmodels:\n  own: { backend: llama-cpp, cmd: "x --port \${PORT}", env: { CUDA_VISIBLE_DEVICES: "0" } }\n`);
  t.match(inherited.join('\n'), /models\.own\.env\.CUDA_VISIBLE_DEVICES.*the hub sets CUDA_VISIBLE_DEVICES for a model with gpus \(own\)/, 'gpus from defaults and its own CUDA_VISIBLE_DEVICES: an error, not a silent override');
  t.match(problems(`models:\n  a: ${model('1GiB', '1')}\n`).join('\n'), /models\.a\.gpus.*the hub lists no GPUs to place it on: add `gpus: auto`/);
  t.match(problems(`gpus: all\nmodels: {}\n`).join('\n'), /gpus.*expected auto, or a list of GPUs like \[\{ id: 0, memory: 24GiB \}\]/);
});

// ---- the controller with fake processes -------------------------------------------------------

function setup(t: { teardown(fn: () => unknown): void }, yaml: string, memoryControl = false) {
  // A fake clock: every step is a second apart, so which model was used last is never a tie.
  const clock = new FakeClock();
  const driver = fakeDriver({ memoryControl: () => memoryControl, clock });
  const config = parseConfig(`state_dir: /tmp/modelhub-fake\n${yaml}`, '/tmp/hub.yaml');
  const c = new Controller(config, { driver, hubCommand: ['hub'] });
  const transitions: Transition[] = [];
  c.on('transition', (x) => transitions.push(x));
  t.teardown(() => c.shutdown());
  const settled = async (work: Promise<unknown>) => {
    let done = false;
    const p = work.finally(() => (done = true));
    await clock.until(() => done, 60_000, 10);
    await p;
    await clock.advance(1000);
  };
  const ask = (name: string) => settled(c.acquire(c.get(name)).then((l) => l.release('answered')));
  const envOf = (name: string) => driver.spawned.filter((p) => p.model === name).at(-1)?.spec.env;
  return { driver, c, clock, transitions, ask, envOf, settled };
}

const model = (memory: string, gpus: string, backend = 'llama-cpp') => `{ backend: ${backend}, cmd: "fake --port \${PORT}", memory: ${memory}, gpus: ${gpus} }`;

t.test('each child sees only its devices: CUDA_VISIBLE_DEVICES from the placement', async (t) => {
  const s = setup(t, `gpus:\n  - { id: 0, memory: 24GiB }\n  - { id: 1, memory: 24GiB }\n  - { id: 2, memory: 48GiB }\nmodels:\n  a: ${model('30GiB', '1')}\n  b: ${model('20GiB', '2')}\n  c: ${model('4GiB', '[1]')}\n  plain: { backend: llama-cpp, cmd: "fake --port \${PORT}", env: { CUDA_VISIBLE_DEVICES: "3" } }\n`);
  await s.ask('a');
  await s.ask('b');
  await s.ask('c');
  await s.ask('plain');
  t.match(s.envOf('a'), { CUDA_VISIBLE_DEVICES: '2', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' }, '30 GiB fits only the 48 GiB device');
  t.match(s.envOf('b'), { CUDA_VISIBLE_DEVICES: '0,1' }, '10 GiB on each of 0 and 1');
  t.match(s.envOf('c'), { CUDA_VISIBLE_DEVICES: '1' }, 'pinned to 1, where b leaves 14 GiB');
  t.same(s.envOf('plain'), { CUDA_VISIBLE_DEVICES: '3' }, 'a model without gpus is not placed: its own env stands');
  const started = s.transitions.find((x) => x.model === 'b' && x.to === 'starting')!;
  t.same(started.gpus, [0, 1]);
  t.match(started.placement, /^placed on GPUs 0, 1: 24GiB and 24GiB free; GPU 2 holds a$/);
  const status = s.c.status().models.find((m) => m.name === 'b')!;
  t.same(status.gpus, [0, 1]);
  t.match(status.placement, /placed on GPUs 0, 1/);
});

t.test('a swap on one GPU: the idle model there is stopped, the other GPU untouched; it comes back to its device', async (t) => {
  const s = setup(t, `gpus:\n  - { id: 0, memory: 24GiB }\n  - { id: 1, memory: 24GiB }\nmodels:\n  a: ${model('20GiB', '1')}\n  b: ${model('20GiB', '1')}\n  c: ${model('20GiB', '1')}\n`);
  await s.ask('a');
  await s.ask('b');
  t.same([s.envOf('a')?.CUDA_VISIBLE_DEVICES, s.envOf('b')?.CUDA_VISIBLE_DEVICES], ['0', '1']);
  await s.ask('a'); // a was used last: b is the cheaper one to evict
  await s.ask('c');
  t.equal(s.c.get('b').process, 'stopped', 'b gave way');
  t.equal(s.c.get('a').process, 'running', 'a, on the other GPU, kept running');
  t.equal(s.envOf('c')?.CUDA_VISIBLE_DEVICES, '1', 'c took b\'s device');
  const evict = s.transitions.find((x) => x.model === 'b' && x.to === 'stopping')!;
  t.match(evict.reason, /evicted for c on GPU 1/);
  await s.settled(s.c.stop('c'));
  await s.ask('b');
  t.equal(s.envOf('b')?.CUDA_VISIBLE_DEVICES, '1', 'b came back to GPU 1, where it ran before');
  t.match(s.c.status().models.find((m) => m.name === 'b')!.placement, /placed on GPU 1 again \(where it ran before\)/);
});

t.test('a model whose memory was released wakes on the device its process holds', async (t) => {
  const s = setup(t, `gpus:\n  - { id: 0, memory: 24GiB }\n  - { id: 1, memory: 24GiB }\nmodels:\n  a: ${model('20GiB', '1', 'vllm')}\n  b: ${model('20GiB', '1', 'vllm')}\n  c: ${model('20GiB', '1', 'vllm')}\n`, true);
  await s.ask('a');
  await s.ask('b');
  await s.settled(s.c.unload('a'));
  await s.ask('c'); // GPU 0's memory was released by a: c goes there
  t.equal(s.envOf('c')?.CUDA_VISIBLE_DEVICES, '0');
  await s.ask('b');
  await s.ask('a'); // a's process still lives on GPU 0: it wakes there, and c is unloaded for it
  t.equal(s.c.get('a').memory, 'loaded');
  t.equal(s.c.get('c').memory, 'unloaded', 'c gave way on GPU 0');
  t.equal(s.c.get('b').memory, 'loaded', 'b on GPU 1 kept its memory');
  t.equal(s.driver.spawned.filter((p) => p.model === 'a').length, 1, 'a woke in its process, not a new one');
  const wake = s.transitions.filter((x) => x.model === 'a' && x.to === 'loading').at(-1)!;
  t.match(wake.placement, /placed on GPU 0 \(its process is there\)/);
});

t.test('a start cancelled on a GPU keeps the device until its process has exited', async (t) => {
  const s = setup(t, `gpus:\n  - { id: 0, memory: 24GiB }\nmodels:\n  a: ${model('20GiB', '[0]')}\n  b: ${model('20GiB', '[0]')}\n`);
  Object.assign(s.driver.behaviour('a'), { readyAfterMs: 10_000, stopTakesMs: 6000 });
  const first = s.c.acquire(s.c.get('a')).catch((err: Error) => err);
  await s.clock.advance(2000);
  const stopped = s.c.stop('a');
  const second = s.ask('b');
  await s.clock.advance(1000);
  const a = s.driver.spawned.find((p) => p.model === 'a')!;
  t.notOk(a.exit, "a's process is still exiting");
  t.equal(s.driver.spawned.filter((p) => p.model === 'b').length, 0, 'b is not started beside it');
  await second;
  t.ok(a.exit, 'b was started only once a had exited');
  t.ok(s.driver.spawned.find((p) => p.model === 'b')!.spawnedAt >= a.spawnedAt + 8000, 'at +8 s, not +2 s');
  t.match(await first, { code: 'model_start_failed' });
  await stopped;
});
