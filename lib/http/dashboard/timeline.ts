// A model's last hour as periods and marks, from the hub's recent-transitions memory: what the
// timeline SVG (views/partials/timeline.eta) draws. Positions are percentages of the window, so
// the server draws it once at any width and the browser never has to.
import type { Transition } from '../../scheduler/context.js';

export const WINDOW_MS = 60 * 60 * 1000;

/** What a period shows: the model's combined state on both axes. */
export type PeriodKind = 'loaded' | 'unloaded' | 'stopped' | 'busy' | 'failed';

export interface Period {
  kind: PeriodKind;
  x: number; // % of the window
  width: number;
  title: string;
  shape: PeriodShape;
}

export type MarkKind = 'cold-start' | 'load' | 'eviction' | 'crash' | 'start-failed';

export interface Mark {
  kind: MarkKind;
  x: number;
  title: string;
  path: string;
}

export interface Timeline {
  periods: Period[];
  marks: Mark[];
  counts: Record<MarkKind, number>;
  /**
   * Cold starts in the window: starts (process start to loaded) and wake-ups (loads into a running
   * process), one per start however many requests waited, as the served line and /hub/api/usage count them.
   */
  coldStarts: number;
  /** Their average duration, in ms, or null when there was none. */
  coldStartAvgMs: number | null;
  /** Evicted and brought back at least twice within the window: the model is swapping in and out. */
  thrashing: boolean;
  /** Start of the drawn window (the hub's start when that is less than an hour ago), ISO. */
  from: string;
  to: string;
}

interface State {
  process: string;
  memory: string;
}

export function kindOf(s: State): PeriodKind {
  if (s.process === 'stopped') return 'stopped';
  if (s.process === 'failed') return 'failed';
  if (s.process !== 'running') return 'busy';
  if (s.memory === 'loaded') return 'loaded';
  if (s.memory === 'unloaded') return 'unloaded';
  return 'busy';
}

const LABEL: Record<PeriodKind, string> = {
  loaded: 'loaded',
  unloaded: 'running, unloaded',
  stopped: 'stopped',
  busy: 'changing state',
  failed: 'failed',
};

/**
 * How a period is drawn: its band (y and height in the 30 px tall SVG) and its fill pattern (an id in
 * the layout's <defs>, or null for a solid fill). Every kind differs from the others by shape as well
 * as colour, so the timeline reads without telling colours apart.
 */
export interface PeriodShape {
  y: number;
  height: number;
  pattern: string | null;
}

export const PERIOD_SHAPE: Record<PeriodKind, PeriodShape> = {
  loaded: { y: 8, height: 14, pattern: null }, // solid, full height
  unloaded: { y: 8, height: 14, pattern: 'tl-hatch' }, // outlined, diagonal hatching
  busy: { y: 10, height: 10, pattern: 'tl-stripes' }, // narrower, vertical stripes
  failed: { y: 8, height: 14, pattern: 'tl-cross' }, // cross-hatched
  stopped: { y: 14, height: 2, pattern: null }, // a thin line
};

/** Mark shapes (SVG paths around x = 0): a stem from the bar, and a head that differs per kind. */
export const MARK_PATH: Record<MarkKind, string> = {
  'cold-start': 'M0,8V22M0,22L5,30L-5,30Z',
  load: 'M0,8V22M0,23L4,29L-4,29Z',
  eviction: 'M0,8V22M-5,0L5,0L0,7Z',
  crash: 'M0,8V22M-4,0L4,7M4,0L-4,7',
  'start-failed': 'M0,8V22M-4,0L4,7M4,0L-4,7',
};

