// What the dashboard templates show, computed from controller.status() and the history: every
// label and number is formatted here, so the templates only place (and escape) strings.
import { formatBytes } from '../../config/units.js';
import { VERSION } from '../../paths.js';
import type { ModelUsage } from '../metrics.js';
import type { MinuteSeries, RecentStats } from '../model-stats.js';
import { statsView, type StatsView } from './stats-view.js';
import { howFar } from '../../scheduler/progress.js';
import type { Controller } from '../../scheduler/controller.js';
import type { History } from '../../scheduler/history.js';
import type { GroupStatus, ModelStatus } from '../../scheduler/status.js';
import type { GpuView } from '../../runtime/memory-monitor.js';
import { buildTimeline, type Timeline } from './timeline.js';

export interface ActionView {
  action: 'start' | 'stop' | 'load' | 'unload';
  label: string;
  url: string;
  /** The same action in the JSON control API, for the page's script. */
  api: string;
}

export interface ModelView {
  name: string;
  url: string;
  aliases: string[];
  backend: string;
  remote: boolean;
  /** Its group's name, '' when in none. */
  group: string;
  /** What it holds now: measured resident memory where known, else the declared memory while loaded, else 0 (the table sorts by it). */
  memoryBytes: number;
  memoryShort: string;
  /** Name, aliases, backend and group, lower case: what the search box looks in. */
  search: string;
  process: string;
  memory: string;
  /** Shapes that tell the states apart without colour (filled, hollow, half, cross). */
  processSymbol: string;
  memorySymbol: string;
  /** A state changing now: shown with the time it has taken so far. */
  transitional: boolean;
  /** When the current state began (ISO), for "starting · 3 s". */
  since: string | null;
  sinceText: string;
  /** The reason of the last state change, in words (always set: the card keeps its why line). */
  reason: string;
  /** The why line in full (reason and notes), for its tooltip when the line is cut. */
  whyTitle: string;
  pid: string;
  port: string;
  uptime: string;
  exitCode: string;
  memoryText: string;
  /** "declared 6GiB, measured 7.4GiB: the budget of group gpu0 may be overrun", or null. */
  memoryWarning: string | null;
  /** Models with `gpus:`: where it runs and why ("placed on GPU 1: 18.2GiB free; …"); null for others. */
  placement: string | null;
  inFlight: number;
  queued: number;
  requests: number;
  /** Errors, tokens and cold starts since the hub started, in a line. */
  servedText: string;
  /** Throughput and latency over the last 5 minutes and hour, with the last hour's sparkline. */
  stats: StatsView;
  lastUsed: string;
  lastUsedAt: string | null;
  idle: { label: string; at: string; text: string } | null;
  lastError: string | null;
  retryAt: string | null;
  /** "retry allowed in 3 s" during a restart backoff (the page's script ticks it). */
  retryText: string;
  notes: string[];
  actions: ActionView[];
  timeline: Timeline;
  /** A start or wake-up under way: how far (0–1, or null) and in words. */
  load: { fraction: number | null; text: string } | null;
}

export interface BarView {
  label: string;
  text: string;
  /** 0–100, or null when there is no limit to measure against. */
  percent: number | null;
  measuredPercent: number | null;
  full: boolean;
}

export interface GroupView {
  name: string;
  title: string;
  policy: string;
  bars: BarView[];
  /** Under contention: who waits and since when, who loads next and why not yet (empty otherwise). */
  queue: string[];
  /** Its measured total exceeds its max_memory. */
  warning: string | null;
}

export interface SummaryView {
  version: string;
  baseUrl: string;
  startedAt: string;
  uptime: string;
  counts: Array<{ label: string; value: number }>;
  groups: GroupView[];
  shuttingDown: boolean;
}

const SYMBOL: Record<string, string> = {
  running: '●',
  stopped: '○',
  starting: '◐',
  stopping: '◑',
  failed: '✕',
  loaded: '■',
  unloaded: '□',
  loading: '◧',
  unloading: '◨',
};

