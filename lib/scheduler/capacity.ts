// Capacity and order as one pure function (the coordinators' brain): given a snapshot of every model
// that holds or wants memory, each group's rules and the time, decide who is granted room next, who
// is evicted or asked to yield, who is refused, and when to look again. No I/O and no clock, so every
// rule is unit-testable in microseconds.
//
// The policy (docs/scheduling.md): models that want room are served in the order of their oldest
// waiting request (so collation by model comes for free: one grant serves all of a model's waiters).
// A grant is made when the model fits its group and the hub budget. Otherwise, in an `evict` group,
// idle models make room first, cheapest to bring back relative to how long they have been idle; a
// busy model keeps admitting for the group's swap_hold after the head's first request began to wait,
// then yields (stops admitting, drains, unloads); a model loaded for waiting requests is not asked to
// yield until it has admitted them. The order is strict within a group: nobody overtakes the head.
import type { OnFull } from '../config/types.js';
import { formatBytes } from '../config/units.js';
import { devicesText, gpuChoices, makeRoom, place, type GpuRoom, type Placement, type SlotGpu } from './placement.js';

export interface Slot {
  key: string;
  name: string;
  group?: string;
  /** Bytes counted against budgets (0 = undeclared). */
  memory: number;
  /** `memory: auto` and never measured nor estimated: it may load only where nothing else holds room. */
  sizeUnknown?: boolean;
  /** Holds memory now or is about to (loaded, loading, unloading, starting, or granted room). */
  counted: boolean;
  /** Someone waits for it and it holds no memory yet. */
  wants: boolean;
  /** When its oldest waiter began to wait. */
  oldestAt?: number;
  /** Requests in flight, or waiting for one of its slots. */
  busy: boolean;
  /** Requests in flight plus those waiting for it: how many clients it serves right now. */
  demand: number;
  /** Requests it was loaded for and has not admitted yet. */
  owed: number;
  /** Mid-start or mid-load: cannot give way until that settles. */
  moving: boolean;
  /** Already stopping or unloading: its room frees without anyone asking. */
  leaving: boolean;
  pinned: boolean;
  /** Protected by an operator's multi-model load. */
  held: boolean;
  /** Requests it finished since it came up: two or more mean a client is working with it in turns. */
  servedSinceUp: number;
  /** When it last came up (loaded): a busy model keeps its swap_hold from then too. */
  loadedAt?: number;
  /** When it became idle (or was last used), for the eviction cost. */
  idleSince?: number;
  /** When its next idle step is due, if any (for Retry-After). */
  idleDeadline?: number;
  /** What bringing it back is expected to cost (ms), from its load history. */
  loadMs: number;
  startTimeoutMs: number;
  /** Models with `gpus:` (see placement.ts). */
  gpu?: SlotGpu;
}

export interface GroupRule {
  name: string;
  maxLoaded: number;
  maxMemory: number;
  onFull: OnFull;
  swapHoldMs: number;
}

export type Decision =
  | { kind: 'grant'; key: string; /** Models with `gpus:`: the devices it goes to, and why. */ placement?: Placement }
  | { kind: 'evict'; key: string; reason: string }
  | { kind: 'refuse'; key: string; message: string; retryAfterMs: number; /** Nothing a wait would change: a failed start, not a full hub. */ never?: boolean };

/** Per group (and '*' for the hub): what waits, what loads next, and why it has not yet. */
export interface GroupOutlook {
  next?: string;
  why?: string;
}

export interface Plan {
  decisions: Decision[];
  /** Look again then, even if nothing changes (a swap_hold or a wait deadline ends). */
  wakeAt?: number;
  outlook: Record<string, GroupOutlook>;
}

/** How long a model idle between two requests of the same client still counts as in use (within swap_hold). */
const REUSE_GRACE_MS = 250;
/** Swap hold for models outside any group (only the hub budget constrains them). */
const UNGROUPED_HOLD_MS = 0;

