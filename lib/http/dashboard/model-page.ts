// The data of a model's own page (/hub/models/{name}): its card, its effective config with secrets
// masked, its recent transitions with their reasons, its last errors and the end of its log.
import { tailLines } from '../../runtime/log-tail.js';
import type { Controller } from '../../scheduler/controller.js';
import type { ModelStatus } from '../../scheduler/status.js';
import type { History, RecordedError } from '../../scheduler/history.js';
import type { Transition } from '../../scheduler/context.js';
import { configSecrets, inheritedSecrets, maskCache, modelSecrets } from '../../secrets.js';
import { modelYaml } from './config-yaml.js';
import { modelView, type ModelView, type UsageOf } from './view.js';

const LOG_LINES = 200;
const TRANSITIONS_SHOWN = 100;

export interface ModelPage {
  title: string;
  m: ModelView;
  config: string;
  transitions: Transition[];
  errors: RecordedError[];
  log: string;
  logUrl: string;
  /** Where the playground posts its chat (playground-routes.ts). */
  playgroundUrl: string;
}

const maskFor = maskCache();

export async function modelPage(controller: Controller, history: History, name: string, now: number, usageOf?: UsageOf, statuses?: ModelStatus[]): Promise<ModelPage> {
  const runtime = controller.get(name); // 404 for an unknown model
  const status = (statuses ?? controller.status().models).find((s) => s.name === name && !s.removed)!;
  const hub = controller.config;
  // Everything the config, the model and the hub's environment hold as secrets, as in its log.
  const mask = maskFor(runtime.config, () => [...configSecrets(hub), ...modelSecrets(runtime.config), ...inheritedSecrets()]);
  const errors = history.errors(name);
  if (status.last_error && !errors.some((e) => e.message === status.last_error)) errors.push({ at: runtime.lastError?.at ?? '', message: status.last_error });
  const { text } = await tailLines(runtime.logFile, LOG_LINES);
  return {
    title: `${name} · modelhub`,
    m: modelView(status, controller, history, now, usageOf),
    config: modelYaml(runtime.config, mask),
    transitions: history.transitions(name).slice(-TRANSITIONS_SHOWN).reverse(),
    errors: errors.reverse(),
    log: mask(text),
    logUrl: `/hub/api/models/${encodeURIComponent(name)}/logs?tail=${LOG_LINES}&follow=1`,
    playgroundUrl: `/hub/api/models/${encodeURIComponent(name)}/chat`,
  };
}
