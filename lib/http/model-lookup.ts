// How a name a client sends finds a model (documented in docs/config.md, "Model names"): the exact
// name or alias first; failing that, the one name or alias equal to it ignoring case. The config
// refuses names and aliases that differ only by case, so the second step finds at most one model.
import { caseKey } from '../config/names.js';
import type { Controller } from '../scheduler/controller.js';
import type { ModelActor } from '../scheduler/actor.js';

export function findModel(controller: Controller, id: string): ModelActor | undefined {
  const exact = controller.resolve(id);
  if (exact) return exact;
  const key = caseKey(id);
  return controller.allIds().find((x) => caseKey(x.id) === key)?.model;
}
