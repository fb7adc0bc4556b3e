// `metrics.backends: true`: each running backend's own /metrics (llama-server --metrics, vLLM, SGLang)
// in the hub's scrape, every series labelled model="<name>". Only models whose process is already
// running are asked (a GET /metrics never starts or wakes one); all are asked at once, each with a
// short timeout; one that fails, is slow or has no /metrics is left out without a word.
//
// The text is relabelled line by line rather than parsed into values: the hub only adds a label and
// merges families that two backends of the same kind both expose (Prometheus refuses a scrape with a
// metric's HELP/TYPE twice). No maintained npm package parses the text format for this.
import type { ModelStatus } from '../scheduler/status.js';

export const BACKEND_SCRAPE_TIMEOUT_MS = 1500;
/** A backend answer above this is not merged (a broken backend must not balloon the hub's scrape). */
const MAX_BACKEND_BYTES = 4 * 2 ** 20;

interface Family {
  meta: string[];
  samples: string[];
}

/** The backends' metrics as one Prometheus text block, or '' when there is none. */
export async function backendMetrics(models: ModelStatus[], timeoutMs = BACKEND_SCRAPE_TIMEOUT_MS): Promise<string> {
  // Only servers the hub runs: a remote `url:` may be a hosted API, and is not asked.
  const running = models.filter((m) => m.kind === 'managed' && m.process === 'running' && !m.removed);
  const texts = await Promise.all(running.map(async (m) => ({ model: m.name, text: await fetchMetrics(m.url, timeoutMs) })));
  const families = new Map<string, Family>();
  for (const { model, text } of texts) if (text) relabel(text, model, families);
  return [...families.values()].map((f) => [...f.meta, ...f.samples].join('\n')).join('\n') + (families.size ? '\n' : '');
}

async function fetchMetrics(base: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(new URL('/metrics', base), { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'text/plain' } });
    if (!res.ok || !/^text\/plain|^application\/openmetrics-text/.test(res.headers.get('content-type') ?? 'text/plain')) {
      await res.body?.cancel();
      return undefined;
    }
    if (Number(res.headers.get('content-length') ?? 0) > MAX_BACKEND_BYTES || !res.body) {
      await res.body?.cancel();
      return undefined;
    }
    // Read as it comes, and given up on as soon as it passes the bound (no length header needed).
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > MAX_BACKEND_BYTES) return undefined; // leaving the loop cancels the body
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch {
    return undefined;
  }
}

/** The hub's own families; a backend's of the same name (a modelhub behind a modelhub) are left out. */
const OWN_PREFIX = 'modelhub_';
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/** Adds `model="<model>"` to every sample of `text` and files it under its family in `families`. */
export function relabel(text: string, model: string, families: Map<string, Family>): void {
  const label = `model="${escapeLabel(model)}"`;
  let current: { name: string; family: Family } | undefined;
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { meta: [], samples: [] }));
    return f;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line) continue;
    if (line.startsWith('#')) {
      const meta = /^#\s+(HELP|TYPE|UNIT)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
      if (!meta) continue; // comments and OpenMetrics' "# EOF"
      const [, kind, name] = meta;
      if (name.startsWith(OWN_PREFIX)) {
        current = undefined; // another modelhub behind this one: its families would clash with ours
        continue;
      }
      current = { name, family: family(name) };
      // The first backend's HELP/TYPE speaks for the family; the others' are dropped.
      if (!current.family.meta.some((m) => m.startsWith(`# ${kind} `))) current.family.meta.push(line.replace(/^#\s+/, '# '));
      continue;
    }
    const name = METRIC_NAME.exec(line)?.[0];
    if (!name || name.startsWith(OWN_PREFIX)) continue;
    // A sample belongs to the family declared above it (histogram _bucket/_sum/_count included),
    // or is a family of its own when the backend declared none.
    const owner = current && belongsTo(name, current.name) ? current.family : family(name);
    owner.samples.push(withLabel(line, name, label));
  }
}

const SUFFIXES = ['', '_total', '_bucket', '_sum', '_count', '_created', '_info', '_gsum', '_gcount'];
const belongsTo = (sample: string, familyName: string) => SUFFIXES.some((s) => sample === familyName + s);

/** `name{a="1"} 2` → `name{model="m",a="1"} 2`; a `model` label the backend set itself becomes `exported_model`. */
function withLabel(line: string, name: string, label: string): string {
  const rest = line.slice(name.length);
  if (!rest.startsWith('{')) return `${name}{${label}}${rest}`;
  const labels = rest.slice(1).replace(/(^|,)\s*model\s*=/, '$1exported_model=');
  return `${name}{${label}${labels.startsWith('}') ? '' : ','}${labels}`;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
