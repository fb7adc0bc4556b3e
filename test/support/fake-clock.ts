// A clock that only moves when the test says so. Due timers run in time order, and between two of
// them every promise chain and setImmediate callback that is ready gets to run, so hours of idle
// ladder, timeouts and backoff pass in milliseconds and in a repeatable order.
import type { Clock, Timer } from '../../lib/runtime/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets everything that is ready run: microtasks and a few rounds of setImmediate. */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private t = Date.UTC(2026, 0, 1);
  private seq = 0;
  private timers: Pending[] = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    const timer: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  /** Moves time forward by `ms`, running every timer that comes due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    while (true) {
      await settle();
      this.timers = this.timers.filter((x) => !x.cancelled);
      let next: Pending | undefined;
      for (const x of this.timers) if (x.at <= end && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      if (!next) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await settle();
  }

  /** Advances in steps until `done()` holds; throws after `limitMs` of simulated time. */
  async until(done: () => boolean, limitMs: number, stepMs = 1000): Promise<void> {
    for (let spent = 0; !done(); spent += stepMs) {
      if (spent > limitMs) throw new Error(`still not settled after ${limitMs / 1000}s of simulated time`);
      await this.advance(stepMs);
    }
  }

  get pendingTimers(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }
}
