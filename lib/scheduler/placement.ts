// GPU placement as pure functions, for the planner (capacity.ts): which devices a model with `gpus:`
// goes to, and, when no device has room, which idle models to evict from which device. Each GPU is a
// budget like a group's: its memory, less what other processes hold on it, less the share of every
// model of the hub placed on it (a model spread over N devices holds memory/N on each).
//
// The rules (docs/gpus.md): a model goes where its share fits, to the device it used before when that
// one has room (its pages and compiled kernels are warm there), else to the one with the most free
// memory. Only when no set of devices has room are models evicted, and then only from the set that
// costs least to clear. A model whose process lives (its memory released) wakes where it is.
import { formatBytes } from '../config/units.js';
import type { Slot } from './capacity.js';

/** A device as the planner sees it. */
export interface GpuRoom {
  id: number;
  /** Bytes it holds in all. */
  memory: number;
  /** Bytes held by processes that are not the hub's models (0 when the devices are listed by hand). */
  foreign: number;
}

/** The GPU side of a slot (models with `gpus:` only). */
export interface SlotGpu {
  count: number;
  /** Only these devices (`gpus: [0]`). */
  only?: readonly number[];
  /** Where it is placed now: its memory is there, or its process is and it can only wake there. */
  on?: readonly number[];
  /** Where it ran last. */
  before?: readonly number[];
}

export interface Placement {
  devices: number[];
  /** "placed on GPU 1: 18.2GiB free; GPU 0 holds qwen-32b". */
  reason: string;
}

export type PlaceResult =
  | { kind: 'placed'; placement: Placement }
  /** Some set of devices would do, but not with what holds them now. */
  | { kind: 'full' }
  /** It fits only on devices an earlier model waits to be given. */
  | { kind: 'behind' }
  /** No set of devices can ever hold it (too few, too small, or taken by other processes). */
  | { kind: 'never'; why: string };

/** Bytes a slot holds (or will hold) on each of its devices. */
function share(s: Slot): number {
  if (!s.gpu) return 0;
  return s.memory / (s.gpu.on?.length || s.gpu.count);
}

const placed = (h: Slot, w: Slot): boolean => h.key !== w.key && h.counted && !!h.gpu?.on?.length;

/** Free bytes per device, beside `held`. */
function freeOf(gpus: readonly GpuRoom[], held: readonly Slot[], w: Slot): Map<number, number> {
  const free = new Map(gpus.map((g) => [g.id, g.memory - g.foreign]));
  for (const h of held) if (placed(h, w)) for (const id of h.gpu!.on!) if (free.has(id)) free.set(id, free.get(id)! - share(h));
  return free;
}

/** Every set of devices `w` may go to. */
function candidates(w: Slot, gpus: readonly GpuRoom[]): number[][] {
  const g = w.gpu!;
  const known = new Set(gpus.map((d) => d.id));
  if (g.on?.length) return g.on.every((id) => known.has(id)) ? [[...g.on]] : [];
  const ids = (g.only ?? gpus.map((d) => d.id)).filter((id) => known.has(id));
  return combinations(ids, g.count);
}

function combinations(ids: readonly number[], k: number): number[][] {
  if (k === 0) return [[]];
  if (ids.length < k) return [];
  const [first, ...rest] = ids;
  return [...combinations(rest, k - 1).map((c) => [first, ...c]), ...combinations(rest, k)];
}

function fitsOn(w: Slot, set: readonly number[], free: Map<number, number>, held: readonly Slot[]): boolean {
  // Not measured yet: only onto devices nothing of the hub's is placed on.
  if (w.sizeUnknown) return set.every((id) => !held.some((h) => placed(h, w) && h.gpu!.on!.includes(id)));
  const need = w.memory / w.gpu!.count;
  return set.every((id) => (free.get(id) ?? -Infinity) >= need);
}

const same = (a: readonly number[] | undefined, b: readonly number[]): boolean => !!a && a.length === b.length && a.every((id) => b.includes(id));
const devices = (set: readonly number[]) => (set.length === 1 ? `GPU ${set[0]}` : `GPUs ${set.join(', ')}`);

/** Where `w` goes beside `held`, if anywhere; `behind` are devices kept for models ahead of it. */
export function place(w: Slot, held: readonly Slot[], gpus: readonly GpuRoom[], behind: ReadonlySet<number>): PlaceResult {
  const sets = candidates(w, gpus);
  if (!sets.length) return { kind: 'never', why: neverWhy(w, gpus) };
  const free = freeOf(gpus, held, w);
  const fitting = sets.filter((set) => fitsOn(w, set, free, held));
  const open = fitting.filter((set) => !set.some((id) => behind.has(id)));
  if (!open.length) {
    if (fitting.length) return { kind: 'behind' };
    const empty = freeOf(gpus, [], w);
    if (!sets.some((set) => fitsOn(w, set, empty, []))) return { kind: 'never', why: neverWhy(w, gpus) };
    return { kind: 'full' };
  }
  const least = (set: readonly number[]) => Math.min(...set.map((id) => free.get(id)!));
  const again = open.find((set) => same(w.gpu!.before, set));
  const chosen = again ?? [...open].sort((a, b) => least(b) - least(a))[0];
  return { kind: 'placed', placement: { devices: chosen, reason: reasonFor(w, chosen, !!again, free, held, gpus) } };
}

