// The backend adapter interface (SPEC §1): what the hub needs to know about one kind of model
// server. Adding a backend means one file that exports an adapter and one line in index.ts.
import { request, type Agent } from 'node:http';
import { request as requestTls } from 'node:https';

export interface Endpoint {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:20100 */
  base: string;
  /** Sent as Authorization: Bearer to remote servers that need it. */
  apiKey?: string;
  /**
   * Keep-alive connections to a local backend (the model's own, shared with its proxied requests):
   * the connection a readiness probe or a wake-up opened then carries the first request, saving a
   * TCP handshake on every cold start and swap. Without it each call opens and closes its own.
   */
  agent?: Agent;
}

/** What an adapter needs to know about the model it talks to. */
export interface BackendModel {
  /** The model's id on the backend (served_model, else the hub name). */
  id: string;
  healthPath?: string;
  /** vLLM's sleep level for an unload (memory_release); 1 when not set. */
  sleepLevel?: 1 | 2;
}

/**
 * Freeing and restoring a model's weights while its process (and port) stays up. Each call resolves
 * once the backend has done it and rejects with a message that says what went wrong.
 */
export interface MemoryControl {
  /**
   * The backend's own endpoints (paths, no query) that free or restore memory. The hub owns them:
   * /upstream refuses them unless the model sets upstream_control: true, since a call behind the
   * hub's back would leave its state wrong (status "loaded", every request failing).
   */
  readonly paths: readonly string[];
  unload(endpoint: Endpoint, model: BackendModel): Promise<void>;
  load(endpoint: Endpoint, model: BackendModel): Promise<void>;
  /** The backend's own answer, or undefined where it has no way to tell (then the call's success is trusted). */
  isLoaded(endpoint: Endpoint, model: BackendModel): Promise<boolean | undefined>;
}

/**
 * Whether the backend serves an API beyond Chat Completions (the Responses API, Anthropic's
 * Messages): `native` forward it as it is; `translate` never forward it, send it as Chat Completions;
 * `detect` forward it, and when the backend answers 404, 405 or 501 send it as Chat Completions
 * instead, remembered for the life of the backend process (servers gained these APIs version by version).
 */
export type ApiSupport = 'native' | 'translate' | 'detect';

/** Where a load is, as the backend's own log says: a stage, and how far through it where it tells. */
export interface LoadStage {
  stage: string;
  /** 0–1; absent when the line names a stage without a measure. */
  fraction?: number;
}

export interface BackendAdapter {
  readonly kind: string;
  /**
   * Reads one line the backend printed while it starts (lines end at \n or \r, as progress bars
   * redraw with \r): the load's stage and fraction where the line tells, else undefined.
   */
  progress?(line: string): LoadStage | undefined;
  /** Absent (or a key absent): detect. */
  readonly apis?: { readonly responses?: ApiSupport; readonly messages?: ApiSupport };
  /** One readiness probe: resolves true when the server can take requests now. */
  isReady(endpoint: Endpoint, model: BackendModel): Promise<boolean>;
  /**
   * A line the server prints only once it serves requests, where it has one that can be trusted:
   * seeing it is readiness, without the probe's round trip. Servers that announce "listening"
   * before their model is loaded must not set it (they are probed).
   */
  readonly readyLine?: RegExp;
  /** Absent for backends whose memory cannot be freed without stopping them (then "unload" means stop). */
  readonly memory?: MemoryControl;
}

export interface ProbeResult {
  status: number;
  body: string;
}

/** A probe or control answer is read up to this much; the rest is not kept (a health check is a few bytes). */
export const MAX_PROBE_BODY = 64 * 1024;

/**
 * A small GET/POST for probes and control calls. Never throws on HTTP status; rejects on network
 * errors and when the whole exchange takes longer than `timeoutMs` — a deadline, not an idle timeout,
 * so a server that trickles or streams forever cannot hold a probe (or the hub's memory) without end.
 * Only the first MAX_PROBE_BODY bytes of the body are kept; the answer is then cut.
 */
export function probe(endpoint: Endpoint, path: string, options: { method?: string; body?: unknown; timeoutMs?: number } = {}): Promise<ProbeResult> {
  const url = new URL(endpoint.base + path);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {};
  if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) });
  if (endpoint.apiKey) headers.authorization = `Bearer ${endpoint.apiKey}`;
  const send = url.protocol === 'https:' ? requestTls : request;
  const timeoutMs = options.timeoutMs ?? 2000;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: options.method ?? 'GET', headers, agent: endpoint.agent ?? false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      res.on('data', (c: Buffer) => {
        if (size >= MAX_PROBE_BODY) return;
        chunks.push(c.subarray(0, MAX_PROBE_BODY - size));
        size += Math.min(c.length, MAX_PROBE_BODY - size);
        if (size >= MAX_PROBE_BODY) {
          done(); // enough to judge by: the rest is not read
          req.destroy();
        }
      });
      res.on('end', done);
      res.on('error', reject);
    });
    req.on('error', (err) => reject(err.name === 'AbortError' || err.name === 'TimeoutError' ? new Error(`no answer from ${url.href} within ${timeoutMs}ms`) : err));
    req.end(payload);
  });
}

/** Readiness by the first of `paths` that exists: 200 = ready, 503 and friends = not yet, 404 = try the next path. */
export async function readyByPaths(endpoint: Endpoint, paths: readonly string[]): Promise<boolean> {
  for (const path of paths) {
    const res = await probe(endpoint, path).catch(() => undefined);
    if (!res) return false; // not listening yet
    if (res.status >= 200 && res.status < 300) return true;
    if (res.status !== 404 && res.status !== 405) return false;
  }
  return false;
}

/** POSTs a control call and fails with the backend's answer when it is not 2xx. */
export async function control(endpoint: Endpoint, path: string, body?: unknown, timeoutMs = 300_000): Promise<ProbeResult> {
  const res = await probe(endpoint, path, { method: 'POST', body, timeoutMs });
  if (res.status < 200 || res.status >= 300) throw new Error(`POST ${path} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return res;
}

export async function getJsonFrom<T>(endpoint: Endpoint, path: string): Promise<T> {
  const res = await probe(endpoint, path);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body) as T;
}

/**
 * A tqdm progress bar, as vLLM and SGLang draw them while they load: "Loading safetensors checkpoint
 * shards:  45% Completed | 5/11 [00:03<00:04, ...]" or "Capturing CUDA graph shapes: 40%|████ | 4/10".
 * The stage is the bar's label; the fraction comes from i/n where shown, else from the percentage.
 */
export function tqdmStage(line: string): LoadStage | undefined {
  const bar = /([A-Za-z][^:%|]{2,80}?):\s*(\d{1,3})%\s*(?:Completed\s*)?\|/.exec(line);
  if (!bar) return undefined;
  const [whole, label, percent] = bar;
  const count = /^[^|]*?\|?\s*(\d+)\/(\d+)/.exec(line.slice(bar.index + whole.length));
  const fraction = count && Number(count[2]) > 0 ? Number(count[1]) / Number(count[2]) : Number(percent) / 100;
  // A worker's prefix ("(VllmWorker rank=0 pid=12) ") is not part of the stage.
  // A worker's prefix ("(VllmWorker rank=0 pid=12) ") and a trailing detail ("(bs=4 avail_mem=…)") are not part of the stage.
  const stage = label.replace(/^.*\)\s+/, '').replace(/\s*\([^)]*\)$/, '').trim();
  return { stage, fraction: Math.min(1, Math.max(0, fraction)) };
}
