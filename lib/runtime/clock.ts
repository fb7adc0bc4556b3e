// Time for the scheduler. Everything in the lifecycle reads the time and arms timers through a Clock
// taken from the Driver, so the whole engine runs under a fake clock in tests (milliseconds of real
// time for hours of simulated idling).

export interface Timer {
  cancel(): void;
  /** Whether it keeps the process alive (it does until told otherwise); a clock may ignore this. */
  hold?(on: boolean): void;
}

export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms`; the returned handle cancels it. */
  after(ms: number, fn: () => void): Timer;
}

export const realClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t), hold: (on) => void (on ? t.ref() : t.unref()) };
  },
};

/** Resolves after `ms` on `clock`, or early (with false) when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => { timer.cancel(); resolve(false); };
    const timer = clock.after(ms, () => { signal?.removeEventListener('abort', onAbort); resolve(true); });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `promise`, or undefined after `ms` on `clock`. */
export async function within<T>(clock: Clock, ms: number, promise: Promise<T>): Promise<T | undefined> {
  let timer: Timer | undefined;
  const bound = new Promise<undefined>((resolve) => { timer = clock.after(ms, () => resolve(undefined)); });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    timer!.cancel();
  }
}
