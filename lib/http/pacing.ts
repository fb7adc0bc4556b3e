// Pacing the work that request bodies cost the event loop, so that no body, however large, stalls
// the streams the hub is forwarding meanwhile: scanning (the `model` finder) and forwarding share a
// few milliseconds per turn of the loop, and what is left waits for the next turn.

import { Readable } from 'node:stream';

export type Sink = (slice: Buffer) => void;

/** Body work gets this much of one turn of the event loop; a sink sees at most SLICE bytes at a time. */
const TURN_MS = 3;
const SLICE = 16 * 1024;

/**
 * How long body work (scanning, forwarding) has run in this turn of the event loop. The time is
 * shared by every body: libuv hands over up to 32 socket reads (2 MiB) of each of several bodies in
 * one go, and even at ~1 ms per 64 KiB chunk, scanning them would add up to tens of milliseconds.
 * A turn is the whole loop, from one timers phase to the next: reset by a timer, not an immediate
 * (which runs in the same loop's check phase, so that work put off from the poll phase ran again
 * at once, and a loop held twice the budget).
 */
let turnStarted = -1;
const newTurn = () => { turnStarted = -1; };
export function turnElapsed(): number {
  const now = performance.now();
  if (turnStarted < 0) {
    turnStarted = now;
    setTimeout(newTurn, 0);
  }
  return now - turnStarted;
}

/** Whether this turn has room for more body work; work put off goes to setImmediate, and asks again there. */
const turnUsedUp = (): boolean => turnElapsed() > TURN_MS;

/**
 * Shows chunks to a sink in slices, and gives the event loop back (pausing the request meanwhile)
 * once this turn has used TURN_MS. Scanning is ~100 MB/s once V8 has optimized the scanner, but
 * ~20× slower before that or after a deoptimization: no body may stall every stream in flight.
 */
export class Feeder {
  private queue: Buffer[] = [];
  private behind = false;
  private stopped = false;
  private onDrained?: () => void;

  constructor(
    private readonly sink: Sink,
    private readonly hold: () => void,
    private readonly unhold: () => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.queue.push(chunk);
    if (!this.behind) this.run();
  }

  drained(): Promise<void> {
    if (!this.behind && !this.queue.length) return Promise.resolve();
    return new Promise((resolve) => { this.onDrained = resolve; });
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
  }

  private run = (): void => {
    if (this.stopped) return;
    while (this.queue.length) {
      if (turnUsedUp()) {
        if (!this.behind) this.hold();
        this.behind = true;
        setImmediate(this.run);
        return;
      }
      const chunk = this.queue[0];
      if (chunk.length > SLICE) {
        this.queue[0] = chunk.subarray(SLICE);
        this.sink(chunk.subarray(0, SLICE));
      } else {
        this.queue.shift();
        this.sink(chunk);
      }
    }
    if (this.behind) {
      this.behind = false;
      this.unhold();
    }
    this.onDrained?.();
  };
}

/**
 * A body held in memory as a stream, one chunk per read. While the kernel takes each write at once,
 * the writes to the backend follow one another in process.nextTick callbacks with no turn of the
 * event loop in between (30 MiB to a local backend: ~25 ms): so this yields once the turn is used up.
 */
export function pacedStream(parts: readonly Buffer[]): Readable {
  let next = 0;
  const give = (): void => {
    if (turnUsedUp()) return void setImmediate(give);
    stream.push(next < parts.length ? parts[next++] : null);
  };
  const stream = new Readable({ read: give });
  return stream;
}
