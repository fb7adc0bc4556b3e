// The request log: the last `log.requests` finished model requests, in memory, for
// /hub/api/requests, the dashboard's /hub/requests and `hub requests`. It listens to the controller's
// `request` event (one summary per finished request, as the access log and the metrics see it) and
// keeps a ring of them: one small object per request, nothing else is done until someone reads.
//
// Bodies are never kept, except for models with `log.capture: true`: then the first CAPTURE_BYTES of
// the request as forwarded and of the answer, for that model's last CAPTURES_PER_MODEL requests.
import type { Controller, RequestSummary } from '../scheduler/controller.js';

/** Requests of one model whose bodies are kept (log.capture). */
export const CAPTURES_PER_MODEL = 50;
/** Longest path kept per request (characters). */
const MAX_PATH = 1024;

interface Kept {
  seq: number;
  /** When the request arrived, ms since the epoch. */
  at: number;
  summary: RequestSummary;
}

export interface Capture {
  request?: string;
  response?: string;
}

/** One request as the API, the page and the CLI show it (field order = CSV column order). */
export interface LoggedRequest {
  id: string;
  time: string;
  model: string | null;
  route: string;
  key: string | null;
  status: number;
  queue_ms: number | null;
  swap_ms: number | null;
  cold_start_ms: number | null;
  ttft_ms: number | null;
  ms: number;
  tokens_in: number | null;
  tokens_out: number | null;
  tokens_per_s: number | null;
  bytes_in: number | null;
  bytes_out: number | null;
  cut: string | null;
  captured: boolean;
}

export const COLUMNS = ['id', 'time', 'model', 'route', 'key', 'status', 'queue_ms', 'swap_ms', 'cold_start_ms', 'ttft_ms', 'ms', 'tokens_in', 'tokens_out', 'tokens_per_s', 'bytes_in', 'bytes_out', 'cut'] as const;

export interface RequestFilter {
  model?: string;
  /** An exact status, or a class: 5 for 5xx. */
  status?: { code?: number; class?: number };
  /** Only requests that arrived at or after this (ms since the epoch). */
  since?: number;
  limit?: number;
}

export class RequestLog {
  private ring: Array<Kept | undefined> = [];
  /** Where the next request goes. */
  private next = 0;
  private seq = 0;
  private last?: Kept;
  /** The summary `last` was made from (attachCapture matches on it). */
  private lastSource?: RequestSummary;
  private readonly captures = new Map<string, Array<{ seq: number } & Capture>>();

  constructor(private readonly controller: Controller) {
    controller.on('request', (summary: RequestSummary) => this.add(summary));
  }

  /** How many requests are kept: log.requests, read at each request so that a reload applies. */
  get capacity(): number {
    return this.controller.config.log.requests;
  }

  private add(summary: RequestSummary): void {
    const capacity = this.capacity;
    if (capacity !== this.ring.length) this.resize(capacity);
    if (capacity === 0) return;
    // A path can be as long as the request line allows (~16 KiB): a thousand of those would hold
    // megabytes, so a long one is kept cut (the access log has it whole).
    const kept: Kept = { seq: ++this.seq, at: Date.now() - summary.ms, summary: summary.path.length > MAX_PATH ? { ...summary, path: `${summary.path.slice(0, MAX_PATH)}…` } : summary };
    this.ring[this.next] = kept;
    this.next = (this.next + 1) % capacity;
    this.last = kept;
    this.lastSource = summary;
  }

  /**
   * The bodies of the request just logged (called right after the controller's `request` event for
   * it, which is synchronous); kept for the model's last CAPTURES_PER_MODEL requests.
   */
  attachCapture(summary: RequestSummary, capture: Capture): void {
    const kept = this.last;
    if (!kept || this.lastSource !== summary || !summary.model) return;
    let list = this.captures.get(summary.model);
    if (!list) this.captures.set(summary.model, (list = []));
    list.push({ seq: kept.seq, ...capture });
    if (list.length > CAPTURES_PER_MODEL) list.shift();
  }

