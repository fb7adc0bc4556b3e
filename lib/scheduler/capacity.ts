// Pure capacity planning (SPEC §4 "Capacity"): given what holds memory now, can `target` be loaded,
// and if not, which models should give way? No I/O and no clocks, so every rule is unit-testable.

export interface SlotView {
  name: string;
  group?: string;
  /** Declared memory in bytes (0 = undeclared). */
  memory: number;
  /** Holds (or is about to hold) memory: loaded, loading, unloading, starting, or reserved. */
  counted: boolean;
  /** Has requests in flight (or is being drained for someone else). */
  busy: boolean;
  /** Mid-start or mid-load: cannot be evicted until that settles. */
  activating: boolean;
  pinned: boolean;
  /** Last time a request finished (ms); undefined = never used. */
  lastUsedAt?: number;
}

export interface Budget {
  maxLoaded: number;
  maxMemory: number;
}

export type Plan =
  | { kind: 'fits' }
  /** Evict these idle models (LRU first), then it fits. */
  | { kind: 'evict'; victims: string[] }
  /** Only busy models could make room: stop admitting to `drain`, wait for them to finish, plan again. */
  | { kind: 'wait-busy'; drain: string[] }
  /** Even evicting everything evictable would not make room (pinned or activating models hold it). */
  | { kind: 'blocked'; holders: string[] };

interface Usage {
  groupCount: number;
  groupMemory: number;
  hubMemory: number;
}

export function planRoom(target: SlotView, slots: readonly SlotView[], group: Budget | undefined, hubMaxMemory: number): Plan {
  const others = slots.filter((s) => s.name !== target.name && s.counted);
  const inGroup = (s: SlotView) => target.group !== undefined && s.group === target.group;
  const usage = (held: readonly SlotView[]): Usage => ({
    groupCount: held.filter(inGroup).length,
    groupMemory: held.filter(inGroup).reduce((n, s) => n + s.memory, 0),
    hubMemory: held.reduce((n, s) => n + s.memory, 0),
  });
  const fits = (u: Usage) =>
    (!group || (u.groupCount + 1 <= group.maxLoaded && u.groupMemory + target.memory <= group.maxMemory)) &&
    u.hubMemory + target.memory <= hubMaxMemory;
  /** Whether taking `s` out helps with a constraint that is still violated. */
  const helps = (s: SlotView, u: Usage) => {
    const groupFull = group !== undefined && (u.groupCount + 1 > group.maxLoaded || (u.groupMemory + target.memory > group.maxMemory && s.memory > 0));
    const hubFull = u.hubMemory + target.memory > hubMaxMemory && s.memory > 0;
    return (groupFull && inGroup(s)) || hubFull;
  };

  if (fits(usage(others))) return { kind: 'fits' };

  const evictable = others
    .filter((s) => !s.pinned && !s.activating)
    .sort((a, b) => (a.lastUsedAt ?? -Infinity) - (b.lastUsedAt ?? -Infinity));

  // Greedy in least-recently-used order, idle models only, then allowing busy ones.
  const choose = (pool: SlotView[]): SlotView[] | undefined => {
    let held = others;
    const chosen: SlotView[] = [];
    for (const s of pool) {
      if (fits(usage(held))) break;
      if (!helps(s, usage(held))) continue;
      chosen.push(s);
      held = held.filter((h) => h !== s);
    }
    return fits(usage(held)) ? chosen : undefined;
  };
  const idleOnly = choose(evictable.filter((s) => !s.busy));
  if (idleOnly) return { kind: 'evict', victims: idleOnly.map((s) => s.name) };
  const withBusy = choose(evictable);
  if (withBusy) return { kind: 'wait-busy', drain: withBusy.filter((s) => s.busy).map((s) => s.name) };
  return { kind: 'blocked', holders: others.filter((s) => s.pinned || s.activating).map((s) => s.name) };
}
