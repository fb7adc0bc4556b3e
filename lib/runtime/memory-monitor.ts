// Measures what each model really holds and says when that disagrees with the config. For every model
// whose process is up: host RSS of its process tree (resident.ts) and the GPU memory its pids hold
// (gpu.ts). The peak of each load is kept in state_dir (memory-history.ts); a declared `memory` that
// a measurement exceeds by more than 10%, and a group whose measured total exceeds its max_memory,
// are warnings (logged once per load / per overrun, shown in status, /metrics and the dashboard).
// For llama.cpp models an estimate from the GGUF header is kept beside them (gguf-estimate.ts).
//
// It samples every few seconds, right after a model loads, and on status reads and scrapes (at
// most once a second however many come in). Nothing here runs per proxied request.
import type { HubConfig, ModelConfig } from '../config/types.js';
import { formatBytes } from '../config/units.js';
import { estimateGguf, type EstimateResult } from './gguf-estimate.js';
import { listedRooms, type GpuRoom } from '../scheduler/placement.js';
import { GpuProbe, gpuBytesOf, type GpuSnapshot } from './gpu.js';
import { footprint, MemoryHistory, type Measured } from './memory-history.js';
import { processTree, residentBytes } from './resident.js';

/** A measurement over the declared figure by more than this share is a warning. */
export const OVER_DECLARED = 0.1;
const SAMPLE_EVERY_MS = 5000;
const FRESH_MS = 1000;
/** How long after a load it is measured. */
const AFTER_LOAD_MS = 200;

/** What the monitor needs to know of a model (the scheduler's actors have it). */
export interface WatchedModel {
  readonly name: string;
  readonly pid: number | undefined;
  readonly process: string;
  readonly memory: string;
  readonly config: ModelConfig;
  /** Models with `gpus:`: the devices it was placed on (while its process lives). */
  readonly gpus?: readonly number[];
  /** The size it is planned with (its share on each of its GPUs is this over their number). */
  readonly plannedMemory: { bytes: number };
}

export interface LiveSample {
  pid: number;
  rss: number;
  /** GPU bytes of its process tree (null: no GPU view); per device uuid in `perGpu`. */
  gpu: number | null;
  perGpu: Map<string, number>;
  /** Counts against its group's budget now (process up, memory not unloaded). */
  holding: boolean;
}

export interface GroupMeasure {
  measured: number;
  warning: string | null;
}

export interface GpuView {
  index: number;
  uuid: string;
  name: string;
  total_bytes: number | null;
  used_bytes: number | null;
  models: Array<{ model: string; bytes: number }>;
}

export interface MemoryMonitorOptions {
  config(): HubConfig;
  models(): WatchedModel[];
  stateDir?: string;
  hubCommand?: readonly string[];
  log: { warn(message: string): void; info(message: string): void };
  /** The GPU view (default: nvidia-smi on PATH). */
  gpu?: GpuProbe;
  /** With `gpus: auto`, after each reading of the GPUs (models waiting for room look again). */
  gpusRead?(): void;
}

/** What `launch` a measurement belongs to: a changed command, env or folder is a new model. */
const launchOf = (c: ModelConfig) => JSON.stringify([c.argv ?? c.url, c.env, c.cwd ?? null]);

