// Model-based concurrency test of the lifecycle engine (fast-check commands). Each case is a random
// interleaving of requests (short, long, abandoned), operator actions, reloads, crashes, stubborn
// backends (slow or SIGTERM-deaf stops, slow or hanging memory calls, spawns that throw, starts that
// fail or never get ready), idle time passing and a hub shutdown — all on a fake clock and the fake
// driver. While it runs and after it settles, the engine's promises must hold:
//   never two live processes for one model; no live process after shutdown; no refused transition;
//   every request and operator action settled, in bounded time, with a HubError if it failed;
//   in-flight and queue counters back to zero; no model left mid-transition; no idle step dropped;
//   group, hub and GPU budgets never exceeded (a, b, d and e are placed on two 7 GiB GPUs, d only
//   on GPU 0); a busy model never evicted or idled out.
// A reference model predicts, from the case's commands alone, what each request and action may end
// with: a request for a model that no fault touched (no failing, stubborn or crashing backend, no
// operator stop, no removal, no shutdown) must be served, and every error must be one the faults in
// that case can explain for that model (refuse(), below). Commands do not always wait for the engine
// to settle: some run in the same turn, or after one microtask, so they land in the windows between
// an effect (a spawn being planned, a probe, a memory call) and its result.
// On failure fast-check prints the seed and the shrunk command list; replay with
// FC_SEED=<seed> FC_PATH=<path> FC_REPLAY=<replayPath>. FC_RUNS sets the number of cases; CI runs one fixed seed,
// npm run test:long 50,000 cases from a random one (FC_SEED=random).
import fc from 'fast-check';
import t from 'tap';
import { parseConfig } from '../lib/config/load.js';
import type { HubConfig } from '../lib/config/types.js';
import { HubError } from '../lib/errors.js';
import { Controller, type Lease } from '../lib/scheduler/controller.js';
import { FakeClock, settle } from './support/fake-clock.js';
import { fakeDriver, type FakeDriver, type FakeProcess } from './support/fake-driver.js';

const GiB = 2 ** 30;
const MODELS = ['a', 'b', 'c', 'd', 'p', 'e'] as const;
const GROUP = { maxLoaded: 2, maxMemory: 12 * GiB };
const HUB_MEMORY = 14 * GiB;
const GPU_MEMORY = 7 * GiB;
/** Longest a request or action may take to settle, in simulated time (durations are at most 60 s). */
const BOUND_MS = 60 * 60_000;

const fake = (name: string, extra: string) => `  ${name}: { cmd: "fake --port \${PORT} --model \${MODEL}", ${extra} }\n`;
/** Reload variants: 0 base; 1 adds e (preloaded); 2 changes a's command; 3 changes b's idle policy and removes d. */
function configText(variant: number): string {
  const a = variant === 2 ? 'backend: vllm, group: gpu, memory: 6GiB, gpus: 1, idle: { unload_after: 30s, stop_after: 90s }, cmd: "fake --port ${PORT} --model ${MODEL} --v2"' : 'backend: vllm, group: gpu, memory: 6GiB, gpus: 1, idle: { unload_after: 30s, stop_after: 90s }';
  let text = `state_dir: /tmp/modelhub-model-test
max_memory: 14GiB
gpus: [{ id: 0, memory: 7GiB }, { id: 1, memory: 7GiB }]
defaults: { start_timeout: 20s, stop_timeout: 5s, health: { interval: 1s } }
groups: { gpu: { max_loaded: 2, max_memory: 12GiB, on_full: evict } }
models:
`;
  text += variant === 2 ? `  a: { ${a} }\n` : fake('a', a);
  text += fake('b', `backend: vllm, group: gpu, memory: 6GiB, gpus: 1, idle: ${variant === 3 ? '{ unload_after: 10s, stop_after: 50s }' : '{ unload_after: 40s, stop_after: 40s }'}`);
  text += fake('c', 'backend: llama-cpp, group: gpu, memory: 4GiB, idle: { unload_after: 20s }');
  if (variant !== 3) text += fake('d', 'backend: vllm, memory: 2GiB, gpus: [0], max_concurrency: 1, max_queue: 2, idle: { unload_after: 60s, stop_after: 120s }');
  text += fake('p', 'backend: vllm, memory: 1GiB, pinned: true');
  if (variant === 1) text += fake('e', 'backend: vllm, group: gpu, memory: 2GiB, gpus: 1, preload: true, idle: { unload_after: 15s, stop_after: 30s }');
  return text;
}