export function plan(slots: readonly Slot[], groups: Readonly<Record<string, GroupRule>>, hubMaxMemory: number, now: number, gpus?: readonly GpuRoom[]): Plan {
  const out: Plan = { decisions: [], outlook: {} };
  const wake = (at: number) => (out.wakeAt = Math.min(out.wakeAt ?? Infinity, at));
  const holding = slots.filter((s) => s.counted);
  const wanting = slots.filter((s) => s.wants).sort((a, b) => (a.oldestAt ?? 0) - (b.oldestAt ?? 0) || (a.key < b.key ? -1 : 1));
  const blocked = new Set<string>(); // groups (and '*' for the hub budget) whose head waits
  const granted: Slot[] = [];
  const behind = new Set<number>(); // GPUs an earlier model waits to be given

  for (const w of wanting) {
    const rule = w.group !== undefined ? groups[w.group] : undefined;
    const scope = rule?.name ?? '*';
    if (blocked.has(scope) || (w.memory > 0 && blocked.has('*'))) continue; // strict order behind the head
    const held = [...holding, ...granted];
    const fit = fits(w, held, rule, hubMaxMemory);
    if (fit.ok) {
      // A model with `gpus:` also needs devices with room (only the hub's coordinator passes them).
      const spot = w.gpu && gpus ? onGpus(w, held, gpus, behind, rule, now, out, wake) : undefined;
      if (spot === null) continue;
      granted.push({ ...w, counted: true, moving: true, gpu: spot ? { ...w.gpu!, on: spot.devices } : w.gpu }); // granted in this plan: about to load, not a victim
      out.decisions.push({ kind: 'grant', key: w.key, ...(spot && { placement: spot }) });
      continue;
    }
    const policy = rule?.onFull ?? 'evict';
    const outlook = (why: string) => (out.outlook[fit.scope === '*' ? '*' : scope] ??= { next: w.name, why });
    if (policy === 'reject') {
      out.decisions.push(refusal(w, held, 'the group is full and its on_full policy is reject', now));
      continue;
    }
    blocked.add(fit.scope);
    if (policy === 'wait') {
      const deadline = (w.oldestAt ?? now) + w.startTimeoutMs;
      if (now >= deadline) out.decisions.push(refusal(w, held, `no room appeared within start_timeout (${w.startTimeoutMs / 1000}s)`, now));
      else {
        wake(deadline);
        outlook(`waits for room (on_full: wait)`);
      }
      continue;
    }
    const relevant = held.filter((h) => h.key !== w.key && affects(h, w, fit.scope));
    const staying = relevant.filter((h) => !h.leaving);
    const rest = held.filter((h) => !(h.leaving && relevant.includes(h)));
    if (fits(w, rest, rule, hubMaxMemory).ok) {
      outlook(`waits for ${names(relevant.filter((h) => h.leaving))} to free their memory`);
      continue;
    }
    const chosen = choose(w, rest, evictionOrder(staying, now), rule, hubMaxMemory);
    if (!chosen) {
      const stuck = staying.filter((h) => !h.moving);
      if (staying.length && stuck.length === staying.length && stuck.every((h) => h.pinned || h.held)) {
        const pinned = stuck.filter((h) => h.pinned).map((h) => h.name);
        const kept = stuck.filter((h) => h.held && !h.pinned).map((h) => h.name);
        const who = [pinned.length ? `pinned models (${pinned.join(', ')})` : '', kept.length ? `models an operator is loading together (${kept.join(', ')})` : ''].filter(Boolean).join(' and ');
        out.decisions.push(refusal(w, held, `${who} hold the capacity`, now));
        blocked.delete(fit.scope);
      } else outlook(`waits for ${names(staying.filter((h) => h.moving))} to finish loading`);
      continue;
    }
    const waitingFor = giveWay(w, chosen, rule?.swapHoldMs ?? UNGROUPED_HOLD_MS, now, out, wake);
    outlook(waitingFor.length ? `waits for ${waitingFor.join('; ')}` : 'room is being made');
  }
  for (const w of wanting) {
    const scope = w.group ?? '*';
    out.outlook[scope] ??= { next: w.name };
  }
  return out;
}

