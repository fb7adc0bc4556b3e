// The coordinator: capacity and order for every group and the hub budget. It keeps the set of models
// that want room; whenever one of them or a model holding memory changes, it takes snapshots of the
// models and asks the pure planner (capacity.ts) what to do, then tells the actors: room granted,
// evict (or yield), refused. A plan that depends on time alone (a swap_hold ending, a wait deadline)
// asks to be woken then. Planning is never re-entered: a change reported while planning is planned
// again right after.
import type { HubConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { ModelActor } from './actor.js';
import { plan, type GroupOutlook, type GroupRule } from './capacity.js';
import { wantsCapacity } from './state.js';

export interface CoordinatorHost {
  config(): HubConfig;
  readonly clock: Clock;
  /** Every model that holds or may hold memory (removed ones still stopping included). */
  holders(): ModelActor[];
}

export class Coordinator {
  private readonly wanting = new Set<ModelActor>();
  /** Models that wanted room and were not granted it at once: their grant ends a wait for a swap. */
  private readonly deferred = new Set<ModelActor>();
  private planning = false;
  private again = false;
  private timer?: Timer;
  private wakeAt?: number;
  /** What the last plan said per group: who loads next and why not yet. */
  outlook: Record<string, GroupOutlook> = {};
  /** The outlook says something (kept as a flag: changed() runs on every request's steps). */
  private outlookShown = false;

  constructor(private readonly host: CoordinatorHost) {}

  /** An actor's state changed. Planning is needed only while someone wants room. */
  changed = (actor: ModelActor): void => {
    if (wantsCapacity(actor.state, this.host.clock.now())) this.wanting.add(actor);
    else this.wanting.delete(actor);
    // Also once nobody wants room any more: the outlook (who loads next) must not go stale.
    if (this.wanting.size || this.timer || this.outlookShown) this.replan();
  };

  /** Plan now (a reload changed the rules, or a timer came due). */
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

  private once(): void {
    const now = this.host.clock.now();
    for (const a of this.wanting) if (!wantsCapacity(a.state, now)) this.wanting.delete(a);
    for (const a of this.deferred) if (!this.wanting.has(a)) this.deferred.delete(a);
    if (!this.wanting.size) {
      this.outlook = {};
      this.outlookShown = false;
      this.arm(undefined);
      return;
    }
    const actors = this.host.holders();
    const byKey = new Map(actors.map((a) => [a.key, a]));
    const slots = actors.filter((a) => a.counted || this.wanting.has(a)).map((a) => a.slot(now));
    const config = this.host.config();
    const rules: Record<string, GroupRule> = {};
    for (const g of Object.values(config.groups)) rules[g.name] = { name: g.name, maxLoaded: g.maxLoaded, maxMemory: g.maxMemory, onFull: g.onFull, swapHoldMs: g.swapHoldMs };
    const result = plan(slots, rules, config.maxMemory, now);
    this.outlook = result.outlook;
    this.outlookShown = Object.keys(result.outlook).length > 0;
    this.arm(result.wakeAt);
    const answered = new Set<ModelActor>();
    for (const d of result.decisions) {
      const actor = byKey.get(d.key);
      if (!actor) continue;
      if (d.kind === 'grant') actor.send({ type: 'granted', afterWait: this.deferred.delete(actor) });
      else if (d.kind === 'evict') actor.send({ type: 'down', to: 'unload', reason: d.reason, drainMs: Infinity });
      else actor.send({ type: 'refused', error: new HubError('capacity_exhausted', d.message, { retryAfterMs: d.retryAfterMs }) });
      if (d.kind !== 'evict') answered.add(actor);
    }
    for (const a of this.wanting) if (!answered.has(a)) this.deferred.add(a);
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