interface Track {
  what: string;
  /** The model it names, and whether it is a request or an operator action. */
  model: string;
  kind: 'request' | 'operator';
  issuedAt: number;
  settledAt?: number;
  /** The error code it ended with, if any, and its message. */
  code?: string;
  message?: string;
  /** Its client hung up before it was admitted (it may then end with bad_request, and nothing else changes). */
  left?: boolean;
}

interface World {
  clock: FakeClock;
  driver: FakeDriver;
  c: Controller;
  tracks: Track[];
  leases: Array<{ lease: Lease; proc?: FakeProcess; end(outcome: 'answered' | 'failed' | 'abandoned'): void }>;
  violations: string[];
  shutdown?: Promise<void>;
}

const ALLOWED = new Set(['model_busy', 'capacity_exhausted', 'model_start_failed', 'model_start_timeout', 'backend_unavailable', 'hub_shutting_down', 'model_not_found', 'not_found', 'bad_request']);

function settleTrack(w: World, track: Track, err?: unknown): void {
  track.settledAt = w.clock.now();
  if (err === undefined) return;
  if (!(err instanceof HubError)) w.violations.push(`${track.what} failed with a non-HubError: ${String((err as Error)?.stack ?? err)}`);
  else {
    track.code = err.code;
    track.message = err.message;
    if (!ALLOWED.has(err.code)) w.violations.push(`${track.what} failed with ${err.code}: ${err.message}`);
  }
}

/**
 * The reference: which error codes the faults of a case can explain for one model. Everything not
 * listed must succeed. Derived from the command labels only, never from the engine.
 */
function refuse(labels: readonly string[], model: string, kind: 'request' | 'operator'): Set<string> {
  const on = (what: string) => labels.some((l) => l === `${what} ${model}` || l.startsWith(`${what} ${model} `));
  const knob = (...names: string[]) => names.some((n) => labels.includes(`backend ${model} ${n}`));
  const codes = new Set<string>();
  if (labels.includes('shutdown')) codes.add('hub_shutting_down');
  // A start that fails, a spawn that throws, a load that hangs, a crash (then backoff), or an operator stop cancelling waiters.
  if (knob('fail-start', 'spawn-throws', 'hang-memory') || on('crash') || on('operator stop')) codes.add('model_start_failed');
  // A fail-start knob set after the process was spawned makes it never ready (it does not exit): a timeout.
  if (knob('never-ready', 'fail-start')) codes.add('model_start_timeout');
  // d is removed by reload variant 3 and e exists only in variant 1: naming them after a reload may find nothing.
  const removable = (model === 'd' && labels.includes('reload variant 3')) || model === 'e';
  // Named after it was removed (model_not_found for a request, not_found for an action), or removed
  // while it waited for a start (model_not_found), or while its start was under way.
  if (removable) for (const code of ['model_not_found', 'model_start_failed', ...(kind === 'operator' ? ['not_found'] : [])]) codes.add(code);
  // d has max_concurrency 1 and max_queue 2.
  if (model === 'd' && kind === 'request') codes.add('model_busy');
  // An operator load or unload cancelled by a stop, or a stop racing a start of the same model.
  if (kind === 'operator' && (on('operator stop') || labels.some((l) => l.startsWith('reload')))) codes.add('model_start_failed');
  // Group models wait for room at most max_wait (5 min): only a stuck backend in the group can make one wait that long.
  const stuckInGroup = ['a', 'b', 'c', 'e'].some((m) => ['never-ready', 'hang-memory', 'slow-start', 'slow-memory', 'ignore-term', 'slow-stop'].some((k) => labels.includes(`backend ${m} ${k}`)));
  if (['a', 'b', 'c', 'e'].includes(model) && stuckInGroup) codes.add('capacity_exhausted');
  return codes;
}