const TRANSITIONAL = new Set(['starting', 'stopping', 'loading', 'unloading']);

/** "3 s", "4 min 12 s", "2 h 5 min": short, and the same shape the page's script ticks. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

export const modelUrl = (name: string) => `/hub/models/${encodeURIComponent(name)}`;

/** What a model served since the hub started (the same counts as /hub/api/usage), and lately. */
export type UsageOf = (model: string) => (ModelUsage & { recent?: RecentStats; series?: MinuteSeries }) | undefined;

export function modelView(s: ModelStatus, controller: Controller, history: History, now: number, usageOf: UsageOf = () => undefined): ModelView {
  const m = controller.holders().find((x) => x.name === s.name && x.retired === s.removed);
  const processChange = history.lastChange(s.name, 'process');
  const memoryChange = history.lastChange(s.name, 'memory');
  // The current state began with whichever axis moved last.
  const change = memoryChange && (!processChange || memoryChange.at > processChange.at) ? memoryChange : processChange;
  const since = change?.at ?? null;
  const transitional = TRANSITIONAL.has(s.process) || TRANSITIONAL.has(s.memory);
  const rss = s.rss_bytes ?? undefined; // measured by the driver, where the platform tells
  const idleMs = s.idle_deadline ? Date.parse(s.idle_deadline) - now : undefined;
  const unloadsNext = s.memory === 'loaded' && (m?.config.idle.unloadAfterMs ?? 0) > 0 && m?.hasMemoryControl;
  const notes: string[] = [];
  if (s.pinned) notes.push('pinned');
  if (s.restart_pending) notes.push('restarts with new settings once idle');
  if (s.removed) notes.push('removed from the config; stops once its requests finish');
  if (!s.admitting && !s.removed) notes.push('not admitting new requests right now');
  const reason = change?.reason ?? 'no change since the hub started';
  const usage = usageOf(s.name);
  return {
    name: s.name,
    url: modelUrl(s.name),
    load: s.progress && { fraction: s.progress.fraction, text: `${s.progress.stage}${howFar(s.progress)}` },
    aliases: s.aliases,
    backend: s.backend,
    remote: s.kind === 'remote',
    group: s.group ?? '',
    memoryBytes: rss ?? (s.memory === 'loaded' ? s.memory_bytes : 0),
    memoryShort: rss !== undefined ? `${formatBytes(rss)} measured` : s.memory === 'loaded' && s.memory_bytes ? `${formatBytes(s.memory_bytes)} declared` : '—',
    search: [s.name, ...s.aliases, s.backend, s.group ?? ''].join(' ').toLowerCase(),
    process: s.process,
    memory: s.process === 'stopped' || s.process === 'failed' ? 'unloaded' : s.memory,
    processSymbol: SYMBOL[s.process] ?? '?',
    memorySymbol: SYMBOL[s.process === 'stopped' || s.process === 'failed' ? 'unloaded' : s.memory] ?? '?',
    transitional,
    since,
    sinceText: since ? ago(now - Date.parse(since)) : '',
    reason,
    whyTitle: [reason, ...notes].join(' · '),
    pid: s.pid === null ? '—' : String(s.pid),
    port: s.kind === 'remote' ? 'remote' : s.port === null ? '—' : String(s.port),
    uptime: s.process === 'running' && s.started_at ? ago(now - Date.parse(s.started_at)) : '—',
    exitCode: s.last_exit_code === null ? '—' : String(s.last_exit_code),
    memoryText: memoryText(s, rss),
    memoryWarning: s.memory_warning ?? null,
    placement: s.gpus === null ? null : (s.placement ?? 'not placed (placed on a GPU when it starts)'),
    inFlight: s.in_flight,
    queued: s.queued,
    requests: s.requests,
    servedText: servedText(usage),
    stats: statsView(usage?.recent, usage?.series),
    lastUsed: s.last_used ? `${ago(now - Date.parse(s.last_used))} ago` : 'never',
    lastUsedAt: s.last_used,
    idle:
      s.idle_deadline && idleMs !== undefined
        ? { label: unloadsNext ? 'unloads in' : 'stops in', at: s.idle_deadline, text: ago(idleMs) }
        : null,
    lastError: s.last_error,
    retryAt: s.retry_at,
    retryText: s.retry_at && Date.parse(s.retry_at) > now ? `retry allowed in ${ago(Date.parse(s.retry_at) - now)}` : 'retry allowed now',
    notes,
    actions: s.removed ? [] : actionsFor(s),
    timeline: buildTimeline(history.transitions(s.name), s, now, controller.startedAt),
  };
}

