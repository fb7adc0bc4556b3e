// The memory monitor's figures, added to the controller's status for /hub/api/status, /metrics and
// the dashboard: measured (peak of recent loads), live GPU bytes, the GGUF estimate, the warnings, and
// the GPUs. A read waits for a fresh sample at most once a second (see MemoryMonitor.sample).
import type { GpuView, MemoryMonitor } from '../runtime/memory-monitor.js';
import type { GroupStatus, ModelStatus } from '../scheduler/status.js';

export interface MemoryStatus {
  models: ModelStatus[];
  groups: GroupStatus[];
  gpus: GpuView[];
}

/** Adds the memory fields to `status` (in place) and returns it with the GPUs. */
export async function withMemory(status: { models: ModelStatus[]; groups: GroupStatus[] }, monitor: MemoryMonitor | undefined): Promise<MemoryStatus> {
  if (!monitor) return { ...status, gpus: [] };
  await monitor.sample();
  for (const m of status.models) {
    const live = monitor.liveOf(m.name, m.pid);
    if (live) m.rss_bytes = live.rss; // the same sample as the GPU figure
    m.gpu_bytes = live?.gpu ?? null;
    m.memory_measured = monitor.measured(m.name) ?? null;
    m.memory_estimate = m.backend === 'llama-cpp' && m.kind === 'managed' ? (monitor.estimated(m.name) ?? null) : null;
    m.memory_warning = monitor.warningOf(m.name);
  }
  for (const g of status.groups) {
    const measure = monitor.groupOf(g.name);
    g.measured_bytes = measure?.measured ?? 0;
    g.memory_warning = measure?.warning ?? null;
  }
  return { ...status, gpus: monitor.gpus() };
}
