// The step function's shortcuts for a request's two steps on a quiet ready model (step.ts quickAdmit and
// quickFinish) must decide exactly what the full step decides. Random event sequences walk one model
// through starts, loads, unloads, stops, crashes, reloads and queues with the full step; at every state
// reached, a request's arrival and its end are stepped both ways and must give equal states and effects.
// FC_SEED=random explores new sequences (the seed is printed on failure); FC_RUNS sets how many.
import t from 'tap';
import fc from 'fast-check';
import { parseConfig } from '../lib/config/load.js';
import { newModelState, type ModelState } from '../lib/scheduler/state.js';
import { fullStep, step, type ActorEvent } from '../lib/scheduler/step.js';

const config = parseConfig(
  'state_dir: /tmp/modelhub-fake\nmodels:\n  m: { backend: vllm, cmd: "fake --port ${PORT} --model ${MODEL}", max_concurrency: 2, max_queue: 1, idle: { unload_after: 5s, stop_after: 30s } }\n',
  '/tmp/hub.yaml',
).models.m;

type Pick = (s: ModelState, n: number) => ActorEvent;
// Events that move the model anywhere it can go; `n` picks ids and variants.
const EVENTS: Pick[] = [
  (_s, n) => ({ type: 'arrive', id: n, kind: n % 5 === 0 ? 'load' : 'request' }),
  // A request ends only after it was admitted (the actor sends `finish` for a lease it gave out).
  (s, n) => (s.inflight > 0 ? { type: 'finish', outcome: (['answered', 'failed', 'abandoned'] as const)[n % 3] } : { type: 'arrive', id: n, kind: 'request' }),
  (_s, n) => ({ type: 'leave', id: n }),
  () => ({ type: 'granted' }),
  (s) => ({ type: 'spawned', gen: s.proc.gen }),
  (s, n) => ({ type: 'probed', gen: s.proc.gen, ready: n % 4 !== 0 }),
  (s, n) => ({ type: 'memory-done', gen: s.proc.gen, op: n % 2 ? 'load' : 'unload' }),
  (_s, n) => ({ type: 'down', to: n % 2 ? 'unload' : 'stop', reason: 'operator', drainMs: n % 3 ? Infinity : 0, force: n % 7 === 0 }),
  (_s, n) => ({ type: 'timer', name: (['idle', 'expire', 'drain', 'kill-bound'] as const)[n % 4] }),
  (s, n) => ({ type: 'exited', gen: s.proc.gen, exit: { code: n % 2, signal: null }, tail: [] }),
  (_s, n) => ({ type: 'relaunch', config: { ...config, maxConcurrency: 1 + (n % 3) } }),
  (_s, n) => ({ type: 'hold', on: n % 2 === 0 }),
  () => ({ type: 'refused', error: new Error('no room') as never }),
];

/** A model started by a request that has finished: ready and idle (the walks start here and wander off). */
function readyModel(): ModelState {
  let s = newModelState(config, true, { maxWaitMs: 10_000 }, '/tmp/m.log');
  for (const e of [{ type: 'arrive', id: 1, kind: 'request' }, { type: 'granted' }, { type: 'spawned', gen: 1 }, { type: 'probed', gen: 1, ready: true }, { type: 'finish', outcome: 'answered' }] as ActorEvent[]) s = fullStep(s, e, 1000).state;
  return s;
}

t.test("a request's arrival and end: the shortcuts decide what the full step decides", async (t) => {
  const ready = readyModel();
  t.equal(ready.proc.process, 'running', 'the walks start from a ready model');
  let compared = 0;
  let quick = 0;
  const property = fc.property(
    fc.array(fc.tuple(fc.nat(EVENTS.length - 1), fc.nat(1000), fc.nat(3000)), { minLength: 1, maxLength: 60 }),
    (walk) => {
      // Some walks start after crashes (a restarted model counts them until a good answer).
      let s: ModelState = { ...ready, failures: walk[0][1] % 3 };
      let now = 1000;
      for (const [which, n, gap] of walk) {
        now += gap;
        const arrive: ActorEvent = { type: 'arrive', id: 100_000 + n, kind: 'request' };
        const finish: ActorEvent = { type: 'finish', outcome: n % 2 ? 'answered' : 'failed' };
        for (const e of s.inflight > 0 ? [arrive, finish] : [arrive]) {
          const full = fullStep(s, e, now);
          const short = step(s, e, now);
          compared++;
          if (short.state.waiting === s.waiting) quick++; // the shortcut shares the untouched queue
          if (JSON.stringify(short) !== JSON.stringify(full)) throw new Error(`${JSON.stringify(e)} at ${now} on ${JSON.stringify(s)}:\n shortcut ${JSON.stringify(short)}\n full     ${JSON.stringify(full)}`);
        }
        s = fullStep(s, EVENTS[which](s, n), now).state;
      }
    },
  );
  const seed = process.env.FC_SEED === undefined ? 20261205 : process.env.FC_SEED === 'random' ? undefined : Number(process.env.FC_SEED);
  const details = fc.check(property, { numRuns: Number(process.env.FC_RUNS ?? 2000), seed });
  if (details.failed) t.fail(`${fc.defaultReportMessage(details) ?? 'a case failed'}\n${String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance)}`);
  else t.pass(`${details.numRuns} walks, ${compared} comparisons, seed ${details.seed}`);
  t.ok(quick > compared / 20, `the shortcuts were taken (${quick} of ${compared}), so the comparison tested them`);
});

t.test('the shortcuts copy the state once and leave the old state as it was', async (t) => {
  const s = readyModel();
  t.equal(s.proc.process, 'running', 'a ready model, idle');
  const frozen = JSON.stringify(s);
  const admitted = step(s, { type: 'arrive', id: 2, kind: 'request' }, 2000);
  t.same(admitted.effects, [{ kind: 'admit', id: 2, waited: {} }, { kind: 'arm', name: 'idle', at: undefined }], 'admitted at once; the idle timer is cleared');
  t.equal(admitted.state.inflight, 1);
  const done = step(admitted.state, { type: 'finish', outcome: 'answered' }, 2500);
  t.same(done.effects, [{ kind: 'arm', name: 'idle', at: 2500 + 5000 }], 'idle again: unload_after counts from the end');
  t.same([done.state.inflight, done.state.served, done.state.idleSince], [0, s.served + 1, 2500]);
  t.equal(JSON.stringify(s), frozen, 'the old state was not changed');
});
