// One timer for the deadlines of every request in flight (a body that stops arriving, an answer its
// client stopped reading), instead of a timer armed, refreshed and cleared per request and per chunk:
// a request only writes its deadline into a field, and a tick every WATCH_TICK_MS looks at those that
// are watched. A deadline is met within one tick, far below the second-scale limits it enforces.
const WATCH_TICK_MS = 100;

export interface Watch {
  /** performance.now() after which it is overdue; Infinity while paused. */
  dueAt: number;
  /** Called once, when overdue; the watch is removed first. */
  fire(): void;
}

class Watchdog {
  private readonly watched = new Set<Watch>();
  private timer?: NodeJS.Timeout;

  add(w: Watch): void {
    this.watched.add(w);
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), WATCH_TICK_MS);
    this.timer.unref();
  }

  delete(w: Watch): void {
    this.watched.delete(w);
  }

  private tick(): void {
    if (!this.watched.size) {
      // Stopped only after a quiet tick, so back-to-back requests do not start and stop it each time.
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = performance.now();
    for (const w of this.watched) {
      if (now < w.dueAt) continue;
      this.watched.delete(w);
      w.fire();
    }
  }
}

export const watchdog = new Watchdog();