export class MemoryMonitor {
  readonly gpu: GpuProbe;
  readonly history: MemoryHistory;
  private live = new Map<string, LiveSample>(); // by model name
  private groups = new Map<string, GroupMeasure>();
  private gpuSnapshot?: GpuSnapshot;
  /** The GPUs' room as of the last reading that succeeded (gpus: auto). */
  private rooms: GpuRoom[] = [];
  private lastSample = 0;
  private sampling?: Promise<void>;
  /** Per model, how many times its memory became loaded: with the pid, what tells one load from the next. */
  private loads = new Map<string, number>();
  private warnedLoad = new Map<string, string>();
  private overBudget = new Set<string>();
  private estimates = new Map<string, { key: string; result?: EstimateResult }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: MemoryMonitorOptions) {
    this.history = new MemoryHistory(options.stateDir);
    this.gpu = options.gpu ?? new GpuProbe({ info: options.log.info, warn: options.log.warn });
    this.timer = setInterval(() => void this.sample(true), SAMPLE_EVERY_MS).unref();
    this.refreshEstimates();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The peak of the model's recent loads with its current launch settings (host RSS and GPU bytes), where measured. */
  measured(name: string): Measured | undefined {
    const c = this.options.config().models[name];
    return c ? this.history.measured(name, launchOf(c)) : undefined;
  }

  /** The GGUF estimate of a llama-cpp model, once read (undefined before, and for other backends). */
  estimated(name: string): EstimateResult | undefined {
    return this.estimates.get(name)?.result;
  }

  /**
   * What to plan a model with when its memory is `auto`: the peak of its recent loads where measured,
   * else its GGUF estimate, else undefined (never measured, nothing to estimate from).
   */
  sizeOf(name: string): { bytes: number; source: 'measured' | 'estimated' } | undefined {
    const m = this.measured(name);
    if (m) return { bytes: m.bytes, source: 'measured' };
    const e = this.estimated(name);
    return e && 'bytes' in e ? { bytes: e.bytes, source: 'estimated' } : undefined;
  }

  /** Starts reading the GGUF headers of llama-cpp models whose launch settings are new (at start and after a reload). */
  refreshEstimates(): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const c of Object.values(this.options.config().models)) {
      if (c.backend !== 'llama-cpp' || !c.argv) continue;
      const key = launchOf(c);
      if (this.estimates.get(c.name)?.key === key) continue;
      const entry: { key: string; result?: EstimateResult } = { key };
      this.estimates.set(c.name, entry);
      jobs.push(estimateGguf(c, this.options.hubCommand).then((r) => void (entry.result = r)));
    }
    return Promise.all(jobs).then(() => {});
  }

  /** A model's memory became loaded: a new load begins, measured at once. */
  noteTransition(t: { model: string; axis: string; to: string }): void {
    if (t.axis !== 'memory' || t.to !== 'loaded') return;
    this.loads.set(t.model, (this.loads.get(t.model) ?? 0) + 1);
    // Not at once: the requests that waited for this load are being forwarded right now, and reading
    // the process trees would sit in their way (the weights have settled a moment later anyway).
    setTimeout(() => void this.sample(true), AFTER_LOAD_MS).unref();
  }

  /**
   * Measures every model whose process is up (at most once a second unless `force`), records the
   * peaks of loaded ones, and raises the warnings.
   */
  sample(force = false): Promise<void> {
    if (this.sampling) return this.sampling;
    if (!force && Date.now() - this.lastSample < FRESH_MS) return Promise.resolve();
    this.sampling = this.measureAll().finally(() => {
      this.lastSample = Date.now();
      this.sampling = undefined;
    });
    return this.sampling;
  }

  private async measureAll(): Promise<void> {
    this.gpuSnapshot = await this.gpu.read();
    // Listed after the GPU reading: a model spawned meanwhile is then counted as the hub's, not as
    // another process's memory on its device.
    const models = this.options.models().filter((m) => m.pid !== undefined && m.process !== 'stopped' && m.process !== 'failed');
    const live = new Map<string, LiveSample>();
    for (const m of models) {
      const pid = m.pid!;
      const tree = processTree(pid);
      const rss = residentBytes(pid);
      if (rss === undefined) continue; // gone meanwhile
      const total = tree.slice(1).reduce((n, p) => n + (residentBytes(p) ?? 0), rss);
      const perGpu = this.gpuSnapshot ? gpuBytesOf(this.gpuSnapshot, tree) : new Map<string, number>();
      const gpu = this.gpuSnapshot ? [...perGpu.values()].reduce((a, b) => a + b, 0) : null;
      const holding = m.process === 'running' && m.memory !== 'unloaded';
      // A retired model and its successor share a name: the one holding memory wins.
      if (!live.get(m.name)?.holding || holding) live.set(m.name, { pid, rss: total, gpu, perGpu, holding });
      if (m.process === 'running' && m.memory === 'loaded') this.record(m, pid, total, gpu);
    }
    this.live = live;
    this.checkGroups();
    if (this.gpuSnapshot) this.rooms = this.roomsOf(this.gpuSnapshot, models);
    if (this.options.config().gpus?.auto) this.options.gpusRead?.();
  }

  private record(m: WatchedModel, pid: number, rss: number, gpu: number | null): void {
    // A new pid is a new load too (a restart whose transition was not seen, e.g. at hub start).
    const load = `${pid}:${this.loads.get(m.name) ?? 0}`;
    this.history.record(m.name, launchOf(m.config), load, { rss, gpu, at: Date.now() });
    const declared = m.config.memory;
    const peak = this.history.currentPeak(m.name);
    if (!declared || !peak || footprint(peak) <= declared * (1 + OVER_DECLARED) || this.warnedLoad.get(m.name) === load) return;
    this.warnedLoad.set(m.name, load);
    this.options.log.warn(`model ${m.name}: ${this.overDeclared(m.config, footprint(peak), peak.gpu ? 'GPU' : 'RSS')}; raise models.${m.name}.memory to what it uses`);
  }

  /** "declared 6GiB, measured 7.4GiB: the budget of group gpu0 may be overrun". */
  private overDeclared(c: ModelConfig, measured: number, kind?: string): string {
    const config = this.options.config();
    const where = c.group && Number.isFinite(config.groups[c.group]?.maxMemory) ? `the budget of group ${c.group}` : Number.isFinite(config.maxMemory) ? "the hub's max_memory" : 'a budget planned with it';
    return `declared ${formatBytes(c.memory)}, measured ${formatBytes(measured)}${kind ? ` (${kind})` : ''}: ${where} may be overrun`;
  }

  private checkGroups(): void {
    const config = this.options.config();
    const budgets: Array<[string, number, string[]]> = [
      ...Object.values(config.groups).map((g): [string, number, string[]] => [g.name, g.maxMemory, Object.values(config.models).filter((m) => m.group === g.name).map((m) => m.name)]),
      ['*', config.maxMemory, Object.keys(config.models)],
    ];
    const groups = new Map<string, GroupMeasure>();
    for (const [name, max, members] of budgets) {
      const holding = members.map((m) => this.live.get(m)).filter((s): s is LiveSample => !!s?.holding);
      const measured = holding.reduce((n, s) => n + footprint(s), 0);
      const over = Number.isFinite(max) && measured > max;
      const what = name === '*' ? 'the hub' : `group ${name}`;
      const warning = over ? `${what}: measured ${formatBytes(measured)} of its ${formatBytes(max)} max_memory: the budget is overrun` : null;
      groups.set(name, { measured, warning });
      if (over && !this.overBudget.has(name)) this.options.log.warn(`${warning}; the models' declared memory is too low, or the budget is`);
      if (over) this.overBudget.add(name);
      else this.overBudget.delete(name);
    }
    this.groups = groups;
  }

  /** The live figures of a model's process tree, from the last sample. */
  liveOf(name: string, pid: number | null): LiveSample | undefined {
    const s = this.live.get(name);
    return s && s.pid === pid ? s : undefined;
  }

  /** The warning a model's status carries: its recent peak over its declared memory by more than 10%. */
  warningOf(name: string): string | null {
    const c = this.options.config().models[name];
    const m = this.measured(name);
    if (!c || !c.memory || !m || m.bytes <= c.memory * (1 + OVER_DECLARED)) return null;
    return this.overDeclared(c, m.bytes);
  }

  /** Whether a model declares a memory figure a measurement is compared with. */
  declares(name: string): boolean {
    return (this.options.config().models[name]?.memory ?? 0) > 0;
  }

  groupOf(name: string): GroupMeasure | undefined {
    return this.groups.get(name);
  }

  /**
   * The devices models with `gpus:` are placed on: with `gpus: auto` each GPU of the last reading
   * that succeeded (a failed or slow one does not make the GPUs vanish), less what other programs
   * hold on it; else the devices hub.yaml lists.
   */
  gpuRooms(): GpuRoom[] {
    const gpus = this.options.config().gpus;
    return gpus?.auto ? this.rooms : listedRooms(gpus);
  }

  /**
   * Each device's room from a reading (gpus: auto). What other programs hold is what the device has
   * in use less what the hub's placed models hold there: where a model's own use cannot be told
   * (the driver does not say per process, or its workers are not its children), at least its
   * planned share once it is loaded, so that it is not counted twice. Models without `gpus:` are
   * not placed, so their memory counts as other programs'.
   */
  private roomsOf(snap: GpuSnapshot, models: readonly WatchedModel[]): GpuRoom[] {
    return snap.devices.flatMap((d) => {
      if (d.total === null) return []; // a device that does not tell its memory cannot be planned on
      let ours = 0;
      for (const m of models) {
        if (!m.gpus?.includes(d.index)) continue;
        const measured = this.live.get(m.name)?.perGpu.get(d.uuid) ?? 0;
        const loaded = m.process === 'running' && m.memory === 'loaded';
        ours += loaded ? Math.max(measured, m.plannedMemory.bytes / m.gpus.length) : measured;
      }
      return [{ id: d.index, memory: d.total, foreign: Math.max(0, (d.used ?? 0) - ours) }];
    });
  }

  /** Each GPU's memory and which models hold how much of it (empty without a GPU view). */
  gpus(): GpuView[] {
    const snap = this.gpuSnapshot;
    if (!snap) return [];
    return snap.devices.map((d) => ({
      index: d.index,
      uuid: d.uuid,
      name: d.name,
      total_bytes: d.total,
      used_bytes: d.used,
      models: [...this.live].flatMap(([model, s]) => (s.perGpu.get(d.uuid) ? [{ model, bytes: s.perGpu.get(d.uuid)! }] : [])),
    }));
  }
}
