// GPU placement as pure functions, for the planner (capacity.ts): which devices a model with `gpus:`
// goes to, and, when no device has room, which idle models to evict from which device. Each GPU is a
// budget like a group's: its memory, less what other processes hold on it, less the share of every
// model of the hub placed on it (a model spread over N devices holds memory/N on each).
//
// The rules (docs/gpus.md): a model goes where its share fits, to the device it used before when that
// one has room (its pages and compiled kernels are warm there), else to the one with the most free
// memory. Only when no choice of devices has room are models evicted, and then only from the devices
// that cost least to clear. A model whose process lives (its memory released) wakes where it is.
// Devices are chosen one by one (the most free, the cheapest to clear), not by trying every set: a
// box with many GPUs and a model spread over half of them would make that explode.
import type { GpuConfig } from '../config/types.js';
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

/** The devices hub.yaml lists, as the planner sees them (other programs on them are not counted). */
export const listedRooms = (gpus: GpuConfig | undefined): GpuRoom[] => (gpus?.devices ?? []).map((d) => ({ ...d, foreign: 0 }));

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
  /** Devices would do, but not with what holds them now. */
  | { kind: 'full' }
  /** It fits only on devices an earlier model waits to be given. */
  | { kind: 'behind' }
  /** No set of devices can ever hold it (too few, too small, or taken by other processes). */
  | { kind: 'never'; why: string };

/** Bytes a slot holds (or will hold) on each of its devices; one never measured fills them. */
function share(s: Slot): number {
  if (!s.gpu) return 0;
  if (s.sizeUnknown) return Infinity;
  return s.memory / (s.gpu.on?.length || s.gpu.count);
}

const placed = (h: Slot, w: Slot): boolean => h.key !== w.key && h.counted && !!h.gpu?.on?.length;

/** Free bytes per device, beside `held`. */
function freeOf(gpus: readonly GpuRoom[], held: readonly Slot[], w: Slot): Map<number, number> {
  const free = new Map(gpus.map((g) => [g.id, g.memory - g.foreign]));
  for (const h of held) if (placed(h, w)) for (const id of h.gpu!.on!) if (free.has(id)) free.set(id, free.get(id)! - share(h));
  return free;
}

/** The devices `w` must use (its process is there, or it names as many as it needs), or those it may choose from. */
function options(w: Slot, gpus: readonly GpuRoom[]): { fixed: number[] } | { pool: number[] } {
  const g = w.gpu!;
  if (g.on?.length) return { fixed: [...g.on] };
  if (g.only && g.only.length === g.count) return { fixed: [...g.only] };
  const known = new Set(gpus.map((d) => d.id));
  return { pool: (g.only ?? gpus.map((d) => d.id)).filter((id) => known.has(id)) };
}

/** Every device `w` may be placed on. */
export function gpuChoices(w: Slot, gpus: readonly GpuRoom[]): number[] {
  const opts = options(w, gpus);
  return 'fixed' in opts ? opts.fixed : opts.pool;
}

/** Whether device `id` can take `w`'s share. */
function fitsOn(w: Slot, id: number, free: Map<number, number>, held: readonly Slot[]): boolean {
  // Not measured yet: only onto a device nothing of the hub's is placed on.
  if (w.sizeUnknown) return free.has(id) && !held.some((h) => placed(h, w) && h.gpu!.on!.includes(id));
  return (free.get(id) ?? -Infinity) >= w.memory / w.gpu!.count;
}

export const devicesText = (set: readonly number[]): string => (set.length === 1 ? `GPU ${set[0]}` : `GPUs ${set.join(', ')}`);

/** Where `w` goes beside `held`, if anywhere; `behind` are devices kept for models ahead of it. */
export function place(w: Slot, held: readonly Slot[], gpus: readonly GpuRoom[], behind: ReadonlySet<number>): PlaceResult {
  const why = neverWhy(w, gpus);
  if (why) return { kind: 'never', why };
  const free = freeOf(gpus, held, w);
  const k = w.gpu!.count;
  const opts = options(w, gpus);
  if ('fixed' in opts) {
    if (!opts.fixed.every((id) => fitsOn(w, id, free, held))) return { kind: 'full' };
    if (opts.fixed.some((id) => behind.has(id))) return { kind: 'behind' };
    return { kind: 'placed', placement: { devices: opts.fixed, reason: reasonFor(w, opts.fixed, false, free, held, gpus) } };
  }
  const fitting = opts.pool.filter((id) => fitsOn(w, id, free, held));
  const open = fitting.filter((id) => !behind.has(id));
  if (open.length < k) return { kind: fitting.length >= k ? 'behind' : 'full' };
  const before = w.gpu!.before;
  const again = !!before && before.length === k && before.every((id) => open.includes(id));
  // The most free first (ties: the lower id); its old devices when they have room.
  const chosen = again ? [...before!] : [...open].sort((a, b) => free.get(b)! - free.get(a)! || a - b).slice(0, k).sort((a, b) => a - b);
  return { kind: 'placed', placement: { devices: chosen, reason: reasonFor(w, chosen, again, free, held, gpus) } };
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
  return [`placed on ${devicesText(set)}${why}: ${room} free`, ...others].join('; ');
}

