// The coordinators' pure planner (capacity.ts): who is granted room, who is evicted or asked to
// yield, who is refused, and when to look again. No processes, no clocks: each case is microseconds.
import t from 'tap';
import { plan, type GroupRule, type Slot } from '../lib/scheduler/capacity.js';

const GiB = 2 ** 30;
const slot = (name: string, extra: Partial<Slot> = {}): Slot => ({
  key: name, name, group: 'g', memory: 0, counted: true, wants: false, busy: false, demand: 0, servedSinceUp: 0, owed: 0, moving: false, leaving: false, pinned: false, held: false,
  idleSince: 0, loadMs: 1000, startTimeoutMs: 60_000, ...extra,
});
const wanting = (name: string, oldestAt: number, extra: Partial<Slot> = {}) => slot(name, { counted: false, wants: true, oldestAt, ...extra });
const rule = (extra: Partial<GroupRule> = {}): Record<string, GroupRule> => ({ g: { name: 'g', maxLoaded: 1, maxMemory: Infinity, onFull: 'evict', swapHoldMs: 0, ...extra } });
const kinds = (p: ReturnType<typeof plan>) => p.decisions.map((d) => `${d.kind} ${d.key}`);

t.test('grants when it fits; strict order behind a head that does not', async (t) => {
  t.same(kinds(plan([wanting('b', 5)], rule({ maxLoaded: 2 }), Infinity, 10)), ['grant b']);
  const p = plan([slot('a', { busy: true, idleSince: undefined }), wanting('b', 5, { memory: 8 * GiB }), wanting('c', 7)], rule({ maxLoaded: 2, maxMemory: 10 * GiB, swapHoldMs: 3000 }), Infinity, 10);
  t.same(kinds(p), ['grant b'], 'b fits by memory and count');
  const q = plan([slot('a', { busy: true }), wanting('b', 5), wanting('c', 7)], rule({ maxLoaded: 1 }), Infinity, 10);
  t.notOk(q.decisions.some((d) => d.key === 'c'), 'c never overtakes b, the head');
  t.same(q.outlook.g?.next, 'b', 'the outlook names who loads next');
});

t.test('the model whose oldest request waited longest goes first (collation by model)', async (t) => {
  const p = plan([wanting('late', 9), wanting('early', 2)], rule({ maxLoaded: 1 }), Infinity, 10);
  t.same(kinds(p), ['grant early']);
});

t.test('idle victims: cheapest to bring back relative to idle time, not pure LRU', async (t) => {
  const now = 100_000;
  // a: idle 90 s but reloads in 60 s (ratio 0.67); b: idle 10 s, reloads in 0.3 s (ratio 0.03).
  const p = plan([slot('a', { idleSince: 10_000, loadMs: 60_000 }), slot('b', { idleSince: 90_000, loadMs: 300 }), wanting('c', now - 1)], rule({ maxLoaded: 2 }), Infinity, now);
  t.same(kinds(p), ['evict b'], 'b is cheap to bring back, so it goes although it was used more recently');
  t.match((p.decisions[0] as { reason: string }).reason, /^evicted for c: idle 10s, reload ~0\.3s$/, 'the reason says why');
  const never = plan([slot('a', { idleSince: 50_000 }), slot('n', { idleSince: undefined }), wanting('c', now)], rule({ maxLoaded: 2 }), Infinity, now);
  t.same(kinds(never), ['evict n'], 'a model never used is free to evict');
});

t.test('a busy model keeps admitting for swap_hold, then yields; swap_hold 0 yields at once', async (t) => {
  const slots = [slot('a', { busy: true }), wanting('b', 1000)];
  const during = plan(slots, rule({ swapHoldMs: 3000 }), Infinity, 2500);
  t.same(kinds(during), [], 'nothing yet');
  t.equal(during.wakeAt, 4000, 'wakes when the hold ends');
  t.match(during.outlook.g?.why, /keeps serving until .* \(swap_hold\)/);
  const after = plan(slots, rule({ swapHoldMs: 3000 }), Infinity, 4000);
  t.same(kinds(after), ['evict a'], 'then a yields');
  t.match((after.decisions[0] as { reason: string }).reason, /^yielded to b: its requests waited 3\.0s$/);
  t.same(kinds(plan(slots, rule({ swapHoldMs: 0 }), Infinity, 1000)), ['evict a'], 'FIFO with swap_hold 0');
});

