// The JSON shape of a model's state, shared by /hub/api/status, /v1/models and the CLI.
import type { HubConfig } from '../config/types.js';
import type { EstimateResult } from '../runtime/gguf-estimate.js';
import type { Measured } from '../runtime/memory-history.js';
import { maskCache, modelSecrets } from '../secrets.js';
import type { ModelActor } from './actor.js';
import type { GroupOutlook } from './capacity.js';
import type { LoadHistory } from './load-history.js';
import type { LoadProgress } from './progress.js';

export interface ModelStatus {
  name: string;
  aliases: string[];
  backend: string;
  kind: 'managed' | 'remote';
  process: string;
  memory: string;
  pid: number | null;
  port: number | null;
  url: string;
  group: string | null;
  /** What the coordinators plan it with: declared, or for `memory: auto` measured or estimated (0 while unknown). */
  memory_bytes: number;
  memory_source: 'declared' | 'measured' | 'estimated' | 'unknown';
  /** Measured resident memory (RSS) of the backend process, where the platform tells; null otherwise. */
  rss_bytes: number | null;
  in_flight: number;
  queued: number;
  requests: number;
  last_used: string | null;
  idle_deadline: string | null;
  pinned: boolean;
  admitting: boolean;
  started_at: string | null;
  ready_at: string | null;
  last_exit_code: number | null;
  last_error: string | null;
  retry_at: string | null;
  /** A launch change from a reload waits for the model to be idle. */
  restart_pending: boolean;
  /** Removed from the config by a reload; shown until its process has stopped. */
  removed: boolean;
  /** When the oldest waiting request or action began to wait. */
  oldest_wait: string | null;
  /** Its usual start (spawn to ready) and wake-up times, measured and kept across restarts. */
  load_ms: { start_ms: number | null; wake_ms: number | null };
  /** A start or wake-up under way: its stage, fraction and time left; null otherwise. */
  progress: LoadProgress | null;
  /** Models with `gpus:`: the devices its process runs on ([] while it is not placed); null for other models. */
  gpus: number[] | null;
  /** Why it was placed there ("placed on GPU 1: 18.2GiB free; GPU 0 holds qwen-32b"). */
  placement: string | null;
  // Filled in by the hub's memory monitor (runtime/memory-monitor.ts) on /hub/api/status and the dashboard:
  /** GPU memory its process tree holds now; null without a GPU view or while its process is down. */
  gpu_bytes?: number | null;
  /** The peak of its recent loads (kept across restarts), where it was measured with its current command. */
  memory_measured?: Measured | null;
  /** llama-cpp models: what the GGUF header and the command line say it will hold, or why there is no estimate. */
  memory_estimate?: EstimateResult | null;
  /** Its measured memory exceeds the declared one by more than 10%. */
  memory_warning?: string | null;
}

const maskFor = maskCache();

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function modelStatus(m: ModelActor, now: number, loadTimes: LoadHistory): ModelStatus {
  const c = m.config;
  // An error may quote the backend's last log lines; a url may hold a password.
  const mask = maskFor(c, () => modelSecrets(c));
  return {
    name: m.name,
    aliases: c.aliases,
    backend: c.backend,
    kind: m.remote ? 'remote' : 'managed',
    process: m.process,
    memory: m.memory,
    pid: m.pid ?? null,
    port: c.port ?? null,
    url: mask(m.target),
    group: c.group ?? null,
    memory_bytes: m.plannedMemory.bytes,
    memory_source: m.plannedMemory.source,
    rss_bytes: m.residentBytes ?? null,
    in_flight: m.inflight,
    queued: m.queued,
    requests: m.served,
    last_used: iso(m.lastUsedAt),
    idle_deadline: iso(m.idleDeadline),
    pinned: m.config.pinned,
    admitting: m.admitting,
    started_at: iso(m.startedAt),
    ready_at: iso(m.readyAt),
    last_exit_code: m.lastError?.exitCode ?? null,
    last_error: m.lastError ? mask(m.lastError.message) : null,
    retry_at: m.process === 'failed' && m.retryAt > now ? iso(m.retryAt) : null,
    restart_pending: m.restartPending,
    removed: m.retired,
    oldest_wait: iso(m.state.waiting[0]?.at),
    load_ms: loadTimes.of(m.name),
    progress: m.progress ?? null,
    gpus: c.gpus ? (m.state.placement?.devices ?? []) : null,
    placement: m.state.placement?.reason ?? null,
  };
}

export interface GroupStatus {
  name: string;
  on_full: string;
  loaded: number;
  max_loaded: number | null;
  memory_bytes: number;
  max_memory_bytes: number | null;
  models: string[];
  /** Per model with someone waiting: how many wait and since when. */
  waiting: Array<{ model: string; count: number; oldest_wait_ms: number }>;
  /** The model that loads next, and why it has not yet. */
  next: string | null;
  why: string | null;
  /** Measured memory of the members holding memory now (filled in by the memory monitor). */
  measured_bytes?: number;
  /** The measured total exceeds max_memory. */
  memory_warning?: string | null;
}

/** Usage per group (models holding memory), plus the hub-wide budget as the group "*". */
export function groupStatus(config: HubConfig, models: ModelActor[], outlook: Record<string, GroupOutlook>, now: number): GroupStatus[] {
  const usage = (members: ModelActor[]) => {
    const holding = members.filter((m) => m.counted);
    return { loaded: holding.length, memory_bytes: holding.reduce((n, m) => n + m.plannedMemory.bytes, 0) };
  };
  const finite = (n: number) => (Number.isFinite(n) ? n : null);
  const waiting = (members: ModelActor[]) =>
    members.filter((m) => m.queued > 0).map((m) => ({ model: m.name, count: m.queued, oldest_wait_ms: Math.max(0, now - m.state.waiting[0].at) }));
  const ahead = (name: string) => ({ next: outlook[name]?.next ?? null, why: outlook[name]?.why ?? null });
  const groups = Object.values(config.groups).map((g) => {
    const members = models.filter((m) => m.config.group === g.name);
    return { name: g.name, on_full: g.onFull, ...usage(members), max_loaded: finite(g.maxLoaded), max_memory_bytes: finite(g.maxMemory), models: members.map((m) => m.name), waiting: waiting(members), ...ahead(g.name) };
  });
  return [...groups, { name: '*', on_full: 'evict', ...usage(models), max_loaded: null, max_memory_bytes: finite(config.maxMemory), models: models.map((m) => m.name), waiting: waiting(models), ...ahead('*') }];
}