/** Why no choice of devices could ever hold `w`, even with nothing of the hub's on them; undefined when one could. */
function neverWhy(w: Slot, gpus: readonly GpuRoom[]): string | undefined {
  const g = w.gpu!;
  if (!gpus.length) return `it needs ${g.count === 1 ? 'a GPU' : `${g.count} GPUs`} and the hub found none`;
  const known = gpus.map((d) => d.id);
  const missing = (g.on ?? g.only ?? []).filter((id) => !known.includes(id));
  if (missing.length) return `${devicesText(missing)} ${missing.length === 1 ? 'is' : 'are'} not among the hub's GPUs (${known.join(', ')})`;
  if (g.count > gpus.length) return `it needs ${g.count} GPUs and the hub has ${gpus.length}`;
  const opts = options(w, gpus);
  const ids = 'fixed' in opts ? opts.fixed : opts.pool;
  const empty = freeOf(gpus, [], w);
  if (ids.filter((id) => fitsOn(w, id, empty, [])).length >= g.count) return undefined;
  const rooms = gpus.filter((d) => ids.includes(d.id)).map((d) => `GPU ${d.id} ${formatBytes(d.memory)}${d.foreign > 0 ? ` (${formatBytes(d.foreign)} held by other processes)` : ''}`);
  return `it needs ${formatBytes(w.memory / g.count)} on ${g.count === 1 ? 'one GPU' : `each of ${g.count} GPUs`}: ${rooms.join(', ')}`;
}

/**
 * When no choice of devices has room: the devices that cost least to clear and the models to evict
 * from them (taken from `pool` in its order, then any that turn out not to be needed given back).
 * 'behind' when room could only be made on devices a model ahead of it waits for; undefined when
 * evicting all of `pool` would not make room.
 */
export function makeRoom(w: Slot, held: readonly Slot[], gpus: readonly GpuRoom[], pool: readonly Slot[], behind: ReadonlySet<number>, cost: (s: Slot) => number): { devices: number[]; victims: Slot[] } | 'behind' | undefined {
  const k = w.gpu!.count;
  const opts = options(w, gpus);
  const ids = 'fixed' in opts ? opts.fixed : opts.pool;
  const fitsAll = (set: readonly number[], victims: readonly Slot[]) => {
    const rest = held.filter((h) => !victims.includes(h));
    const free = freeOf(gpus, rest, w);
    return set.every((id) => fitsOn(w, id, free, rest));
  };
  /** The victims that clear `set`, fewest needed; undefined when even all of those on it do not. */
  const clear = (set: readonly number[]): Slot[] | undefined => {
    const victims: Slot[] = [];
    for (const v of pool.filter((v) => placed(v, w) && v.gpu!.on!.some((id) => set.includes(id)))) {
      if (fitsAll(set, victims)) break;
      victims.push(v);
    }
    if (!fitsAll(set, victims)) return undefined;
    for (const v of [...victims]) if (fitsAll(set, victims.filter((x) => x !== v))) victims.splice(victims.indexOf(v), 1);
    return victims;
  };
  // Fewest busy victims, then the cheapest to bring back, then the fewest; then its old devices,
  // then the victims `pool` puts first (it is in eviction order).
  const score = (victims: readonly Slot[], onBefore: boolean) => [victims.filter((v) => v.busy || v.owed > 0).length, victims.reduce((n, v) => n + cost(v), 0), victims.length, onBefore ? 0 : 1, victims.reduce((n, v) => n + pool.indexOf(v), 0)];
  const open = ids.filter((id) => !behind.has(id));
  if ('fixed' in opts) {
    if (open.length < ids.length) return 'behind';
    const victims = clear(ids);
    return victims && { devices: ids, victims };
  }
  // Each device on its own first (its own cheapest clearing), then the k cheapest together.
  const each = open.flatMap((id) => {
    const victims = clear([id]);
    return victims ? [{ id, victims, score: score(victims, !!w.gpu!.before?.includes(id)) }] : [];
  });
  if (each.length < k) return ids.length > open.length ? 'behind' : undefined;
  const chosen = each.sort((a, b) => (less(a.score, b.score) ? -1 : less(b.score, a.score) ? 1 : a.id - b.id)).slice(0, k);
  const set = chosen.map((c) => c.id).sort((a, b) => a - b);
  const victims = clear(set);
  return victims && { devices: set, victims };
}

const less = (a: number[], b: number[]): boolean => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
};
