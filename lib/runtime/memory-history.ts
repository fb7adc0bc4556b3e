// What each model was measured to hold, remembered across hub restarts in `<state_dir>/memory.json`:
// the peak of each of its last few loads (host RSS of its process tree and GPU memory of its pids).
// A model whose launch command changes starts afresh: a new model file or context is a new size.
import { readJsonFile, writeJsonFile } from './json-file.js';
import { join } from 'node:path';

/** Loads remembered per model. */
export const KEEP_LOADS = 5;

export interface MemoryPeak {
  /** Host RSS of the process tree, bytes. */
  rss: number;
  /** GPU memory its processes hold, bytes; null where no GPU view. */
  gpu: number | null;
  /** When this peak was seen (ms since the epoch). */
  at: number;
}

/** The figure a budget is compared with: the GPU memory where the model holds any, else its host RSS. */
export const footprint = (p: Pick<MemoryPeak, 'rss' | 'gpu'>): number => (p.gpu ? p.gpu : p.rss);

export interface Measured {
  rss_bytes: number;
  gpu_bytes: number | null;
  /** `footprint` of the largest load: what the model needs. */
  bytes: number;
  /** How many loads the figures come from. */
  loads: number;
  at: string;
}

interface Entry {
  launch: string;
  loads: MemoryPeak[];
}

/** A rise smaller than this within one load is kept in memory but not written (a file write per wobble is waste). */
const WRITE_STEP = 0.01;

export class MemoryHistory {
  private entries = new Map<string, Entry>();
  /** Per model, the load the last peak of `loads` belongs to (not kept: a restarted hub starts a new load). */
  private current = new Map<string, string>();
  private readonly file?: string;

  constructor(stateDir?: string) {
    this.file = stateDir && join(stateDir, 'memory.json');
    // Absent or unreadable: start afresh (measurements come back with the next loads).
    const raw = (readJsonFile(this.file) ?? {}) as Record<string, Partial<Entry> | null>;
    for (const [name, e] of Object.entries(raw)) {
      const loads = Array.isArray(e?.loads) ? e.loads.filter(validPeak).slice(-KEEP_LOADS) : [];
      if (typeof e?.launch === 'string' && loads.length) this.entries.set(name, { launch: e.launch, loads });
    }
  }

  /**
   * One measurement of `model` during the load `load` (any string that changes with each load). Its
   * peak for that load rises to it; a new load gets a new peak, and the oldest is dropped.
   */
  record(model: string, launch: string, load: string, sample: MemoryPeak): void {
    let entry = this.entries.get(model);
    if (!entry || entry.launch !== launch) {
      entry = { launch, loads: [] };
      this.entries.set(model, entry);
      this.current.delete(model);
    }
    let write = false;
    if (this.current.get(model) !== load || !entry.loads.length) {
      entry.loads = [...entry.loads, { ...sample }].slice(-KEEP_LOADS);
      this.current.set(model, load);
      write = true;
    } else {
      const peak = entry.loads[entry.loads.length - 1];
      const before = footprint(peak);
      if (sample.rss > peak.rss || (sample.gpu ?? 0) > (peak.gpu ?? 0)) {
        peak.rss = Math.max(peak.rss, sample.rss);
        peak.gpu = sample.gpu === null && peak.gpu === null ? null : Math.max(peak.gpu ?? 0, sample.gpu ?? 0);
        peak.at = sample.at;
        write = footprint(peak) > before * (1 + WRITE_STEP);
      }
    }
    if (write) this.save();
  }

  /** The peak of the recent loads, where the model was measured with its current launch command. */
  measured(model: string, launch?: string): Measured | undefined {
    const e = this.entries.get(model);
    if (!e?.loads.length || (launch !== undefined && e.launch !== launch)) return undefined;
    const gpus = e.loads.map((l) => l.gpu).filter((g): g is number => g !== null);
    return {
      rss_bytes: Math.max(...e.loads.map((l) => l.rss)),
      gpu_bytes: gpus.length ? Math.max(...gpus) : null,
      bytes: Math.max(...e.loads.map(footprint)),
      loads: e.loads.length,
      at: new Date(Math.max(...e.loads.map((l) => l.at))).toISOString(),
    };
  }

  /** The peak of the load going on now (the last one recorded), if this hub recorded one. */
  currentPeak(model: string): MemoryPeak | undefined {
    const e = this.entries.get(model);
    return this.current.has(model) ? e?.loads.at(-1) : undefined;
  }

  private save(): void {
    writeJsonFile(this.file, Object.fromEntries(this.entries)); // a read-only state dir costs only the memory across restarts
  }
}

const validPeak = (p: unknown): p is MemoryPeak => {
  const x = p as MemoryPeak;
  const n = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  return typeof p === 'object' && p !== null && n(x.rss) && (x.gpu === null || n(x.gpu)) && n(x.at);
};
