// The coordinators of a hub: one per group, and one for the hub's memory budget (which also serves
// the models outside any group, and places models with `gpus:` on devices). A group's coordinator
// decides order and room among its members
// alone: who loads next, who yields or is evicted within the group, who waits. When the hub has a
// memory budget, a model its group would let in must also fit that budget: the group passes it on to
// the hub's coordinator, which orders such candidates across groups by their oldest waiting request
// and makes room by evicting idle models of any group. Each GPU is such a budget too: a model with
// `gpus:` is passed on the same way, and the hub's coordinator picks its devices (placement.ts). Each plans only when a model of its own scope
// changes, so a busy group does not make every other group plan again.
import type { HubConfig } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';
import type { ModelActor } from './actor.js';
import type { GroupOutlook, GroupRule } from './capacity.js';
import { Coordinator, type Scope } from './coordinator.js';
import type { GpuRoom, Placement } from './placement.js';
import { wantsCapacity } from './state.js';

export interface CoordinatorsHost {
  config(): HubConfig;
  readonly clock: Clock;
  /** Every model that holds or may hold memory (removed ones still stopping included). */
  holders(): ModelActor[];
  /** The GPUs models with `gpus:` are placed on, and what other processes hold of them. */
  gpus(): readonly GpuRoom[];
  notice?(message: string): void;
}

export class Coordinators {
  private readonly deferred = new Set<ModelActor>();
  private groups = new Map<string, Coordinator>();
  private readonly hub: Coordinator;
  /** Per group: the members it would let in that wait for the hub's memory budget to agree. */
  private readonly offers = new Map<string, ReadonlySet<ModelActor>>();

  constructor(private readonly host: CoordinatorsHost) {
    this.hub = new Coordinator(this.hubScope(), { config: host.config, clock: host.clock, deferred: this.deferred });
    this.rebuild();
  }

  /** An actor's state changed: its group's coordinator and the hub's look again if they need to. */
  changed = (actor: ModelActor): void => {
    const now = this.host.clock.now();
    if (!wantsCapacity(actor.state, now)) this.deferred.delete(actor);
    const group = this.groupOf(actor);
    if (group) group.changed(actor);
    this.hub.changed(actor);
  };

  /** A reload: groups may have come or gone, and every rule may have changed. */
  replan(): void {
    this.rebuild();
    for (const g of this.groups.values()) g.replan();
    this.hub.replan();
  }

  /** What the GPUs hold changed: only the hub's coordinator places models on them. */
  gpusChanged(): void {
    this.hub.replan();
  }

  /** Per group (and '*' for the hub budget): what loads next, and why not yet. */
  get outlook(): Record<string, GroupOutlook> {
    const merged: Record<string, GroupOutlook> = { ...this.hub.outlook };
    // A group's own word wins, unless all it says is who is next while the hub's budget holds it back.
    for (const g of this.groups.values()) for (const [k, v] of Object.entries(g.outlook)) if (v.why || !merged[k]) merged[k] = v;
    return merged;
  }

  private groupOf(actor: ModelActor): Coordinator | undefined {
    const g = actor.config.group;
    return g === undefined ? undefined : this.groups.get(g);
  }

  private rebuild(): void {
    const names = Object.keys(this.host.config().groups);
    const next = new Map<string, Coordinator>();
    for (const name of names) next.set(name, this.groups.get(name) ?? new Coordinator(this.groupScope(name), { config: this.host.config, clock: this.host.clock, deferred: this.deferred }));
    for (const [name, g] of this.groups) {
      if (next.has(name)) continue;
      g.close();
      this.offers.delete(name);
    }
    this.groups = next;
    // Members of a group that is new, or that moved between groups, are known to their coordinator.
    for (const g of this.groups.values()) g.changed(...this.host.holders().filter((a) => a.config.group === g.scope.name));
  }

  private hubBudget(): number {
    return this.host.config().maxMemory;
  }

  private groupScope(name: string): Scope {
    const members = () => this.host.holders().filter((a) => a.config.group === name);
    return {
      name,
      wants: (a, now) => a.config.group === name && wantsCapacity(a.state, now),
      slots: (wanting, now) => {
        const mine = members().filter((a) => a.counted || wanting.has(a));
        return { slots: mine.map((a) => a.slot(now)), byKey: new Map(mine.map((a) => [a.key, a])) };
      },
      // The hub's budget is the hub coordinator's to judge (see needsHub).
      rules: (config) => ({ groups: { [name]: rule(config, name) }, hubMaxMemory: Infinity }),
      planned: (granted) => {
        const before = this.offers.get(name) ?? new Set<ModelActor>();
        const offers = new Set([...granted].filter((a) => this.needsHub(a)));
        if (!offers.size && !before.size) return;
        this.offers.set(name, offers);
        this.hub.changed(...offers, ...[...before].filter((a) => !offers.has(a)));
      },
      grant: (a) => {
        if (!this.needsHub(a)) this.send(a);
      },
    };
  }

  private hubScope(): Scope {
    const candidate = (a: ModelActor, now: number) =>
      wantsCapacity(a.state, now) && (a.config.group === undefined || !this.groups.has(a.config.group) ? true : !!this.offers.get(a.config.group)?.has(a));
    return {
      name: '*',
      wants: candidate,
      slots: (wanting, now) => {
        // Whatever holds memory counts against the budget, in any group; candidates want it.
        const budget = Number.isFinite(this.hubBudget());
        const mine = this.host.holders().filter((a) => wanting.has(a) || (a.counted && (a.config.gpus !== undefined || (budget ? a.plannedMemory.bytes > 0 : a.config.group === undefined))));
        const slots = mine.map((a) => ({ ...a.slot(now), wants: wanting.has(a) }));
        return { slots, byKey: new Map(mine.map((a) => [a.key, a])) };
      },
      // A group's count and memory were judged by its coordinator: here only its policy and swap_hold apply.
      rules: (config) => ({
        groups: Object.fromEntries(Object.keys(config.groups).map((g) => [g, { ...rule(config, g), maxLoaded: Infinity, maxMemory: Infinity }])),
        hubMaxMemory: config.maxMemory,
        gpus: config.gpus ? this.host.gpus() : undefined,
      }),
      grant: (a, _now, placement) => this.send(a, placement),
    };
  }

  /** Whether a model its group lets in must also fit the hub's memory budget or be placed on GPUs first. */
  private needsHub(a: ModelActor): boolean {
    if (a.config.gpus !== undefined) return true;
    if (!Number.isFinite(this.hubBudget())) return false;
    const planned = a.plannedMemory;
    return planned.bytes > 0 || planned.source === 'unknown';
  }

  private send(a: ModelActor, placement?: Placement): void {
    if (a.plannedMemory.source === 'unknown') this.host.notice?.(`model ${a.name} has memory: auto and has not been measured yet: it is loaded only into an otherwise empty group, and planned with what it holds once measured`);
    a.send({ type: 'granted', afterWait: this.deferred.delete(a), placement });
  }
}

function rule(config: HubConfig, name: string): GroupRule {
  const g = config.groups[name];
  return { name: g.name, maxLoaded: g.maxLoaded, maxMemory: g.maxMemory, onFull: g.onFull, swapHoldMs: g.swapHoldMs };
}