/**
 * Devices for `w`, which fits its group and the hub's budget: its placement, or null when it has to
 * wait (idle models on the chosen devices are evicted, busy ones yield after swap_hold) or is refused.
 * Its group's on_full applies to a GPU without room as to the group's own budget.
 */
function onGpus(w: Slot, held: Slot[], gpus: readonly GpuRoom[], behind: Set<number>, rule: GroupRule | undefined, now: number, out: Plan, wake: (at: number) => void): Placement | null {
  const outlook = (why: string) => (out.outlook[w.group ?? '*'] ??= { next: w.name, why });
  const spot = place(w, held, gpus, behind);
  if (spot.kind === 'placed') return spot.placement;
  if (spot.kind === 'never') {
    const advice = gpus.length ? "Change its gpus or memory in hub.yaml (or the hub's gpus), or free the GPU" : 'Check that nvidia-smi answers (the NVIDIA driver is loaded), or list the devices under gpus in hub.yaml';
    out.decisions.push({ kind: 'refuse', key: w.key, message: `model ${w.name} cannot be placed on a GPU: ${spot.why}. ${advice}`, retryAfterMs: 0, never: true });
    return null;
  }
  if (spot.kind === 'behind') {
    outlook('waits for a model ahead of it to be placed on a GPU');
    return null;
  }
  const policy = rule?.onFull ?? 'evict';
  if (policy === 'reject') {
    out.decisions.push(refusal(w, held, 'no GPU it may use has room and its group\'s on_full policy is reject', now));
    return null;
  }
  const ids = new Set(gpuChoices(w, gpus));
  const onMine = held.filter((h) => h.key !== w.key && h.counted && h.gpu?.on?.some((id) => ids.has(id)));
  const keep = (models: readonly Slot[]) => models.forEach((h) => h.gpu!.on!.forEach((id) => ids.has(id) && behind.add(id)));
  if (policy === 'wait') {
    const deadline = (w.oldestAt ?? now) + w.startTimeoutMs;
    if (now >= deadline) out.decisions.push(refusal(w, held, `no GPU it may use had room within start_timeout (${w.startTimeoutMs / 1000}s)`, now));
    else {
      wake(deadline);
      keep(onMine);
      outlook('waits for room on a GPU (on_full: wait)');
    }
    return null;
  }
  const leaving = onMine.filter((h) => h.leaving);
  const rest = held.filter((h) => !leaving.includes(h)); // what stays once those leaving are gone
  const after = leaving.length ? place(w, rest, gpus, behind) : undefined;
  if (after?.kind === 'placed') {
    for (const id of after.placement.devices) behind.add(id); // kept for it while they empty
    outlook(`waits for ${names(leaving)} to free GPU memory`);
    return null;
  }
  const staying = onMine.filter((h) => !h.leaving);
  const room = makeRoom(w, rest, gpus, evictionOrder(staying, now), behind, (s) => cost(s, now));
  if (room === 'behind') {
    outlook('waits for a model ahead of it to be placed on a GPU');
    return null;
  }
  if (!room) {
    const moving = staying.filter((h) => h.moving);
    if (moving.length) {
      keep(moving);
      outlook(`waits for ${names(moving)} to finish loading`);
    } else {
      const fixed = staying.filter((h) => h.pinned || h.held);
      const asleep = w.gpu!.on?.length ? `; model ${w.name}'s process is on ${devicesText(w.gpu!.on)} with its memory released: stop it to have it placed anew` : '';
      out.decisions.push(refusal(w, held, `no GPU it may use has room, and the models on them cannot be evicted (${names(fixed)}: pinned, or being loaded together by an operator)${asleep}`, now));
    }
    return null;
  }
  for (const id of room.devices) behind.add(id);
  const where = ` on ${devicesText(room.devices)}`;
  const waitingFor = giveWay(w, room.victims, rule?.swapHoldMs ?? UNGROUPED_HOLD_MS, now, out, wake, where);
  outlook(waitingFor.length ? `waits for ${waitingFor.join('; ')}` : `room is being made${where}`);
  return null;
}

