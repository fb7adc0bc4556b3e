// What `hub status` says about memory below its table: per model, declared beside measured (the peak
// of its recent loads) and the GGUF estimate; the memory warnings; and each GPU with the models that
// hold its memory. All from GET /hub/api/status (the hub's memory monitor fills those fields).
import { formatBytes } from '../config/units.js';
import type { GpuView } from '../runtime/memory-monitor.js';
import type { GroupStatus, ModelStatus } from '../scheduler/status.js';

export interface MemoryLines {
  info: string[];
  warn: string[];
}

/** "big: 40MiB declared · measured 137.2MiB (peak of 2 loads) · estimated 1.4GiB (8192 tokens, K f16, V f16)". */
function modelLine(m: ModelStatus): string | undefined {
  const measured = m.memory_measured;
  const estimate = m.memory_estimate;
  if (!measured && !estimate) return undefined;
  const parts = [`${m.memory_bytes ? formatBytes(m.memory_bytes) : 'none'} declared`];
  if (measured) parts.push(`measured ${formatBytes(measured.bytes)}${measured.gpu_bytes ? ' GPU' : ''} (peak of ${measured.loads === 1 ? '1 load' : `${measured.loads} loads`}${measured.gpu_bytes ? `; host RSS ${formatBytes(measured.rss_bytes)}` : ''})`);
  if (estimate && 'bytes' in estimate) parts.push(`estimated ${formatBytes(estimate.bytes)} (${estimate.context} tokens, K ${estimate.cache_type_k}, V ${estimate.cache_type_v})`);
  else if (estimate) parts.push(`no estimate: ${estimate.error}`);
  return `memory ${m.name}: ${parts.join(' · ')}`;
}

function gpuLine(g: GpuView): string {
  const used = g.used_bytes === null ? 'used unknown' : `${formatBytes(g.used_bytes)}${g.total_bytes === null ? '' : ` of ${formatBytes(g.total_bytes)}`} used`;
  const holders = g.models.map((m) => `${m.model} ${formatBytes(m.bytes)}`);
  return `GPU ${g.index} (${g.name}): ${used}${holders.length ? ` · ${holders.join(', ')}` : ''}`;
}

export function memoryLines(models: ModelStatus[], groups: GroupStatus[], gpus: GpuView[] = []): MemoryLines {
  const info = models.flatMap((m) => modelLine(m) ?? []);
  info.push(...gpus.map(gpuLine));
  // Where each placed model runs, and why there.
  info.push(...models.flatMap((m) => (m.placement ? [`placement ${m.name}: ${m.placement}`] : [])));
  const warn = [
    ...models.flatMap((m) => (m.memory_warning ? [`model ${m.name}: ${m.memory_warning}`] : [])),
    ...groups.flatMap((g) => (g.memory_warning ? [g.memory_warning] : [])),
  ];
  return { info, warn };
}
