// Telling apart the two reasons an event loop is late: its own synchronous work, or the OS keeping the
// process off the CPU (on a 2-core machine shared by the client, the hub and the backend, a process
// that is ready to run can wait tens of milliseconds for a core). Two measures:
//  - StallWatch, in the hub's process: a 1 ms timer that, for each late turn, reads how long the main
//    thread was ready to run but waited for a core meanwhile (Linux /proc/<pid>/task/<tid>/schedstat:
//    its run-queue wait is counted at each switch, exactly; its run time only at the 4 ms scheduler
//    tick, so the hub's own share is the stall minus the wait, not the run time read there). That
//    share is an upper bound: it also holds time the main thread slept, e.g. in a GC pause waiting for
//    V8's helper threads, which may themselves be waiting for a core;
//  - idleProbe: a separate Node process with nothing to do but the same watch: its stalls are what
//    this machine alone costs any process at the time. Its "own" share is not zero either: in this VM
//    a sleeping process's timer can also fire late (neither running nor waiting for a core meanwhile).
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Stall {
  /** How late the 1 ms timer was (wall clock), in ms. */
  ms: number;
  /** Of which the main thread was ready to run but waited for a core, in ms. */
  waitingMs: number;
  /** The rest: the hub's own work (its code, GC), in ms. */
  ownMs: number;
  /** When it began, in ms since the watch started. */
  atMs: number;
}

/** Stalls over 2 ms of this process's event loop, split into on-CPU and waiting time (Linux only). */
export class StallWatch {
  private fd: number;
  private buf = Buffer.alloc(128);
  private timer?: NodeJS.Timeout;
  /** The stall that was longest on the wall clock, and the one with the most of the hub's own time. */
  longest?: Stall;
  busiest?: Stall;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** undefined where there is no schedstat (not Linux, or a kernel without it). */
  static start(): StallWatch | undefined {
    let fd: number;
    try {
      fd = openSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'r');
    } catch {
      return undefined;
    }
    const watch = new StallWatch(fd);
    const started = performance.now();
    let last = started;
    let waited = watch.waited();
    watch.timer = setInterval(() => {
      const now = performance.now();
      const w = watch.waited();
      const late = now - last - 1;
      if (late > 2) {
        const waitingMs = Math.min(late, (w - waited) / 1e6);
        const stall = { ms: late, waitingMs, ownMs: late - waitingMs, atMs: last - started };
        if (!watch.longest || stall.ms > watch.longest.ms) watch.longest = stall;
        if (!watch.busiest || stall.ownMs > watch.busiest.ownMs) watch.busiest = stall;
      }
      last = now;
      waited = w;
    }, 1);
    return watch;
  }

  stop(): void {
    clearInterval(this.timer);
    closeSync(this.fd);
  }

  /** Nanoseconds the main thread has waited on a run queue since it started (the second field). */
  private waited(): number {
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    return Number(this.buf.toString('latin1', 0, n).split(' ')[1]);
  }
}

/** A Node process beside the measured one with nothing to do but the same watch: `stop()` gives its stalls. */
export async function idleProbe(): Promise<{ stop(): Promise<{ longest?: Stall; busiest?: Stall }> }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'probe'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => out.startsWith('ready\n') && resolve());
    child.once('exit', (code) => reject(new Error(`the idle probe exited with ${code}`)));
  });
  return {
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', () => resolve(JSON.parse(out.split('\n')[1] || '{}') as { longest?: Stall; busiest?: Stall }));
        child.stdin!.end('stop\n');
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'probe') {
  const watch = StallWatch.start();
  process.stdout.write('ready\n');
  process.stdin.once('data', () => {
    watch?.stop();
    process.stdout.write(`${JSON.stringify({ longest: watch?.longest, busiest: watch?.busiest })}\n`);
    process.exit(0);
  });
}
