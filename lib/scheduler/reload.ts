// Pure diff of two configs for reload (SPEC §4): which models were added, removed, need a restart
// because how they are launched changed, or only had policy changes that apply live.
import type { HubConfig, ModelConfig } from '../config/types.js';

export interface ConfigDiff {
  added: string[];
  removed: string[];
  /** Launch settings changed (cmd, env, cwd, backend, url, port, gpus): restarted once idle. */
  restarted: string[];
  /** Only policy changed (idle, group, aliases, limits, …): applied live. */
  updated: string[];
  unchanged: string[];
}

const LAUNCH_KEYS = ['argv', 'env', 'cwd', 'backend', 'url', 'port', 'apiKey', 'gpus'] as const satisfies ReadonlyArray<keyof ModelConfig>;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function launchChanged(a: ModelConfig, b: ModelConfig): boolean {
  return LAUNCH_KEYS.some((k) => !same(a[k], b[k]));
}

export function diffConfigs(before: HubConfig, after: HubConfig): ConfigDiff {
  const diff: ConfigDiff = { added: [], removed: [], restarted: [], updated: [], unchanged: [] };
  for (const name of Object.keys(before.models)) if (!after.models[name]) diff.removed.push(name);
  for (const [name, next] of Object.entries(after.models)) {
    const prev = before.models[name];
    if (!prev) diff.added.push(name);
    else if (launchChanged(prev, next)) diff.restarted.push(name);
    else if (!same(prev, next) || groupChanged(before, after, next.group)) diff.updated.push(name);
    else diff.unchanged.push(name);
  }
  return diff;
}

function groupChanged(before: HubConfig, after: HubConfig, group: string | undefined): boolean {
  return group !== undefined && !same(before.groups[group], after.groups[group]);
}
