// Making room for a model before it starts or loads (SPEC §4 "Capacity"): plan with the pure
// planner, then act on the group's on_full policy — evict idle models least-recently-used first,
// wait for busy ones (no longer admitting to them, so a steady stream to one model cannot starve
// another), reject, or wait for room, bounded by start_timeout.
import type { HubConfig } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';
import { formatBytes } from '../config/units.js';
import { HubError } from '../errors.js';
import { planRoom, type Budget, type SlotView } from './capacity.js';
import type { ModelRuntime, Reason } from './model.js';

export interface CapacityHost {
  readonly config: HubConfig;
  readonly clock: Clock;
  all(): ModelRuntime[];
  evict(m: ModelRuntime, reason: Reason): Promise<void>;
  changedBefore(deadline: number, signal: AbortSignal): Promise<boolean>;
  isActivating(m: ModelRuntime): boolean;
}

export function slotView(host: CapacityHost, m: ModelRuntime): SlotView {
  return {
    name: m.key,
    group: m.config.group,
    memory: m.config.memory,
    counted: m.counted,
    busy: m.inflight > 0,
    activating: host.isActivating(m),
    pinned: m.config.pinned,
    lastUsedAt: m.lastUsedAt ?? m.readyAt,
  };
}

/** Resolves once `m` fits (and reserves its place); throws capacity_exhausted when it cannot. */
export async function makeRoom(host: CapacityHost, m: ModelRuntime, reason: Reason, signal: AbortSignal): Promise<void> {
  const groupConfig = m.config.group ? host.config.groups[m.config.group] : undefined;
  const budget: Budget | undefined = groupConfig && { maxLoaded: groupConfig.maxLoaded, maxMemory: groupConfig.maxMemory };
  const policy = groupConfig?.onFull ?? 'evict';
  const deadline = host.clock.now() + m.config.startTimeoutMs;
  const holder = `making room for ${m.name}`;
  const draining = new Set<ModelRuntime>();
  try {
    while (true) {
      if (signal.aborted) throw new HubError('model_start_failed', `the start of model ${m.name} was cancelled (${String(signal.reason)})`);
      const byName = new Map(host.all().map((x) => [x.key, x]));
      const plan = planRoom(slotView(host, m), [...byName.values()].map((x) => slotView(host, x)), budget, host.config.maxMemory);
      if (plan.kind === 'fits') {
        m.reserved = true;
        return;
      }
      if (policy === 'reject') throw exhausted(host, m, 'the group is full and its on_full policy is reject');
      if (policy === 'evict' && plan.kind === 'evict') {
        const why = reason === 'operator' ? `evicted for ${m.name} (operator)` : `evicted for ${m.name}`;
        await Promise.all(plan.victims.map((name) => host.evict(byName.get(name)!, why)));
        continue;
      }
      if (policy === 'evict' && plan.kind === 'wait-busy') {
        for (const name of plan.drain) {
          const victim = byName.get(name)!;
          if (!draining.has(victim)) {
            victim.close(holder); // finish what it has, take nothing new until we are done
            draining.add(victim);
          }
        }
      }
      if (plan.kind === 'blocked' && plan.holders.every((h) => byName.get(h)?.config.pinned)) {
        throw exhausted(host, m, `pinned models (${plan.holders.map((h) => byName.get(h)!.name).join(', ')}) hold the capacity`);
      }
      if (!(await host.changedBefore(deadline, signal))) {
        if (signal.aborted) continue; // reported at the top of the loop
        throw exhausted(host, m, `no room appeared within start_timeout (${m.config.startTimeoutMs / 1000}s)`);
      }
    }
  } finally {
    for (const victim of draining) victim.open(holder);
  }
}

function exhausted(host: CapacityHost, m: ModelRuntime, why: string): HubError {
  const scope = m.config.group ? `group ${m.config.group}` : 'the hub';
  const holders = host.all().filter((x) => x !== m && x.counted && (!m.config.group || x.config.group === m.config.group || host.config.maxMemory < Infinity));
  const held = holders.map((x) => `${x.name}${x.config.memory ? ` (${formatBytes(x.config.memory)})` : ''}`).join(', ') || 'nothing';
  // Models in use will free up when their idle clock runs out; suggest retrying around then.
  const soonest = Math.min(...holders.map((x) => x.idleDeadline ?? Infinity));
  const retryAfterMs = Number.isFinite(soonest) ? Math.min(60_000, Math.max(1000, soonest - host.clock.now())) : 5000;
  return new HubError('capacity_exhausted', `no room to load model ${m.name} in ${scope}: ${why}; loaded now: ${held}. Retry later, or stop/unload a model`, { retryAfterMs });
}
