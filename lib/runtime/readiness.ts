// Waiting for a freshly spawned backend to answer. Probes start after ~10 ms and back off to the
// model's health interval, so a fast server is noticed within milliseconds and a slow one is not
// hammered. The wait ends early when the process exits or the caller gives up.
import type { ExitInfo } from './child.js';

export type ReadyOutcome = { ready: true } | { ready: false; exit: ExitInfo } | { ready: false; timedOut: true } | { ready: false; cancelled: true };

export interface ReadinessWait {
  probe: () => Promise<boolean>;
  exited: Promise<ExitInfo>;
  timeoutMs: number;
  maxIntervalMs: number;
  signal?: AbortSignal;
}

export async function waitUntilReady(w: ReadinessWait): Promise<ReadyOutcome> {
  const deadline = Date.now() + w.timeoutMs;
  let interval = 10;
  let exit: ExitInfo | undefined;
  void w.exited.then((e) => { exit = e; });
  const interrupted = new Promise<void>((resolve) => {
    void w.exited.then(() => resolve());
    w.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  while (true) {
    if (w.signal?.aborted) return { ready: false, cancelled: true };
    if (exit) return { ready: false, exit };
    if (await w.probe()) return { ready: true };
    const left = deadline - Date.now();
    if (left <= 0) return { ready: false, timedOut: true };
    await Promise.race([sleep(Math.min(interval, left)), interrupted]);
    interval = Math.min(w.maxIntervalMs, interval * 1.5);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