/** The legend under which the page shows every period and mark kind (same shapes as the timelines). */
export const LEGEND = {
  periods: (['loaded', 'unloaded', 'busy', 'stopped', 'failed'] as const).map((kind) => ({ kind, label: LABEL[kind], shape: PERIOD_SHAPE[kind] })),
  marks: [
    { kind: 'cold-start', label: 'cold start: a start', path: MARK_PATH['cold-start'] },
    { kind: 'load', label: 'cold start: a wake-up (load into a running process)', path: MARK_PATH.load },
    { kind: 'eviction', label: 'eviction', path: MARK_PATH.eviction },
    { kind: 'crash', label: 'crash or failed start', path: MARK_PATH.crash },
  ],
};

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);
export const seconds = (ms: number) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`);

/**
 * Builds the timeline of the window ending at `now`. `transitions` are the model's remembered ones,
 * oldest first; `current` is its state now (which the last transition should agree with).
 */
export function buildTimeline(transitions: Transition[], current: State, now: number, hubStartedAt: number): Timeline {
  const start = Math.max(now - WINDOW_MS, hubStartedAt);
  const span = Math.max(1, now - start);
  const pct = (ms: number) => Math.min(100, Math.max(0, ((ms - start) / span) * 100));

  // The state at the window's start: the state after the last transition before it; else the state
  // before the first remembered one (the hub starts with everything stopped).
  const before = transitions.filter((t) => Date.parse(t.at) < start);
  const inside = transitions.filter((t) => Date.parse(t.at) >= start);
  const state: State = { process: 'stopped', memory: 'unloaded' };
  if (before.length > 0) for (const t of before) state[t.axis] = t.to;
  else if (inside.length > 0) {
    // If the ring dropped older entries, each axis's first `from` is what it was before.
    for (const axis of ['process', 'memory'] as const) {
      const first = inside.find((t) => t.axis === axis);
      if (first) state[axis] = first.from;
      else state[axis] = current[axis];
    }
  }

  const periods: Period[] = [];
  let periodStart = start;
  let kind = kindOf(state);
  const close = (at: number) => {
    if (at > periodStart) periods.push({ kind, x: pct(periodStart), width: pct(at) - pct(periodStart), title: `${LABEL[kind]} ${clock(periodStart)}–${clock(at)}`, shape: PERIOD_SHAPE[kind] });
    periodStart = at;
  };

  const marks: Mark[] = [];
  const counts: Record<MarkKind, number> = { 'cold-start': 0, load: 0, eviction: 0, crash: 0, 'start-failed': 0 };
  const seen = new Set<string>();
  const mark = (kind: MarkKind, at: number, title: string) => {
    const key = `${kind}@${at}`; // one eviction may move both axes at the same instant
    if (seen.has(key)) return;
    seen.add(key);
    counts[kind]++;
    marks.push({ kind, x: pct(at), title: `${title} at ${clock(at)}`, path: MARK_PATH[kind] });
  };

  let coldFrom: number | undefined; // when the current activation spawned the process
  let loadFrom: number | undefined; // when memory began loading in a running process
  let evicted = false;
  let returns = 0; // loads (cold or warm) that undid an eviction
  const coldStarts: number[] = [];
  for (const t of inside) {
    const at = Date.parse(t.at);
    state[t.axis] = t.to;
    const next = kindOf(state);
    if (next !== kind) {
      close(at);
      kind = next;
    }
    if (t.axis === 'process' && t.to === 'starting') coldFrom = at;
    if (t.axis === 'memory' && t.to === 'loading' && coldFrom === undefined) loadFrom = at;
    if (t.axis === 'memory' && t.to === 'loaded') {
      if (coldFrom !== undefined) {
        coldStarts.push(at - coldFrom);
        mark('cold-start', at, `cold start, ${seconds(at - coldFrom)} (${t.reason})`);
      } else if (loadFrom !== undefined) {
        coldStarts.push(at - loadFrom);
        mark('load', at, `wake-up, loaded in ${seconds(at - loadFrom)} (${t.reason})`);
      }
      if (evicted) returns++;
      evicted = false;
      coldFrom = loadFrom = undefined;
    }
    if ((t.reason.startsWith('evicted') || t.reason.startsWith('yielded to')) && (t.from === 'loaded' || t.from === 'running')) {
      mark('eviction', at, t.reason);
      evicted = true;
    }
    if (t.axis === 'process' && t.to === 'failed') {
      mark(t.from === 'running' ? 'crash' : 'start-failed', at, t.from === 'running' ? `crashed (${t.reason})` : `start failed (${t.reason})`);
      coldFrom = undefined;
    }
    if (t.axis === 'process' && (t.to === 'stopped' || t.to === 'stopping')) coldFrom = loadFrom = undefined;
  }
  close(now);

  return {
    periods,
    marks,
    counts,
    coldStarts: coldStarts.length,
    coldStartAvgMs: coldStarts.length ? coldStarts.reduce((a, b) => a + b, 0) / coldStarts.length : null,
    thrashing: returns >= 2,
    from: new Date(start).toISOString(),
    to: new Date(now).toISOString(),
  };
}
