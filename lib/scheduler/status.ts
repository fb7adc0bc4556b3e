// The JSON shape of a model's state, shared by /hub/api/status, /v1/models and the CLI.
import type { HubConfig } from '../config/types.js';
import { maskCache, modelSecrets } from '../secrets.js';
import type { ModelRuntime } from './model.js';

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
  memory_bytes: number;
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
}

const maskFor = maskCache();

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** `queuedForSlot`: requests waiting for a max_concurrency slot (the rest of `queued` wait for a start or load). */
export function modelStatus(m: ModelRuntime, queuedForSlot: number, now: number): ModelStatus {
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
    memory_bytes: c.memory,
    rss_bytes: m.residentBytes ?? null,
    in_flight: m.inflight,
    queued: m.waiting + queuedForSlot,
    requests: m.served,
    last_used: iso(m.lastUsedAt),
    idle_deadline: iso(m.idleDeadline),
    pinned: m.config.pinned,
    admitting: !m.admissionClosed,
    started_at: iso(m.startedAt),
    ready_at: iso(m.readyAt),
    last_exit_code: m.lastError?.exitCode ?? null,
    last_error: m.lastError ? mask(m.lastError.message) : null,
    retry_at: m.process === 'failed' && m.retryAt > now ? iso(m.retryAt) : null,
    restart_pending: m.pendingConfig !== undefined,
    removed: m.retired,
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
}

/** Usage per group (models holding memory), plus the hub-wide budget as the group "*". */
export function groupStatus(config: HubConfig, models: ModelRuntime[]): GroupStatus[] {
  const usage = (members: ModelRuntime[]) => {
    const holding = members.filter((m) => m.counted);
    return { loaded: holding.length, memory_bytes: holding.reduce((n, m) => n + m.config.memory, 0) };
  };
  const finite = (n: number) => (Number.isFinite(n) ? n : null);
  const groups = Object.values(config.groups).map((g) => {
    const members = models.filter((m) => m.config.group === g.name);
    return { name: g.name, on_full: g.onFull, ...usage(members), max_loaded: finite(g.maxLoaded), max_memory_bytes: finite(g.maxMemory), models: members.map((m) => m.name) };
  });
  return [...groups, { name: '*', on_full: 'evict', ...usage(models), max_loaded: null, max_memory_bytes: finite(config.maxMemory), models: models.map((m) => m.name) }];
}