  /** Newest first, those that pass `filter`. */
  list(filter: RequestFilter = {}): LoggedRequest[] {
    const out: LoggedRequest[] = [];
    const limit = filter.limit ?? Infinity;
    for (const kept of this.newestFirst()) {
      if (out.length >= limit) break;
      if (filter.since !== undefined && kept.at < filter.since) continue;
      if (!matches(kept.summary, filter)) continue;
      out.push(this.shown(kept));
    }
    return out;
  }

  /** The newest request with this id, with its bodies when they were captured. */
  find(id: string): (LoggedRequest & { capture?: Capture }) | undefined {
    for (const kept of this.newestFirst()) {
      if (kept.summary.id !== id) continue;
      const capture = this.captureOf(kept);
      return { ...this.shown(kept), ...(capture ? { capture: { request: capture.request, response: capture.response } } : {}) };
    }
    return undefined;
  }

  private *newestFirst(): Generator<Kept> {
    if (this.capacity !== this.ring.length) this.resize(this.capacity); // a reload changed log.requests
    const n = this.ring.length;
    for (let i = 1; i <= n; i++) {
      const kept = this.ring[(this.next - i + n) % n];
      if (!kept) return;
      yield kept;
    }
  }

  private captureOf(kept: Kept) {
    return kept.summary.model ? this.captures.get(kept.summary.model)?.find((c) => c.seq === kept.seq) : undefined;
  }

  private shown(kept: Kept): LoggedRequest {
    return loggedRequest(kept.summary, kept.at, this.captureOf(kept) !== undefined);
  }

  /** A new size keeps the newest requests that fit. */
  private resize(capacity: number): void {
    const newest: Kept[] = [];
    for (let i = 1; i <= this.ring.length && newest.length < capacity; i++) {
      const kept = this.ring[(this.next - i + this.ring.length) % this.ring.length];
      if (!kept) break;
      newest.push(kept);
    }
    newest.reverse();
    this.ring = new Array<Kept | undefined>(capacity);
    newest.forEach((k, i) => { this.ring[i] = k; });
    this.next = capacity === 0 ? 0 : newest.length % capacity;
    if (capacity === 0) this.captures.clear();
  }
}

function matches(s: RequestSummary, filter: RequestFilter): boolean {
  if (filter.model !== undefined && s.model !== filter.model) return false;
  const status = filter.status;
  if (status?.code !== undefined && s.status !== status.code) return false;
  if (status?.class !== undefined && Math.floor(s.status / 100) !== status.class) return false;
  return true;
}

/**
 * Output tokens per second of the time the backend had the request (its duration less the waits for
 * the model's start and for a turn): the generation rate with the prompt's time in it, which is what a
 * user of the model gets.
 */
export function tokensPerSecond(s: Pick<RequestSummary, 'tokens_out' | 'ms' | 'queue_ms' | 'cold_start_ms'>): number | null {
  if (!s.tokens_out) return null;
  const busyMs = s.ms - (s.queue_ms ?? 0) - (s.cold_start_ms ?? 0);
  return busyMs > 0 ? Math.round((s.tokens_out / busyMs) * 10_000) / 10 : null;
}

/** A request as the log shows it: its summary, when it began (ms since the epoch), whether bodies were kept. */
export function loggedRequest(s: RequestSummary, at: number, captured: boolean): LoggedRequest {
  return {
    id: s.id,
    time: new Date(at).toISOString(),
    model: s.model ?? null,
    route: `${s.method} ${s.path}`,
    key: s.key ?? null,
    status: s.status,
    queue_ms: s.queue_ms ?? null,
    swap_ms: s.swap_ms ?? null,
    cold_start_ms: s.cold_start_ms ?? null,
    ttft_ms: s.ttfb_ms ?? null,
    ms: s.ms,
    tokens_in: s.tokens_in ?? null,
    tokens_out: s.tokens_out ?? null,
    tokens_per_s: tokensPerSecond(s),
    bytes_in: s.bytes_in ?? null,
    bytes_out: s.bytes_out ?? null,
    cut: s.cut ?? null,
    captured,
  };
}