/** The buttons that make sense in this state (remote models are not run by the hub: none). */
function actionsFor(s: ModelStatus): ActionView[] {
  if (s.kind === 'remote') return [];
  const a = (action: ActionView['action'], label: string): ActionView => ({
    action,
    label,
    url: `${modelUrl(s.name)}/${action}`,
    api: `/hub/api/models/${encodeURIComponent(s.name)}/${action}`,
  });
  switch (s.process) {
    case 'stopped':
    case 'failed':
      return [a('start', 'Start')]; // a start loads too, as a request would
    case 'running':
      return s.memory === 'loaded' ? [a('unload', 'Unload'), a('stop', 'Stop')] : s.memory === 'unloaded' ? [a('load', 'Load'), a('stop', 'Stop')] : [a('stop', 'Stop')];
    default:
      return [a('stop', 'Stop')];
  }
}

function bar(label: string, used: number, max: number | null, text: string, measured?: number): BarView {
  const percent = max ? Math.min(100, (used / max) * 100) : null;
  const measuredPercent = max && measured !== undefined ? Math.min(100, (measured / max) * 100) : null;
  return { label, text, percent, measuredPercent, full: max !== null && used >= max };
}

/** "6GiB declared · 5.1GiB measured now (GPU 4.8GiB) · peak 7.4GiB · estimated 6.3GiB". */
function memoryText(s: ModelStatus, rss: number | undefined): string {
  const parts = [`${s.memory_bytes ? formatBytes(s.memory_bytes) : 'none'} declared`];
  if (rss !== undefined) parts.push(`${formatBytes(rss)} measured${s.gpu_bytes ? ` (GPU ${formatBytes(s.gpu_bytes)})` : ''}`);
  const m = s.memory_measured;
  if (m) parts.push(`peak ${formatBytes(m.bytes)}${m.gpu_bytes ? ' GPU' : ''} over ${m.loads} ${m.loads === 1 ? 'load' : 'loads'}`);
  const e = s.memory_estimate;
  if (e && 'bytes' in e) parts.push(`estimated ${formatBytes(e.bytes)} (${e.context} tokens)`);
  return parts.join(' · ');
}

