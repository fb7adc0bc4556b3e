// How long each model took to come up, remembered across hub restarts in `<state_dir>/load-times.json`:
// the last few start times (spawn to ready) and wake times (a memory load). The coordinator weighs
// an eviction by what bringing the model back is expected to cost; status shows the figures.
import { JsonFileSaver, readJsonFile } from '../runtime/json-file.js';
import { join } from 'node:path';

const KEEP = 8;
/** Assumed for a model never seen coming up: a typical small model's cold start. */
export const UNKNOWN_LOAD_MS = 1000;

interface Entry {
  start: number[];
  wake: number[];
}

export class LoadHistory {
  private entries = new Map<string, Entry>();
  private readonly saver: JsonFileSaver;

  constructor(stateDir?: string) {
    const file = stateDir && join(stateDir, 'load-times.json');
    // Written in the background: a start is recorded just as its first requests are let through.
    this.saver = new JsonFileSaver(file, () => Object.fromEntries(this.entries));
    // Absent or unreadable: start afresh (it is only a hint).
    const raw = (readJsonFile(file) ?? {}) as Record<string, Partial<Entry> | null>;
    for (const [name, e] of Object.entries(raw)) this.entries.set(name, { start: numbers(e?.start), wake: numbers(e?.wake) });
  }

  record(name: string, what: 'start' | 'wake', ms: number): void {
    const entry = this.entries.get(name) ?? { start: [], wake: [] };
    entry[what] = [...entry[what], Math.round(ms)].slice(-KEEP);
    this.entries.set(name, entry);
    this.saver.save();
  }

  /** Resolves once every recorded time is in the file (a hub that stops waits for it). */
  flush(): Promise<void> {
    return this.saver.flush();
  }

  /** What bringing the model back is expected to cost: its usual wake-up if it has one, else its usual start. */
  expected(name: string): number {
    const e = this.entries.get(name);
    return median(e?.wake) ?? median(e?.start) ?? UNKNOWN_LOAD_MS;
  }

  /** The usual start and wake times (ms), where known. */
  of(name: string): { start_ms: number | null; wake_ms: number | null } {
    const e = this.entries.get(name);
    return { start_ms: median(e?.start) ?? null, wake_ms: median(e?.wake) ?? null };
  }
}

const numbers = (v: unknown): number[] => (Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0).slice(-KEEP) : []);

function median(xs: number[] | undefined): number | undefined {
  if (!xs?.length) return undefined;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
