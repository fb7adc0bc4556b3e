// The idle clock under steady traffic, on the fake driver and a fake clock that counts the timers the
// engine sets: a model's idle timer is not moved with every request (it looks again when it fires),
// and it still comes due exactly idle-time after the last answer.
import t from 'tap';
import { parseConfig } from '../lib/config/load.js';
import { Controller } from '../lib/scheduler/controller.js';
import type { Clock, Timer } from '../lib/runtime/clock.js';
import { realClock } from '../lib/runtime/clock.js';
import { FakeClock } from './support/fake-clock.js';
import { fakeDriver } from './support/fake-driver.js';

/** The fake clock, counting the timers set and remembering whether each still keeps the process alive. */
class CountingClock implements Clock {
  set = 0;
  readonly held = new Set<object>();
  constructor(readonly inner: FakeClock) {}
  now(): number {
    return this.inner.now();
  }
  after(ms: number, fn: () => void): Timer {
    this.set++;
    const key = {};
    this.held.add(key);
    const timer = this.inner.after(ms, () => { this.held.delete(key); fn(); });
    return {
      cancel: () => { this.held.delete(key); timer.cancel(); },
      hold: (on) => void (on ? this.held.add(key) : this.held.delete(key)),
    };
  }
}

t.test('steady traffic sets no timer per request; the model idles out exactly unload_after after its last answer', async (t) => {
  const fake = new FakeClock();
  const clock = new CountingClock(fake);
  const driver = fakeDriver({ clock });
  const config = parseConfig(`state_dir: /tmp/modelhub-fake\nmodels:\n  a: { backend: vllm, cmd: "fake --port \${PORT} --model \${MODEL}", idle: { unload_after: 60s, stop_after: 1h } }\n`, '/tmp/hub.yaml');
  const c = new Controller(config, { driver, hubCommand: ['hub'] });
  t.teardown(async () => {
    let done = false;
    void c.shutdown().then(() => { done = true; });
    await fake.until(() => done, 600_000);
  });
  const state = () => `${c.get('a').process}/${c.get('a').memory}`;
  const ask = async (busyMs: number) => {
    const lease = c.acquire(c.get('a'));
    await fake.until(() => c.get('a').inflight === 1, 60_000, 100);
    await fake.advance(busyMs);
    (await lease).release('answered');
  };

  await ask(0); // the cold start
  t.equal(state(), 'running/loaded');
  const before = clock.set;
  for (let i = 0; i < 200; i++) {
    await ask(500);
    await fake.advance(500);
  }
  t.equal(state(), 'running/loaded', 'never idle for 60 s in 200 s of traffic');
  const set = clock.set - before;
  t.ok(set <= 10, `200 requests over 200 s set ${set} timers (the idle timer looks again when it fires, about once a minute)`);

  // A request in flight past the old deadline: the timer that fires meanwhile does nothing, and a
  // timer kept for no deadline does not keep the process alive.
  const lease = c.acquire(c.get('a'));
  await fake.until(() => c.get('a').inflight === 1, 60_000, 100);
  t.equal(clock.held.size, 0, 'no timer keeps the process alive while the model has no deadline');
  await fake.advance(90_000);
  t.equal(state(), 'running/loaded', 'not unloaded under a request');
  (await lease).release('answered');
  t.ok(clock.held.size >= 1, 'the idle timer is armed again, and held');
  await fake.advance(59_900);
  t.equal(state(), 'running/loaded', '59.9 s after the answer: still loaded');
  await fake.advance(200);
  t.not(state(), 'running/loaded', '60 s after the answer: it unloads');
  await fake.until(() => state() === 'running/unloaded', 60_000, 100);
});

t.test('a real timer told not to hold stops keeping the process alive, and holds again when told', async (t) => {
  let fired = false;
  const timer = realClock.after(60_000, () => { fired = true; });
  t.teardown(() => timer.cancel());
  // The handle is not exposed: look at the active timers Node lists for this process.
  const timers = () => (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
  const heldBefore = timers();
  timer.hold!(false);
  t.equal(timers(), heldBefore - 1, 'unheld: not among the resources that keep the process alive');
  timer.hold!(true);
  t.equal(timers(), heldBefore, 'held again');
  t.notOk(fired);
});
