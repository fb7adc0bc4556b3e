// How long a model usually takes to start, from the hub's own log: each process transition is a
// JSON record in <log.dir>/hub.log ({model, axis, from, to, at}), so the time from `→ starting` to
// `starting → running` of earlier starts is there. `hub start` shows it next to the elapsed time.
// A rotation may just have moved those records into hub.log.1 (hub.log.1.gz when compressed), so the
// newest rotated file is read before the live one.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** The end of hub.log read for history: enough for many starts, bounded for a big log. */
const TAIL_BYTES = 1 << 20;

interface TransitionRecord { model?: unknown; axis?: unknown; from?: unknown; to?: unknown; at?: unknown }

/** The median start time (ms) of the last few starts of each model found in `hubLog`; empty when there is no log. */
export function usualStartTimes(hubLog: string, samples = 5): Map<string, number> {
  const durations = new Map<string, number[]>();
  const began = new Map<string, number>();
  const text = `${rotatedTail(hubLog)}\n${tail(hubLog)}`;
  for (const line of text.split('\n')) {
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

/** The end of the newest rotated file (`hub.log.1`, or `hub.log.1.gz` gunzipped); '' when there is none or it cannot be read. */
function rotatedTail(hubLog: string): string {
  if (existsSync(`${hubLog}.1`)) return tail(`${hubLog}.1`);
  try {
    const text = gunzipSync(readFileSync(`${hubLog}.1.gz`)).toString('utf8');
    return text.slice(-TAIL_BYTES);
  } catch {
    return ''; // none, or cut short (a rotation still compressing it): no history from it
  }
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