t.test('within swap_hold, a model idle for a moment (between two requests of one agent) is not evicted yet', async (t) => {
  const slots = [slot('a', { idleSince: 9900, servedSinceUp: 3 }), wanting('b', 9000)];
  const p = plan(slots, rule({ swapHoldMs: 3000 }), Infinity, 10_000);
  t.same(kinds(p), [], 'a was used 0.1 s ago: its agent may be about to send the next request');
  t.equal(p.wakeAt, 10_150, 'look again when the 250 ms grace ends');
  t.same(kinds(plan(slots, rule({ swapHoldMs: 3000 }), Infinity, 10_150)), ['evict a'], 'then a goes');
  t.same(kinds(plan(slots, rule({ swapHoldMs: 0 }), Infinity, 10_000)), ['evict a'], 'no grace with swap_hold 0');
  t.same(kinds(plan([slot('a', { idleSince: 9900, servedSinceUp: 1 }), wanting('b', 9000)], rule({ swapHoldMs: 3000 }), Infinity, 10_000)), ['evict a'], 'nor for a model that answered a single request since it came up');
});

t.test('a model that came up after the head began to wait keeps its hold only if it serves as many clients', async (t) => {
  const busyFew = slot('a', { busy: true, demand: 1, loadedAt: 9000 });
  const busyMany = slot('a', { busy: true, demand: 3, loadedAt: 9000 });
  const head = wanting('b', 1000, { demand: 3 });
  t.same(kinds(plan([busyFew, head], rule({ swapHoldMs: 3000 }), Infinity, 10_000)), ['evict a'], 'one client does not hold three waiting ones');
  const held = plan([busyMany, head], rule({ swapHoldMs: 3000 }), Infinity, 10_000);
  t.same(kinds(held), [], 'three clients keep it for swap_hold from when it came up');
  t.equal(held.wakeAt, 12_000);
});

t.test('minimum residency: a model loaded for waiting requests is not asked to yield before it admits them', async (t) => {
  const p = plan([slot('a', { busy: true, owed: 3 }), wanting('b', 0)], rule({ swapHoldMs: 0 }), Infinity, 60_000);
  t.same(kinds(p), []);
  t.match(p.outlook.g?.why, /a to serve the 3 requests it was loaded for/);
});

t.test('an idle model goes before a busy one; pinned, held and moving models never', async (t) => {
  t.same(kinds(plan([slot('busy', { busy: true, idleSince: 0 }), slot('idle', { idleSince: 5 }), wanting('c', 9)], rule({ maxLoaded: 2 }), Infinity, 10)), ['evict idle']);
  const pinned = plan([slot('p', { pinned: true }), wanting('c', 9)], rule(), Infinity, 10);
  t.same(kinds(pinned), ['refuse c']);
  t.match((pinned.decisions[0] as { message: string }).message, /pinned models \(p\) hold the capacity/);
  const held = plan([slot('h', { held: true }), wanting('c', 9)], rule(), Infinity, 10);
  t.match((held.decisions[0] as { message: string }).message, /models an operator is loading together \(h\)/);
  const moving = plan([slot('m', { moving: true }), wanting('c', 9)], rule(), Infinity, 10);
  t.same(kinds(moving), [], 'a model mid-load is waited for');
  const leaving = plan([slot('l', { leaving: true }), wanting('c', 9)], rule(), Infinity, 10);
  t.same(kinds(leaving), [], 'one already leaving is waited for, not evicted twice');
  t.match(leaving.outlook.g?.why, /waits for l to free their memory/);
});

t.test('memory budgets: group and hub-wide; a count limit never evicts another group', async (t) => {
  const mem = plan([slot('a', { memory: 3 * GiB, idleSince: 1 }), slot('b', { memory: 5 * GiB, idleSince: 2 }), slot('c', { memory: 1 * GiB, idleSince: 3 }), wanting('n', 9, { memory: 6 * GiB })], rule({ maxLoaded: 9, maxMemory: 10 * GiB }), Infinity, 10);
  t.same(kinds(mem), ['evict b'], 'evicts only what the sum needs: b (5) alone makes room, so a (3), taken first in cost order, is given back');
  const hub = plan([slot('x', { group: 'other', memory: 4 * GiB }), wanting('n', 9, { group: undefined, memory: 6 * GiB })], rule(), 8 * GiB, 10);
  t.same(kinds(hub), ['evict x'], 'the hub budget spans groups');
  const count = plan([slot('x', { group: 'other' }), slot('a'), wanting('n', 9)], rule(), Infinity, 10);
  t.same(kinds(count), ['evict a']);
});

t.test('on_full reject refuses at once; wait waits until start_timeout', async (t) => {
  const reject = plan([slot('a', { idleDeadline: 30_000 }), wanting('b', 9)], rule({ onFull: 'reject' }), Infinity, 10);
  t.same(kinds(reject), ['refuse b']);
  t.ok((reject.decisions[0] as { retryAfterMs: number }).retryAfterMs >= 1000);
  const wait = plan([slot('a'), wanting('b', 0, { startTimeoutMs: 5000 })], rule({ onFull: 'wait' }), Infinity, 10);
  t.same(kinds(wait), []);
  t.equal(wait.wakeAt, 5000);
  t.same(kinds(plan([slot('a'), wanting('b', 0, { startTimeoutMs: 5000 })], rule({ onFull: 'wait' }), Infinity, 5000)), ['refuse b']);
});
