// Pacing the work that request bodies cost the event loop, so that no body, however large, stalls
// the streams the hub is forwarding meanwhile: scanning (the `model` finder) and forwarding share a
// few milliseconds per turn of the loop, and what is left waits for the next turn.

import type { Readable, Writable } from 'node:stream';

export type Sink = (slice: Buffer) => void;

/** Body work gets this much of one turn of the event loop; a sink sees at most SLICE bytes at a time. */
const TURN_MS = 3;
const SLICE = 16 * 1024;

/**
 * How long body work (scanning, forwarding) has run in this turn of the event loop. The time is
 * shared by every body: libuv hands over up to 32 socket reads (2 MiB) of each of several bodies in
 * one go, and even at ~1 ms per 64 KiB chunk, scanning them would add up to tens of milliseconds.
 * A turn begins with the first body work and lasts until the loop has run its timers again (at least
 * 1 ms): it is reset by a timer, not an immediate, which runs in the same loop's check phase (work
 * put off from the poll phase then ran again at once, and a loop held twice the budget).
 */
let turnStarted = -1;
/** Which turn it is: a body that did work in this one lets the others go first in the next. */
let turn = 0;
const newTurn = () => {
  turnStarted = -1;
  turn++;
};
function turnElapsed(): number {
  const now = performance.now();
  if (turnStarted < 0) {
    turnStarted = now;
    setTimeout(newTurn, 0);
  }
  return now - turnStarted;
}

/** Whether this turn has room for more body work. */
const turnUsedUp = (): boolean => turnElapsed() > TURN_MS;

/**
 * Body work put off until the next turn, taken in turns: the steps that got nothing in this turn go
 * before the ones that did work in it, so that one large body's backlog does not keep the others
 * waiting until it is through.
 */
const putOff = { first: [] as (() => void)[], then: [] as (() => void)[], scheduled: false };
function later(step: () => void, workedIn: number): void {
  (workedIn === turn ? putOff.then : putOff.first).push(step);
  if (putOff.scheduled) return;
  putOff.scheduled = true;
  setImmediate(resumePutOff);
}
function resumePutOff(): void {
  const steps = putOff.first.concat(putOff.then);
  putOff.first = [];
  putOff.then = [];
  putOff.scheduled = false;
  for (const step of steps) step();
}

/**
 * Shows chunks to a sink in slices, and gives the event loop back (pausing the request meanwhile)
 * once this turn has used TURN_MS. Scanning is ~100 MB/s once V8 has optimized the scanner, but
 * ~20× slower before that or after a deoptimization: no body may stall every stream in flight.
 */
export class Feeder {
  private queue: Buffer[] = [];
  private behind = false;
  private workedIn = -1;
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
        later(this.run, this.workedIn);
        return;
      }
      this.workedIn = turn;
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
 * A body held in memory, for the proxy's `buffer` option: written in its chunks, and yielding once the
 * turn is used up. While the kernel takes each write at once, the writes to the backend follow one
 * another in process.nextTick callbacks with no turn of the event loop in between (30 MiB to a local
 * backend: ~25 ms). Only `pipe` is there, as for a small body (body.ts): http-proxy-3 only ever calls
 * `pipe(upstreamRequest)` on it. Each chunk is written right after the turn is asked, so the time one
 * write took counts before the next goes (a Readable reads a chunk ahead, let through by an earlier ask).
 */
export function pacedStream(parts: readonly Buffer[]): Readable {
  const paced = {
    pipe<T extends NodeJS.WritableStream>(destination: T): T {
      const writable = destination as unknown as Writable;
      let next = 0;
      let workedIn = -1;
      const step = (): void => {
        while (next < parts.length) {
          if (writable.destroyed) return; // the backend or the client went away: nothing to send to
          if (turnUsedUp()) return later(step, workedIn);
          workedIn = turn;
          if (!writable.write(parts[next++])) return void writable.once('drain', step);
        }
        writable.end();
      };
      step();
      return destination;
    },
  };
  return paced as unknown as Readable;
}
