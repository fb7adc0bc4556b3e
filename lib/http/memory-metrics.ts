// The memory monitor's series on /metrics: measured and estimated memory per model, the warnings as
// 0/1 gauges (alert on them), measured group totals, and each GPU's memory. Read at scrape time; a
// scrape waits for a fresh sample at most once a second, like a status read.
import { Gauge, type Registry } from 'prom-client';
import type { MemoryMonitor } from '../runtime/memory-monitor.js';

const PREFIX = 'modelhub_';

export function registerMemoryMetrics(registry: Registry, monitor: MemoryMonitor, modelNames: () => string[], groups: () => Array<{ name: string; maxMemory: number }>): void {
  // `groups` includes the whole hub as "*" with the hub's max_memory.
  const registers = [registry];
  new Gauge({
    name: `${PREFIX}model_measured_memory_bytes`,
    help: 'Peak memory of a model over its recent loads (kept across restarts): host RSS of its process tree (kind="rss") and GPU memory of its processes (kind="gpu").',
    labelNames: ['model', 'kind'],
    registers,
    async collect() {
      await monitor.sample();
      this.reset();
      for (const model of modelNames()) {
        const m = monitor.measured(model);
        if (!m) continue;
        this.set({ model, kind: 'rss' }, m.rss_bytes);
        if (m.gpu_bytes !== null) this.set({ model, kind: 'gpu' }, m.gpu_bytes);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}model_estimated_memory_bytes`,
    help: 'What a llama-cpp model is estimated to hold, from its GGUF header and command line (weights + KV cache + overhead).',
    labelNames: ['model'],
    registers,
    collect() {
      this.reset();
      for (const model of modelNames()) {
        const e = monitor.estimated(model);
        if (e && 'bytes' in e) this.set({ model }, e.bytes);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}model_memory_over_declared`,
    help: "1 when a model's measured memory exceeds its declared memory by more than 10% (models that declare memory).",
    labelNames: ['model'],
    registers,
    async collect() {
      await monitor.sample();
      this.reset();
      for (const model of modelNames()) if (monitor.declares(model)) this.set({ model }, monitor.warningOf(model) ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}group_measured_memory_bytes`,
    help: 'Measured memory of the models holding memory in a group now (group="*": the whole hub).',
    labelNames: ['group'],
    registers,
    async collect() {
      await monitor.sample();
      this.reset();
      for (const g of groups()) this.set({ group: g.name }, monitor.groupOf(g.name)?.measured ?? 0);
    },
  });
  new Gauge({
    name: `${PREFIX}group_memory_over_budget`,
    help: "1 when a group's measured memory exceeds its max_memory (groups with a budget; group=\"*\": the hub's max_memory).",
    labelNames: ['group'],
    registers,
    async collect() {
      await monitor.sample();
      this.reset();
      for (const g of groups()) if (Number.isFinite(g.maxMemory)) this.set({ group: g.name }, monitor.groupOf(g.name)?.warning ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}gpu_memory_bytes`,
    help: 'Memory of each GPU nvidia-smi reports: kind="total" or "used".',
    labelNames: ['gpu', 'name', 'kind'],
    registers,
    async collect() {
      await monitor.sample();
      this.reset();
      for (const d of monitor.gpus()) {
        if (d.total_bytes !== null) this.set({ gpu: String(d.index), name: d.name, kind: 'total' }, d.total_bytes);
        if (d.used_bytes !== null) this.set({ gpu: String(d.index), name: d.name, kind: 'used' }, d.used_bytes);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}gpu_model_memory_bytes`,
    help: "GPU memory a model's processes hold on each GPU.",
    labelNames: ['gpu', 'model'],
    registers,
    async collect() {
      await monitor.sample();
      this.reset();
      for (const d of monitor.gpus()) for (const m of d.models) this.set({ gpu: String(d.index), model: m.model }, m.bytes);
    },
  });
}