function newWorld(): World {
  const clock = new FakeClock();
  const driver = fakeDriver({ clock, memoryControl: (m) => m.backend !== 'llama-cpp' });
  const c = new Controller(parseConfig(configText(0), '/tmp/hub.yaml'), { driver, hubCommand: ['hub'], drainTimeoutMs: 30_000 });
  const w: World = { clock, driver, c, tracks: [], leases: [], violations: [] };
  c.on('bug', (message) => w.violations.push(`refused transition: ${message}`));
  c.on('transition', (tr) => {
    const models = c.status().models;
    // A start cancelled or timed out holds its memory until its process has exited.
    const unready = (m: (typeof models)[number]) => m.process === 'stopping' && m.started_at !== null && !(m.ready_at !== null && m.ready_at >= m.started_at);
    const holding = models.filter((m) => m.memory !== 'unloaded' || m.process === 'starting' || unready(m));
    const inGroup = holding.filter((m) => m.group === 'gpu');
    const groupMemory = inGroup.reduce((n, m) => n + m.memory_bytes, 0);
    const hubMemory = holding.reduce((n, m) => n + m.memory_bytes, 0);
    if (inGroup.length > GROUP.maxLoaded || groupMemory > GROUP.maxMemory) w.violations.push(`group gpu over budget after ${tr.model} ${tr.axis} ${tr.from}->${tr.to}: ${inGroup.map((m) => m.name).join(', ')}`);
    if (hubMemory > HUB_MEMORY) w.violations.push(`hub over budget after ${tr.model} ${tr.axis} ${tr.from}->${tr.to}`);
    // Each GPU holds at most its 7 GiB; each placed model is on as many devices as it asked for.
    for (const id of [0, 1]) {
      const on = holding.filter((m) => m.gpus?.includes(id));
      if (on.reduce((n, m) => n + m.memory_bytes / m.gpus!.length, 0) > GPU_MEMORY) w.violations.push(`GPU ${id} over its memory after ${tr.model} ${tr.axis} ${tr.from}->${tr.to}: ${on.map((m) => m.name).join(', ')}`);
    }
    for (const m of holding) if (m.gpus && (m.gpus.length !== 1 || (m.name === 'd' && m.gpus[0] !== 0))) w.violations.push(`${m.name} holds memory on GPUs [${m.gpus.join(', ')}] after ${tr.model} ${tr.axis} ${tr.from}->${tr.to}`);
    const freeing = tr.to === 'unloading' || (tr.axis === 'process' && tr.to === 'stopping');
    if (freeing && (tr.reason.startsWith('evicted') || tr.reason === 'idle')) {
      const m = models.find((x) => x.name === tr.model);
      if (m && m.in_flight > 0) w.violations.push(`${tr.model} was ${tr.reason} with ${m.in_flight} requests in flight`);
    }
  });
  // A backend that dies drops the connections of the requests it was serving.
  driver.onExit((dead) => { for (const l of w.leases) if (l.proc === dead) l.end('failed'); });
  return w;
}

type Cmd = fc.AsyncCommand<object, World>;
/** How long the engine may run before the next command: 0 = the same turn, 1 = one microtask, 2 = one macrotask, 3 = until it settles. */
type Gap = 0 | 1 | 2 | 3;
const cmd = (label: string, run: (w: World) => void | Promise<void>, gap: Gap = 3): Cmd & { inner: typeof run } => ({
  inner: run,
  check: () => true,
  run: async (_model, w) => {
    await run(w);
    if (gap === 1) await Promise.resolve();
    else if (gap === 2) await new Promise((resolve) => setImmediate(resolve));
    else if (gap === 3) await settle();
    if (w.driver.duplicates.length) throw new Error(`two live processes: ${w.driver.duplicates.join('; ')}`);
  },
  toString: () => (gap === 3 ? label : `${label} (gap ${gap})`),
});
/** Most commands let the engine settle; some land in the middle of what the last one set off. */
const withGap = (arb: fc.Arbitrary<Cmd>): fc.Arbitrary<Cmd> =>
  fc.tuple(arb, fc.constantFrom<Gap>(0, 1, 2, 3, 3, 3)).map(([c, gap]) => {
    const label = c.toString();
    return gap === 3 ? c : cmd(label, (c as ReturnType<typeof cmd>).inner, gap);
  });

