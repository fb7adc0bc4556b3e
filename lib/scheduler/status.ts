// The JSON shape of a model's state, shared by /hub/api/status, /v1/models and the CLI.
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
  in_flight: number;
  queued: number;
  requests: number;
  last_used: string | null;
  idle_deadline: string | null;
  started_at: string | null;
  ready_at: string | null;
  last_exit_code: number | null;
  last_error: string | null;
  retry_at: string | null;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function modelStatus(m: ModelRuntime): ModelStatus {
  const c = m.config;
  return {
    name: m.name,
    aliases: c.aliases,
    backend: c.backend,
    kind: m.remote ? 'remote' : 'managed',
    process: m.process,
    memory: m.memory,
    pid: m.pid ?? null,
    port: c.port ?? null,
    url: m.target,
    group: c.group ?? null,
    memory_bytes: c.memory,
    in_flight: m.inflight,
    queued: m.waiting,
    requests: m.served,
    last_used: iso(m.lastUsedAt),
    idle_deadline: iso(m.idleDeadline),
    started_at: iso(m.startedAt),
    ready_at: iso(m.readyAt),
    last_exit_code: m.lastError?.exitCode ?? null,
    last_error: m.lastError?.message ?? null,
    retry_at: m.process === 'failed' && m.retryAt > Date.now() ? iso(m.retryAt) : null,
  };
}