/** Who may be evicted, in the order they are: idle ones cheapest to bring back first, then busy ones. */
function evictionOrder(staying: readonly Slot[], now: number): Slot[] {
  const candidates = staying.filter((h) => !h.pinned && !h.held && !h.moving);
  const idle = candidates.filter((h) => !h.busy && h.owed === 0).sort((a, b) => cost(a, now) - cost(b, now) || (a.idleSince ?? 0) - (b.idleSince ?? 0));
  const busy = candidates.filter((h) => h.busy || h.owed > 0).sort((a, b) => (a.idleSince ?? 0) - (b.idleSince ?? 0));
  return [...idle, ...busy];
}

/**
 * Asks the models chosen to make room for `w` to give way: an idle one is evicted at once, a busy
 * one keeps admitting until its swap_hold ends, then yields. Returns what `w` still waits for.
 */
function giveWay(w: Slot, chosen: readonly Slot[], hold: number, now: number, out: Plan, wake: (at: number) => void, where = ''): string[] {
  const waitingFor: string[] = [];
  for (const v of chosen) {
    // A model in use keeps admitting for swap_hold after the head began to wait; one that came up
    // after that and serves at least as many clients as wait for the head keeps it from when it came
    // up (so a model loaded for a batch also serves the agents that stay with it). A model idle for
    // only a moment is between two requests of an agent: it counts as in use for a short grace.
    const holdUntil = Math.max(w.oldestAt ?? now, v.demand >= w.demand ? (v.loadedAt ?? -Infinity) : -Infinity) + hold;
    // The grace is for a model in a run of turns (it served two or more since it came up), not for
    // one that answered a single request: that one gives way at once.
    const graceEnd = v.servedSinceUp >= 2 ? (v.idleSince ?? -Infinity) + Math.min(hold, REUSE_GRACE_MS) : -Infinity;
    const idle = !v.busy && v.owed === 0;
    if (v.owed > 0) waitingFor.push(`${v.name} to serve the ${v.owed} request${v.owed === 1 ? '' : 's'} it was loaded for`);
    else if (idle && !(now < graceEnd && now < holdUntil)) out.decisions.push({ kind: 'evict', key: v.key, reason: `evicted for ${w.name}${where}: idle ${seconds(now - (v.idleSince ?? now))}, reload ~${seconds(v.loadMs)}` });
    else if (now < holdUntil) {
      const until = idle ? Math.min(graceEnd, holdUntil) : holdUntil;
      wake(until);
      waitingFor.push(`${v.name}, which keeps serving until ${new Date(until).toISOString()} (swap_hold)`);
    } else out.decisions.push({ kind: 'evict', key: v.key, reason: `yielded to ${w.name}${where}: its requests waited ${seconds(now - (w.oldestAt ?? now))}` });
  }
  return waitingFor;
}

/** Whether `s` fits beside `held`, and if not, which budget is short: its group's or the hub's ('*'). */
function fits(s: Slot, held: readonly Slot[], rule: GroupRule | undefined, hubMaxMemory: number): { ok: true } | { ok: false; scope: string } {
  if (s.sizeUnknown) {
    // What it will hold is unknown until it has been measured: only into an otherwise empty group
    // (and, where the hub has a budget, nothing else holding memory).
    if (rule && held.some((h) => h.group === rule.name && h.key !== s.key)) return { ok: false, scope: rule.name };
    if (Number.isFinite(hubMaxMemory) && held.some((h) => h.key !== s.key && h.memory > 0)) return { ok: false, scope: '*' };
  }
  if (rule) {
    const members = held.filter((h) => h.group === rule.name && h.key !== s.key);
    const memory = members.reduce((n, h) => n + h.memory, 0);
    if (members.length + 1 > rule.maxLoaded || memory + s.memory > rule.maxMemory) return { ok: false, scope: rule.name };
  }
  const hub = held.filter((h) => h.key !== s.key).reduce((n, h) => n + h.memory, 0);
  return hub + s.memory > hubMaxMemory ? { ok: false, scope: '*' } : { ok: true };
}

