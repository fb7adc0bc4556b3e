// Telling apart the reasons an event loop is late: its own work, or this machine keeping the process
// off the CPU. On a 2-core VM shared by the client, the hub and the backend, a process that is ready to
// run can wait tens of milliseconds for a core; and the VM itself is paused by its host now and then
// (a sleeping process's timer fires 10-30 ms late, neither running nor waiting meanwhile; no counter
// inside the VM shows it: steal time reads 0). Two measures:
//  - StallWatch, in the hub's process: a 1 ms timer that, for each late turn, reads how long the main
//    thread was ready to run but waited for a core meanwhile (run-queue wait from Linux
//    /proc/<pid>/task/<tid>/schedstat, counted at each switch) and the CPU time the process used
//    (process.cpuUsage(), exact to the call: its main thread, and V8's GC and compiler helpers). The
//    hub's own share of a stall is that CPU time, at most the stall less the wait. It is an upper
//    bound: helpers working beside a main thread that is not waiting for them are counted too;
//  - idleProbe: a separate Node process with nothing to do but the same watch: its late turns are
//    what the machine alone costs any process at the time.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Stall {
  /** How late the 1 ms timer was (wall clock), in ms. */
  ms: number;
  /** Of which the main thread was ready to run but waited for a core, in ms. */
  waitingMs: number;
  /** CPU time the process used meanwhile (every thread), in ms. */
  cpuMs: number;
  /** Of which its main thread's, as schedstat has it (updated at each scheduler tick: ± 4 ms), in ms. */
  mainMs: number;
  /** The process's own work: its CPU time, at most the stall less the wait, in ms. */
  ownMs: number;
  /** The rest, neither waiting for a core nor working: the VM paused, or the main thread blocked, in ms. */
  pausedMs: number;
  /** When it began, in ms since the watch started. */
  atMs: number;
}

/** Every stall a watch saw (over 2 ms), and the two that stand out. */
export interface Stalls {
  all: Stall[];
  /** The longest on the wall clock, and the one with the most of the process's own work. */
  longest?: Stall;
  busiest?: Stall;
}

/** Stalls over 2 ms of this process's event loop, split into waiting, working and paused (Linux only). */
export class StallWatch implements Stalls {
  private fd: number;
  private buf = Buffer.alloc(128);
  private timer?: NodeJS.Timeout;
  all: Stall[] = [];
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
    let [ran, waited] = watch.read();
    let cpu = process.cpuUsage();
    watch.timer = setInterval(() => {
      const now = performance.now();
      const [r, w] = watch.read();
      const c = process.cpuUsage();
      const late = now - last - 1;
      if (late > 2) {
        const waitingMs = Math.min(late, (w - waited) / 1e6);
        const cpuMs = (c.user - cpu.user + c.system - cpu.system) / 1000;
        const ownMs = Math.min(late - waitingMs, cpuMs);
        const stall = { ms: late, waitingMs, cpuMs, mainMs: (r - ran) / 1e6, ownMs, pausedMs: late - waitingMs - ownMs, atMs: last - started };
        watch.all.push(stall);
        if (!watch.longest || stall.ms > watch.longest.ms) watch.longest = stall;
        if (!watch.busiest || stall.ownMs > watch.busiest.ownMs) watch.busiest = stall;
      }
      last = now;
      ran = r;
      waited = w;
      cpu = c;
    }, 1);
    return watch;
  }

  stop(): void {
    clearInterval(this.timer);
    closeSync(this.fd);
  }

  /** Nanoseconds the main thread has run, and waited on a run queue, since it started. */
  private read(): [number, number] {
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    const [ran, waited] = this.buf.toString('latin1', 0, n).split(' ');
    return [Number(ran), Number(waited)];
  }
}

/** A Node process beside the measured one with nothing to do but the same watch: `stop()` gives its stalls. */
export async function idleProbe(): Promise<{ stop(): Promise<Stalls> }> {
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
        child.once('exit', () => resolve({ all: [], ...(JSON.parse(out.split('\n')[1] || '{}') as Partial<Stalls>) }));
        child.stdin!.end('stop\n');
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'probe') {
  const watch = StallWatch.start();
  process.stdout.write('ready\n');
  process.stdin.once('data', () => {
    watch?.stop();
    process.stdout.write(`${JSON.stringify({ all: watch?.all, longest: watch?.longest, busiest: watch?.busiest })}\n`);
    process.exit(0);
  });
}
