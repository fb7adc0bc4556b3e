// How long a model usually takes to start, from the hub's own log: each process transition is a
// JSON record in <log.dir>/hub.log ({model, axis, from, to, at}), so the time from `→ starting` to
// `starting → running` of earlier starts is there. `hub start` shows it next to the elapsed time.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** The end of hub.log read for history: enough for many starts, bounded for a big log. */
const TAIL_BYTES = 1 << 20;

interface TransitionRecord { model?: unknown; axis?: unknown; from?: unknown; to?: unknown; at?: unknown }

/** The median start time (ms) of the last few starts of each model found in `hubLog`; empty when there is no log. */
export function usualStartTimes(hubLog: string, samples = 5): Map<string, number> {
  const durations = new Map<string, number[]>();
  const began = new Map<string, number>();
  for (const line of tail(hubLog).split('\n')) {
    if (!line.includes('"axis":"process"')) continue;
    let r: TransitionRecord;
    try { r = JSON.parse(line) as TransitionRecord; } catch { continue; }
    if (typeof r.model !== 'string' || typeof r.at !== 'string' || r.axis !== 'process') continue;
    const at = Date.parse(r.at);
    if (r.to === 'starting') began.set(r.model, at);
    else if (r.from === 'starting' && r.to === 'running' && began.has(r.model)) {
      const list = durations.get(r.model) ?? [];
      list.push(at - began.get(r.model)!);
      durations.set(r.model, list.slice(-samples));
      began.delete(r.model);
    } else began.delete(r.model);
  }
  return new Map([...durations].map(([model, list]) => [model, [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]]));
}

function tail(path: string): string {
  let fd: number | undefined;
  try {
    const size = statSync(path).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    fd = openSync(path, 'r');
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } catch {
    return ''; // no log yet: no history
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