function reasonFor(w: Slot, set: number[], again: boolean, free: Map<number, number>, held: readonly Slot[], gpus: readonly GpuRoom[]): string {
  const room = set.map((id) => formatBytes(Math.max(0, free.get(id)!))).join(' and ');
  const why = w.gpu!.on?.length ? ' (its process is there)' : again ? ' again (where it ran before)' : w.gpu!.only ? ' (as configured)' : '';
  const others = gpus
    .filter((g) => !set.includes(g.id))
    .map((g) => {
      const on = held.filter((h) => placed(h, w) && h.gpu!.on!.includes(g.id)).map((h) => h.name);
      return on.length ? `GPU ${g.id} holds ${on.join(', ')}` : `GPU ${g.id} has ${formatBytes(Math.max(0, free.get(g.id)!))} free`;
    });
  return [`placed on ${devices(set)}${why}: ${room} free`, ...others].join('; ');
}

function neverWhy(w: Slot, gpus: readonly GpuRoom[]): string {
  const g = w.gpu!;
  if (!gpus.length) return `it needs ${g.count === 1 ? 'a GPU' : `${g.count} GPUs`} and the hub found none`;
  const known = gpus.map((d) => d.id);
  const missing = (g.on ?? g.only ?? []).filter((id) => !known.includes(id));
  if (missing.length) return `${devices(missing)} ${missing.length === 1 ? 'is' : 'are'} not among the hub's GPUs (${known.join(', ')})`;
  if (g.count > gpus.length) return `it needs ${g.count} GPUs and the hub has ${gpus.length}`;
  const need = formatBytes(w.memory / g.count);
  const rooms = gpus.filter((d) => !g.only || g.only.includes(d.id)).map((d) => `GPU ${d.id} ${formatBytes(d.memory)}${d.foreign > 0 ? ` (${formatBytes(d.foreign)} held by other processes)` : ''}`);
  return `it needs ${need} on ${g.count === 1 ? 'one GPU' : `each of ${g.count} GPUs`}: ${rooms.join(', ')}`;
}

/**
 * When no set of devices has room: the set that costs least to clear and the models to evict from it
 * (taken from `pool` in its order, then any that turn out not to be needed given back). 'behind' when
 * room could only be made on devices a model ahead of it waits for; undefined when evicting all of
 * `pool` would not make room on any set.
 */
export function makeRoom(w: Slot, held: readonly Slot[], gpus: readonly GpuRoom[], pool: readonly Slot[], behind: ReadonlySet<number>, cost: (s: Slot) => number): { devices: number[]; victims: Slot[] } | 'behind' | undefined {
  let best: { devices: number[]; victims: Slot[]; score: number[] } | undefined;
  let skipped = false;
  for (const set of candidates(w, gpus)) {
    if (set.some((id) => behind.has(id))) {
      skipped = true;
      continue;
    }
    const on = pool.filter((v) => placed(v, w) && v.gpu!.on!.some((id) => set.includes(id)));
    const fits = (victims: readonly Slot[]) => {
      const rest = held.filter((h) => !victims.includes(h));
      return fitsOn(w, set, freeOf(gpus, rest, w), rest);
    };
    const victims: Slot[] = [];
    for (const v of on) {
      if (fits(victims)) break;
      victims.push(v);
    }
    if (!fits(victims)) continue;
    for (const v of [...victims]) if (fits(victims.filter((x) => x !== v))) victims.splice(victims.indexOf(v), 1);
    // Fewest busy victims, then the cheapest to bring back, then the fewest; then its old devices,
    // then the victims `pool` puts first (it is in eviction order).
    const score = [victims.filter((v) => v.busy || v.owed > 0).length, victims.reduce((n, v) => n + cost(v), 0), victims.length, same(w.gpu!.before, set) ? 0 : 1, victims.reduce((n, v) => n + pool.indexOf(v), 0)];
    if (!best || less(score, best.score)) best = { devices: set, victims, score };
  }
  // Room could not be made elsewhere, but a model ahead of it is being given devices it could use.
  if (!best) return skipped ? 'behind' : undefined;
  return { devices: best.devices, victims: best.victims };
}

const less = (a: number[], b: number[]): boolean => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
};
