// "Stop all" and "Unload all": the same operator action on every model it applies to, at once, through
// the scheduler like the one-model actions. POST /hub/api/stop-all and /hub/api/unload-all, and the
// dashboard's confirm page (/hub/bulk/{stop|unload}) and its form, which work without JavaScript.
import { HubError } from '../errors.js';
import type { Controller } from '../scheduler/controller.js';

export const BULK = ['stop', 'unload'] as const;
export type BulkAction = (typeof BULK)[number];

export interface BulkResult {
  action: BulkAction;
  /** The models it was done to, with their state after. */
  models: Array<{ model: string; process: string; memory: string }>;
  /** The ones where it failed, and why. */
  failed: Array<{ model: string; error: string }>;
}

/**
 * The models an action applies to now: Stop, those whose process is not stopped or failed (a start
 * under way is cancelled); Unload, those running with memory loaded or loading that can unload
 * (memory control; without it, only a stop frees memory). Remote models are not run by the hub.
 */
export function bulkTargets(controller: Controller, action: BulkAction): string[] {
  return controller
    .holders()
    .filter((m) => !m.retired && !m.remote)
    .filter((m) => (action === 'stop' ? m.process !== 'stopped' && m.process !== 'failed' : m.process === 'running' && m.hasMemoryControl && (m.memory === 'loaded' || m.memory === 'loading')))
    .map((m) => m.name);
}

export async function bulk(controller: Controller, action: BulkAction): Promise<BulkResult> {
  const names = bulkTargets(controller, action);
  const outcomes = await Promise.allSettled(names.map((name) => controller[action](name)));
  const result: BulkResult = { action, models: [], failed: [] };
  outcomes.forEach((o, i) => {
    const model = names[i];
    if (o.status === 'rejected') {
      if (!(o.reason instanceof HubError)) throw o.reason;
      result.failed.push({ model, error: o.reason.message });
    } else {
      const m = controller.get(model);
      result.models.push({ model, process: m.process, memory: m.memory });
    }
  });
  return result;
}

export const isBulk = (action: string): action is BulkAction => (BULK as readonly string[]).includes(action);
