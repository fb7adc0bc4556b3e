// `gpus:` at the top of hub.yaml (the devices the hub places models on) and `gpus:` on a model (how
// many devices it needs, or which): checked and normalized (docs/gpus.md). The placement itself is
// the coordinators' (scheduler/placement.ts); this only makes sure a config can be placed at all.
import { formatBytes, parseSize } from './units.js';
import type { GpuConfig, GpuNeed, ModelConfig } from './types.js';
import type { HubFile, ModelFile } from './schema.js';

type Problem = (segments: string[], message: string) => void;

/** The hub's devices: `auto` (from nvidia-smi when the hub starts) or the listed ones; undefined when not set. */
export function gpuConfigOf(file: HubFile, problem: Problem): GpuConfig | undefined {
  const g = file.gpus;
  if (g === undefined) return undefined;
  if (g === 'auto') return { auto: true, devices: [] };
  const seen = new Set<number>();
  const devices = g.map((d, i) => {
    if (seen.has(d.id)) problem(['gpus', String(i), 'id'], `GPU ${d.id} is listed twice; give each device its own id (its index in nvidia-smi -L)`);
    seen.add(d.id);
    return { id: d.id, memory: parseSize(d.memory)! };
  });
  if (!devices.length) problem(['gpus'], 'lists no devices; list them ({ id: 0, memory: 24GiB }), or write gpus: auto');
  return { auto: false, devices };
}

/** A model's `gpus:` as the placement needs it, after checking it against the hub's devices. */
export function gpuNeedOf(m: ModelConfig, merged: ModelFile, own: ModelFile, hub: GpuConfig | undefined, at: string[], problem: Problem): GpuNeed | undefined {
  const g = merged.gpus;
  if (g === undefined) return undefined;
  const mine = own.gpus !== undefined;
  const where = mine ? [...at, 'gpus'] : ['defaults', 'gpus'];
  if (m.url !== undefined) {
    // From defaults it only applies where it can: a remote model runs on another machine.
    if (mine) problem(where, `only applies to models with cmd; ${m.name} is remote (url) and the hub does not start it`);
    return undefined;
  }
  if (!hub) {
    problem(where, 'the hub lists no GPUs to place it on: add `gpus: auto` (or a list of devices) at the top of hub.yaml');
    return undefined;
  }
  if (own.env?.CUDA_VISIBLE_DEVICES !== undefined || (mine && m.env.CUDA_VISIBLE_DEVICES !== undefined)) {
    const where = own.env?.CUDA_VISIBLE_DEVICES !== undefined ? [...at, 'env', 'CUDA_VISIBLE_DEVICES'] : ['defaults', 'env', 'CUDA_VISIBLE_DEVICES'];
    problem(where, `the hub sets CUDA_VISIBLE_DEVICES for a model with gpus (${m.name}): remove it from env (or remove gpus to place the model by hand)`);
  }
  if (!m.memory && !m.memoryAuto) {
    problem(mine ? where : [...at, 'memory'], `${m.name} has gpus but no memory: the hub places models by size; set memory: to what it holds (e.g. 20GiB), or memory: auto to use what it was measured to hold`);
  }
  const need: GpuNeed = typeof g === 'number' ? { count: g } : { count: g.length, only: [...g] };
  if (need.only && new Set(need.only).size !== need.only.length) problem(where, `lists a GPU twice (${need.only.join(', ')})`);
  if (hub.auto) return need; // the devices are known once nvidia-smi answers: a start that cannot be placed is refused then, saying why
  const ids = hub.devices.map((d) => d.id);
  const unknown = need.only?.filter((id) => !ids.includes(id)) ?? [];
  if (unknown.length) problem(where, `GPU ${unknown.join(', ')} is not listed under gpus (listed: ${ids.join(', ')})`);
  else if (need.count > ids.length) problem(where, `needs ${need.count} GPUs, but gpus lists ${ids.length}`);
  else if (m.memory > 0) {
    // Split evenly over its devices: each must be able to hold its share.
    const share = m.memory / need.count;
    const usable = hub.devices.filter((d) => !need.only || need.only.includes(d.id)).map((d) => d.memory).sort((a, b) => b - a);
    if (usable[need.count - 1] < share) problem([...at, 'memory'], `${formatBytes(m.memory)} over ${need.count} GPU${need.count > 1 ? 's' : ''} is ${formatBytes(share)} on each, ${need.count > 1 ? `and fewer than ${need.count} of the listed devices hold that much` : 'more than any listed device holds'}; it could never be placed`);
  }
  return need;
}
