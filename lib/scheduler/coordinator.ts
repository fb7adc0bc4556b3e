// One coordinator: capacity and order for one scope, a group or the hub's memory budget. It keeps the
// models of its scope that want room; whenever one of them or a model holding room changes, it takes
// snapshots of the models it plans over and asks the pure planner (capacity.ts) what to do, then
// passes the decisions on (room granted, evict or yield, refused). A plan that depends on time alone
// (a swap_hold ending, a wait deadline) asks to be woken then. Planning is never re-entered: a change
// reported while planning is planned again right after. coordinators.ts wires one per group and one
// for the hub.
import type { HubConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { ModelActor } from './actor.js';
import { plan, type GroupOutlook, type GroupRule, type Slot } from './capacity.js';
import type { GpuRoom, Placement } from './placement.js';

/** What makes a coordinator a group's or the hub's: whom it plans for, with which rules. */
export interface Scope {
  /** The group's name, or '*' for the hub's budget. */
  readonly name: string;
  /** Whether `actor` wants room from this coordinator now. */
  wants(actor: ModelActor, now: number): boolean;
  /** The snapshots to plan over (its members and what holds the room they share); `wanting` want room. */
  slots(wanting: ReadonlySet<ModelActor>, now: number): { slots: Slot[]; byKey: Map<string, ModelActor> };
  rules(config: HubConfig): { groups: Record<string, GroupRule>; hubMaxMemory: number; gpus?: readonly GpuRoom[] };
  /** A grant: to the actor itself (with its GPUs, if placed), or on to the hub's coordinator when the hub's memory or GPUs must agree. */
  grant(actor: ModelActor, now: number, placement?: Placement): void;
  /** Called after each plan with the actors it granted (a group tells the hub which ones it passed on). */
  planned?(granted: ReadonlySet<ModelActor>): void;
}

export interface CoordinatorHost {
  config(): HubConfig;
  readonly clock: Clock;
  /** Models that wanted room and were not granted it at once: their grant ends a wait for a swap. */
  readonly deferred: Set<ModelActor>;
}

export class Coordinator {
  private readonly wanting = new Set<ModelActor>();
  private planning = false;
  private again = false;
  private timer?: Timer;
  private wakeAt?: number;
  /** What the last plan said: who loads next in the scope and why not yet. */
  outlook: Record<string, GroupOutlook> = {};
  /** The outlook says something (kept as a flag: changed() runs on every request's steps). */
  private outlookShown = false;

  constructor(
    readonly scope: Scope,
    private readonly host: CoordinatorHost,
  ) {}

  /** Models of the scope changed. Planning is needed only while someone wants room. */
  changed(...actors: ModelActor[]): void {
    const now = this.host.clock.now();
    for (const actor of actors) {
      if (this.scope.wants(actor, now)) this.wanting.add(actor);
      else this.wanting.delete(actor);
    }
    // Also once nobody wants room any more: the outlook (who loads next) must not go stale.
    if (this.wanting.size || this.timer || this.outlookShown) this.replan();
  }

  /** Plan now (a reload changed the rules, a timer came due, the hub's room changed). */
  replan(): void {
    if (this.planning) {
      this.again = true;
      return;
    }
    this.planning = true;
    try {
      do {
        this.again = false;
        this.once();
      } while (this.again);
    } finally {
      this.planning = false;
    }
  }

  /** Stops the wake-up timer (a reload replaced this coordinator). */
  close(): void {
    this.arm(undefined);
  }

  private once(): void {
    const now = this.host.clock.now();
    const { deferred } = this.host;
    for (const a of this.wanting) if (!this.scope.wants(a, now)) this.wanting.delete(a);
    if (!this.wanting.size) {
      this.outlook = {};
      this.outlookShown = false;
      this.arm(undefined);
      this.scope.planned?.(new Set());
      return;
    }
    const { slots, byKey } = this.scope.slots(this.wanting, now);
    const { groups, hubMaxMemory, gpus } = this.scope.rules(this.host.config());
    const result = plan(slots, groups, hubMaxMemory, now, gpus);
    this.outlook = result.outlook;
    this.outlookShown = Object.keys(result.outlook).length > 0;
    this.arm(result.wakeAt);
    const answered = new Set<ModelActor>();
    const granted = new Map<ModelActor, Placement | undefined>();
    for (const d of result.decisions) {
      const actor = byKey.get(d.key);
      if (!actor) continue;
      if (d.kind === 'grant') granted.set(actor, d.placement);
      else if (d.kind === 'evict') actor.send({ type: 'down', to: 'unload', reason: d.reason, drainMs: Infinity });
      else actor.send({ type: 'refused', error: d.never ? new HubError('model_start_failed', d.message) : new HubError('capacity_exhausted', d.message, { retryAfterMs: d.retryAfterMs }) });
      if (d.kind !== 'evict') answered.add(actor);
    }
    for (const a of this.wanting) if (!answered.has(a)) deferred.add(a);
    this.scope.planned?.(new Set(granted.keys()));
    for (const [a, placement] of granted) this.scope.grant(a, now, placement);
  }

  private arm(at: number | undefined): void {
    if (at === this.wakeAt && (at === undefined || this.timer)) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.wakeAt = at;
    if (at === undefined) return;
    this.timer = this.host.clock.after(at - this.host.clock.now(), () => {
      this.timer = undefined;
      this.wakeAt = undefined;
      this.replan();
    });
  }
}
