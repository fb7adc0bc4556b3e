// Durations and sizes as written in hub.yaml. Both accept a plain number too
// (seconds for durations, bytes for sizes), so YAML like `start_timeout: 30` works.

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1,
  KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
  KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40,
};

export const DURATION_PATTERN = DURATION.source;
export const SIZE_PATTERN = SIZE.source;

/** Milliseconds for a duration value, or undefined when it is not one. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return value >= 0 && Number.isFinite(value) ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value.trim());
  return m ? Number(m[1]) * DURATION_MS[m[2]] : undefined;
}

/** Idle steps also accept 0 and "never", both meaning "this step is off" (returned as 0). */
export function parseIdleDuration(value: unknown): number | undefined {
  if (value === 'never' || value === 0 || value === '0') return 0;
  return parseDuration(value);
}

/** Bytes for a size value, or undefined when it is not one. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return value >= 0 && Number.isFinite(value) ? Math.floor(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = SIZE.exec(value.trim());
  return m ? Math.floor(Number(m[1]) * SIZE_BYTES[m[2]]) : undefined;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`;
  return `${+(ms / 3_600_000).toFixed(1)}h`;
}