const model = fc.constantFrom(...MODELS);
const request =
  fc.record({
    m: model,
    ms: fc.integer({ min: 0, max: 60_000 }),
    abort: fc.option(fc.integer({ min: 0, max: 30_000 }), { nil: undefined }),
    // The client hangs up after this long, admitted or not (a waiting request then leaves the queue).
    leave: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined, freq: 4 }),
  }).map(({ m, ms, abort, leave }) =>
    cmd(`request ${m} ${ms}ms${abort === undefined ? '' : ` abort@${abort}`}${leave === undefined ? '' : ` leave@${leave}`}`, (w) => {
      const runtime = w.c.resolve(m);
      if (!runtime) return;
      const track: Track = { what: `request ${m}`, model: m, kind: 'request', issuedAt: w.clock.now() };
      w.tracks.push(track);
      const gone = new AbortController();
      if (leave !== undefined) {
        w.clock.after(leave, () => {
          if (track.settledAt === undefined) track.left = true;
          gone.abort();
        });
      }
      w.c.acquire(runtime, gone.signal).then(
        (lease) => {
          settleTrack(w, track);
          let done = false;
          const entry = { lease, proc: w.driver.live(m), end: (outcome: 'answered' | 'failed' | 'abandoned') => { if (!done) { done = true; lease.release(outcome); } } };
          w.leases.push(entry);
          w.clock.after(ms, () => entry.end('answered'));
          if (abort !== undefined && abort < ms) w.clock.after(abort, () => entry.end('abandoned'));
        },
        (err: unknown) => settleTrack(w, track, err),
      );
    }),
  );
const others = [
  fc.record({ action: fc.constantFrom('start', 'stop', 'load', 'unload'), m: model }).map(({ action, m }) =>
    cmd(`operator ${action} ${m}`, (w) => {
      const track: Track = { what: `operator ${action} ${m}`, model: m, kind: 'operator', issuedAt: w.clock.now() };
      w.tracks.push(track);
      const c = w.c as unknown as Record<string, (name: string) => Promise<void>>;
      c[action].call(w.c, m).then(() => settleTrack(w, track), (err: unknown) => settleTrack(w, track, err));
    }),
  ),
  fc.integer({ min: 0, max: 3 }).map((variant) =>
    cmd(`reload variant ${variant}`, (w) => {
      if (w.c.shuttingDown) return;
      const previousPorts = new Map(w.c.holders().map((m) => [m.name, m.config.port!]));
      const next: HubConfig = parseConfig(configText(variant), '/tmp/hub.yaml', { previousPorts });
      w.c.applyConfig(next);
    }),
  ),
  model.map((m) => cmd(`crash ${m}`, (w) => w.driver.live(m)?.crash(1))),
  fc.record({ m: model, knob: fc.constantFrom('slow-start', 'never-ready', 'fail-start', 'slow-stop', 'ignore-term', 'slow-memory', 'hang-memory', 'spawn-throws', 'normal') }).map(({ m, knob }) =>
    cmd(`backend ${m} ${knob}`, (w) => {
      const b = w.driver.behaviour(m);
      if (knob === 'normal') Object.assign(b, { readyAfterMs: 0, stopTakesMs: 0, ignoresTerm: false, memoryTakesMs: 0, spawnThrows: false, failsToStart: undefined });
      if (knob === 'slow-start') b.readyAfterMs = 10_000;
      if (knob === 'never-ready') b.readyAfterMs = Infinity;
      if (knob === 'fail-start') Object.assign(b, { failsToStart: 2, readyAfterMs: 2000 });
      if (knob === 'slow-stop') b.stopTakesMs = 3000;
      if (knob === 'ignore-term') b.ignoresTerm = true;
      if (knob === 'slow-memory') b.memoryTakesMs = 8000;
      if (knob === 'hang-memory') b.memoryTakesMs = Infinity;
      if (knob === 'spawn-throws') b.spawnThrows = true;
    }),
  ),
];
const advance = (max: number) => fc.integer({ min: 1, max }).map((ms) => cmd(`advance ${ms}ms`, (w) => w.clock.advance(ms)));
const shutdown = fc.constant(cmd('shutdown', (w) => { w.shutdown ??= w.c.shutdown(); }));
/** Weighted so that most cases have traffic on several models at once, swaps, and time passing. */
const commands = [
  fc.oneof(
    { arbitrary: withGap(request), weight: 8 },
    ...others.map((arbitrary) => ({ arbitrary: withGap(arbitrary), weight: 2 })),
    { arbitrary: advance(5_000), weight: 4 },
    { arbitrary: advance(120_000), weight: 1 },
    { arbitrary: shutdown, weight: 1 },
  ),
];

