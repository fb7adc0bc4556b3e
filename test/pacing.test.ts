// Body work is paced per turn of the event loop (lib/http/pacing.ts): however many slices or chunks
// are waiting, a turn of the loop — from one timers phase to the next — holds at most TURN_MS (3 ms)
// of it, plus the one slice or chunk that crossed the line. Measured here by a 1 ms interval that
// numbers the turns, and sinks that cost a known wall-clock time each. On a busy machine a slice only
// takes longer on the wall clock, so fewer fit in a turn: the bounds below hold however slow it is.
import { stat } from 'node:fs';
import { Writable } from 'node:stream';
import t from 'tap';
import { Feeder, pacedStream } from '../lib/http/pacing.js';

const SLICE_MS = 0.5;
/** 3 ms of slices, the one that crosses the line, and one of slack for timer rounding. */
const MOST_PER_TURN = Math.ceil(3 / SLICE_MS) + 2;

/** Work that takes SLICE_MS of wall-clock time. */
function busy(): void {
  const until = performance.now() + SLICE_MS;
  while (performance.now() < until);
}

/** Numbers the turns of the event loop: a 1 ms interval runs once in each timers phase it is due. */
function turnCounter(): { readonly turn: number; stop(): void } {
  let turn = 0;
  const timer = setInterval(() => { turn++; }, 1);
  return { get turn() { return turn; }, stop: () => clearInterval(timer) };
}

/** A fresh turn: whatever budget an earlier test left used up has been reset. */
const freshTurn = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

/** The next I/O callback (the poll phase, where a request's data comes in). */
const ioCallback = () => new Promise<void>((resolve, reject) => stat(process.cwd(), (err) => (err ? reject(err) : resolve())));

/** How many units of work ran in each turn, from the turn numbers each one saw. */
function perTurn(turns: number[]): number[] {
  const counts = new Map<number, number>();
  for (const turn of turns) counts.set(turn, (counts.get(turn) ?? 0) + 1);
  return [...counts.values()];
}

t.test('a Feeder shows a turn at most 3 ms of slices, and holds its source while behind', async (t) => {
  await freshTurn();
  const turns = turnCounter();
  const seen: number[] = [];
  let holds = 0;
  let unholds = 0;
  const feeder = new Feeder(() => { seen.push(turns.turn); busy(); }, () => holds++, () => unholds++);
  // Pushed from an I/O callback (the poll phase), as a request's data comes in: the first slices run
  // at once, and what is left must not run again in this turn's check phase.
  await ioCallback();
  feeder.push(Buffer.alloc(60 * 16 * 1024)); // 60 slices of 16 KiB
  await feeder.drained();
  turns.stop();
  const counts = perTurn(seen);
  t.equal(seen.length, 60, 'every slice was shown');
  t.ok(Math.max(...counts) <= MOST_PER_TURN, `at most ${MOST_PER_TURN} slices in one turn (counts per turn: ${counts.join(' ')})`);
  t.equal(holds, 1, 'the source was held once, when the feeder fell behind');
  t.equal(unholds, 1, 'and let go once, when it caught up');
});

t.test('paced streams share one turn: at most 3 ms of writes between them', async (t) => {
  // Several bodies at once, as when ten uploads go to their backends: a stream whose turn came round
  // again must ask before writing, or each would add a write to every turn.
  await freshTurn();
  const turns = turnCounter();
  const seen: number[][] = [[], [], [], []];
  await Promise.all(seen.map((mine) => new Promise<void>((resolve, reject) => {
    const sink = new Writable({
      write(_chunk, _encoding, done) {
        mine.push(turns.turn);
        busy();
        done();
      },
    });
    sink.on('finish', resolve).on('error', reject);
    pacedStream(Array.from({ length: 15 }, () => Buffer.alloc(64 * 1024))).pipe(sink);
  })));
  turns.stop();
  const counts = perTurn(seen.flat());
  t.same(seen.map((mine) => mine.length), [15, 15, 15, 15], 'every part of every stream was written');
  t.ok(Math.max(...counts) <= MOST_PER_TURN, `at most ${MOST_PER_TURN} parts in one turn, all streams together (counts per turn: ${counts.join(' ')})`);
});

t.test('bodies take turns: a small one behind a large backlog is not kept waiting until it is through', async (t) => {
  await freshTurn();
  const turns = turnCounter();
  const large: number[] = [];
  const small: number[] = [];
  const feeders = [large, small].map((seen) => new Feeder(() => { seen.push(turns.turn); busy(); }, () => {}, () => {}));
  await ioCallback();
  feeders[0].push(Buffer.alloc(60 * 16 * 1024)); // 60 slices: about ten turns of work
  feeders[1].push(Buffer.alloc(4 * 16 * 1024)); // 4 slices, arriving while the large one is behind
  await Promise.all(feeders.map((f) => f.drained()));
  turns.stop();
  t.equal(small.length, 4, 'the small body was scanned whole');
  t.ok(small.at(-1)! < large.at(-1)!, `the small body was through by turn ${small.at(-1)}, before the large one (turn ${large.at(-1)})`);
});