function groupView(g: GroupStatus, models: ModelStatus[]): GroupView {
  const members = models.filter((m) => g.models.includes(m.name) && m.process === 'running' && m.memory !== 'unloaded');
  const loadedNow = members.filter((m) => m.memory === 'loaded').length;
  const rss = members.map((m) => m.rss_bytes ?? undefined);
  // The memory monitor's total (GPU memory where a model holds any) where it runs, else the members' RSS.
  const measured = g.measured_bytes !== undefined ? (members.length ? g.measured_bytes : undefined) : rss.length && rss.every((r) => r !== undefined) ? rss.reduce<number>((a, b) => a + b!, 0) : undefined;
  const of = (n: number | null, f: (n: number) => string) => (n === null ? ', no limit' : ` of ${f(n)}`);
  return {
    name: g.name,
    title: g.name === '*' ? 'whole hub' : `group ${g.name}`,
    policy: g.name === '*' ? '' : `when full: ${g.on_full}`,
    bars: [
      // The bar is what the budget counts (models holding or taking memory); its words split it the way
      // the hub's counts do, from the same snapshot, so "loaded" means one thing on the page.
      bar('loaded', g.loaded, g.max_loaded, `${loadedNow} loaded${g.loaded > loadedNow ? ` + ${g.loaded - loadedNow} loading or unloading` : ''}${of(g.max_loaded, String)}`),
      bar(
        'memory',
        g.memory_bytes,
        g.max_memory_bytes,
        `${formatBytes(g.memory_bytes)} declared${of(g.max_memory_bytes, formatBytes)}${measured === undefined ? '' : ` · ${formatBytes(measured)} measured`}`,
        measured,
      ),
    ],
    queue: [
      ...(g.waiting ?? []).map((w) => `${w.model}: ${w.count} waiting, oldest ${(w.oldest_wait_ms / 1000).toFixed(1)} s`),
      ...(g.next ? [`next: ${g.next}${g.why ? ` — ${g.why}` : ''}`] : []),
    ],
    warning: g.memory_warning ?? null,
  };
}

/** A GPU as a group-like box: its memory bar, and which models hold how much. */
function gpuView(gpu: GpuView): GroupView {
  const used = gpu.used_bytes ?? 0;
  const of = gpu.total_bytes === null ? '' : ` of ${formatBytes(gpu.total_bytes)}`;
  const held = gpu.models.reduce((n, m) => n + m.bytes, 0);
  return {
    name: `gpu${gpu.index}`,
    title: `GPU ${gpu.index}`,
    policy: gpu.name,
    bars: [bar('memory', used, gpu.total_bytes, gpu.used_bytes === null ? 'used memory unknown' : `${formatBytes(used)} used${of}`)],
    queue: [...gpu.models.map((m) => `${m.model}: ${formatBytes(m.bytes)}`), ...(used > held && gpu.used_bytes !== null ? [`other processes: ${formatBytes(used - held)}`] : [])],
    warning: null,
  };
}

export function summaryView(controller: Controller, models: ModelStatus[], groups: GroupStatus[], origin: string, now: number, gpus: GpuView[] = []): SummaryView {
  const count = (label: string, f: (m: ModelStatus) => boolean) => ({ label, value: models.filter(f).length });
  return {
    version: VERSION,
    baseUrl: `${origin}/v1`,
    startedAt: new Date(controller.startedAt).toISOString(),
    uptime: ago(now - controller.startedAt),
    counts: [
      count('models', () => true),
      count('running', (m) => m.process === 'running'),
      count('loaded', (m) => m.process === 'running' && m.memory === 'loaded'),
      count('failed', (m) => m.process === 'failed'),
      { label: 'in flight', value: models.reduce((n, m) => n + m.in_flight, 0) },
      { label: 'queued', value: models.reduce((n, m) => n + m.queued, 0) },
    ],
    // The whole-hub row only when it says something the groups do not.
    groups: [...groups.filter((g) => g.name !== '*' || g.max_memory_bytes !== null || groups.length === 1).map((g) => groupView(g, models)), ...gpus.map(gpuView)],
    shuttingDown: controller.shuttingDown,
  };
}

const count = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${Math.round(n / 1e3)}k` : String(n));

const msText = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

function servedText(u: ModelUsage | undefined): string {
  if (!u || (u.requests === 0 && u.cold_starts === 0)) return 'nothing yet';
  const parts = [`${u.errors} ${u.errors === 1 ? 'error' : 'errors'}`, `${count(u.tokens_in)} in / ${count(u.tokens_out)} out tokens`];
  if (u.cold_starts) parts.push(`${u.cold_starts} cold ${u.cold_starts === 1 ? 'start' : 'starts'} (avg ${msText(u.cold_start_ms_total / u.cold_starts)})`);
  return parts.join(' · ');
}