/** Whether taking `h` out can help `w` with the budget that is short. */
const affects = (h: Slot, w: Slot, scope: string): boolean => (scope === '*' ? h.memory > 0 : h.group === w.group);

/** Greedy: take victims in order until `w` fits; undefined when even all of them would not do. */
function choose(w: Slot, held: readonly Slot[], pool: readonly Slot[], rule: GroupRule | undefined, hubMaxMemory: number): Slot[] | undefined {
  let rest = held;
  const chosen: Slot[] = [];
  for (const v of pool) {
    if (fits(w, rest, rule, hubMaxMemory).ok) break;
    if (!helps(w, rest, v, rule, hubMaxMemory)) continue; // e.g. a 0-byte model for a memory budget
    chosen.push(v);
    rest = rest.filter((h) => h.key !== v.key);
  }
  if (!fits(w, rest, rule, hubMaxMemory).ok) return undefined;
  // The order is by cost, not size: a cheap small model may have been taken before a large one that
  // alone makes room. Give back every victim whose room turns out not to be needed.
  for (const v of [...chosen]) {
    const others = chosen.filter((c) => c !== v);
    if (fits(w, held.filter((h) => !others.some((c) => c.key === h.key)), rule, hubMaxMemory).ok) chosen.splice(chosen.indexOf(v), 1);
  }
  return chosen;
}

/** Whether taking `v` out helps with a budget that is still short for `w`. */
function helps(w: Slot, held: readonly Slot[], v: Slot, rule: GroupRule | undefined, hubMaxMemory: number): boolean {
  const others = held.filter((h) => h.key !== w.key);
  if (w.sizeUnknown) return (rule !== undefined && v.group === rule.name) || (Number.isFinite(hubMaxMemory) && v.memory > 0);
  const hubShort = others.reduce((n, h) => n + h.memory, 0) + w.memory > hubMaxMemory;
  if (hubShort && v.memory > 0) return true;
  if (!rule || v.group !== rule.name) return false;
  const members = others.filter((h) => h.group === rule.name);
  const countShort = members.length + 1 > rule.maxLoaded;
  const memoryShort = members.reduce((n, h) => n + h.memory, 0) + w.memory > rule.maxMemory;
  return countShort || (memoryShort && v.memory > 0);
}

/** Cheapest to bring back relative to how long it has been idle: evicted first. Never used = free. */
function cost(s: Slot, now: number): number {
  const idle = now - (s.idleSince ?? -Infinity);
  return idle === Infinity ? 0 : s.loadMs / Math.max(1, idle);
}

function refusal(w: Slot, held: readonly Slot[], why: string, now: number): Decision {
  const scope = w.group ? `group ${w.group}` : 'the hub';
  const holders = held.filter((h) => h.key !== w.key && (w.group === undefined || h.group === w.group));
  const list = holders.map((h) => `${h.name}${h.memory ? ` (${formatBytes(h.memory)})` : ''}`).join(', ') || 'nothing';
  // Models in use will free up when their idle clock runs out; suggest retrying around then.
  const soonest = Math.min(...holders.map((h) => h.idleDeadline ?? Infinity));
  const retryAfterMs = Number.isFinite(soonest) ? Math.min(60_000, Math.max(1000, soonest - now)) : 5000;
  return { kind: 'refuse', key: w.key, message: `no room to load model ${w.name} in ${scope}: ${why}; loaded now: ${list}. Retry later, or stop/unload a model`, retryAfterMs };
}

const names = (slots: readonly Slot[]): string => slots.map((s) => s.name).join(', ') || 'others';

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}