/** Lets everything run out: requests end, timeouts fire, idle ladders finish; then checks the end state. */
async function finish(w: World, labels: readonly string[]): Promise<void> {
  for (let i = 0; i < 8; i++) await w.clock.advance(30 * 60_000);
  for (const track of w.tracks) {
    const allowed = refuse(labels, track.model, track.kind);
    if (track.left) allowed.add('bad_request'); // its client hung up while it waited
    if (track.code !== undefined && !allowed.has(track.code)) {
      w.violations.push(`${track.what} failed with ${track.code} ("${track.message}"), which nothing in this case explains (the reference allows ${[...allowed].join(', ') || 'no error'})`);
    }
    if (track.settledAt === undefined) w.violations.push(`${track.what} (issued at +${track.issuedAt - Date.UTC(2026, 0, 1)}ms) never settled`);
    else if (track.settledAt - track.issuedAt > BOUND_MS) w.violations.push(`${track.what} took ${(track.settledAt - track.issuedAt) / 1000}s to settle`);
  }
  for (const m of w.c.status().models) {
    if (m.in_flight || m.queued) w.violations.push(`${m.name}: ${m.in_flight} in flight and ${m.queued} queued after everything ended`);
    if (['starting', 'stopping'].includes(m.process) || ['loading', 'unloading'].includes(m.memory)) w.violations.push(`${m.name} left in ${m.process}/${m.memory}`);
    if (!m.pinned && m.process === 'running' && !w.c.shuttingDown) w.violations.push(`${m.name} still running/${m.memory} hours after its last use: an idle step was dropped`);
  }
  let closed = false;
  void (w.shutdown ?? w.c.shutdown()).then(() => { closed = true; });
  await w.clock.until(() => closed, 10 * 60_000);
  const alive = w.driver.spawned.filter((p) => !p.exit);
  if (alive.length) w.violations.push(`alive after shutdown: ${alive.map((p) => `${p.model} pid ${p.pid}`).join(', ')}`);
  if (w.driver.duplicates.length) w.violations.push(`two live processes: ${w.driver.duplicates.join('; ')}`);
}

const runs = Number(process.env.FC_RUNS ?? 3000);
let commandsRun = 0;

// About 15 ms a case here (more on a busy machine); the long run needs far more than tap's default timeout.
const budget = Math.max(180_000, runs * 60);
// The file's own timeout too (set on the top-level test, tap's runner takes it for this file): the
// 3,000 cases are pure CPU, ~30 s on a quiet machine and ~105 s beside two busy loops, too close
// to the 120 s every other file gets.
t.setTimeout(budget + 30_000);
t.test(`lifecycle invariants hold over ${runs} random interleavings`, { timeout: budget }, async (t) => {
  const started = Date.now();
  const property = fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large', replayPath: process.env.FC_REPLAY }), async (cmds) => {
    const w = newWorld();
    await fc.asyncModelRun(() => ({ model: {}, real: w }), cmds);
    commandsRun += [...cmds].length;
    await finish(w, [...cmds].map((c) => String(c).replace(/ \(gap \d\)$/, '')));
    if (w.violations.length) throw new Error(w.violations.join('\n'));
  });
  // CI runs one fixed seed, so a run is repeatable; FC_SEED=random (npm run test:long does) explores new ones.
  const seed = process.env.FC_SEED === undefined ? 20261205 : process.env.FC_SEED === 'random' ? undefined : Number(process.env.FC_SEED);
  const details = await fc.check(property, { numRuns: runs, seed, path: process.env.FC_PATH, verbose: 1 });
  if (details.failed) {
    t.comment(`violations:\n${String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance)}`);
    t.fail(fc.defaultReportMessage(details) ?? 'a case failed');
  }
  else t.pass(`${details.numRuns} cases, ${commandsRun} commands, seed ${details.seed}, ${Date.now() - started} ms`);
  t.comment(`${details.numRuns} cases, ${commandsRun} commands, seed ${details.seed}, ${Date.now() - started} ms`);
});
