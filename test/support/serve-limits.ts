// `hub serve` in its own process for the request-body tests (body-serve, body-serve-budget): a 413 must
// reach a client in another process, and the hub's memory is measured from /proc, apart from the
// client's. Also the tally of what many uploads got.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePortRange, getJson, serveHub, spawnHub, tempDir, type Spawned } from '../helpers.js';
import type { Outcome } from './uploader.js';

/** VmRSS and VmHWM (peak) of a process, in MiB; undefined where /proc is not there. */
export function memory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** Starts the peak over from the current RSS (Linux: clear_refs 5). */
export function resetPeak(pid: number): void {
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); } catch { /* the peak then counts from the start */ }
}

export const tally = (outcomes: Outcome[]) => {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status ? `${o.status} ${o.code ?? ''}`.trim() : `error ${o.error}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

/**
 * `hub serve` in a child process with these limits and models, on a port it picks itself: its origin is
 * the one it prints. (A port picked free beforehand could be taken before the hub bound it, and a
 * /health from whatever took it would pass for this hub's.)
 */
export async function serve(t: Parameters<typeof spawnHub>[0], limits: string, models: string): Promise<{ hub: Spawned; origin: string }> {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'hub.yaml'), `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${dir}\nlog: { level: warn }\nports: { start: ${await freePortRange(4)} }\nlimits: ${limits}\nmodels:\n${models}`);
  // serveHub stops it as an operator would (SIGTERM), so that it stops its backends.
  const hub = await serveHub(t, join(dir, 'hub.yaml'), { timeoutMs: 15_000 });
  return { hub, origin: hub.origin };
}

export const chat = (origin: string, model: string, content = '') =>
  getJson(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, max_tokens: 1, messages: [{ role: 'user', content }] }) });
