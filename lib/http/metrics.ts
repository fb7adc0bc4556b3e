// GET /metrics (Prometheus text) and GET /hub/api/usage. Counters and histograms are fed by the
// controller's `request` and `transition` events; the per-model gauges are read from
// controller.status() at scrape time, so a scrape only reads state and never starts or wakes a model.
// Each hub has its own Registry (not prom-client's global one), so several hubs in one process do
// not collide.
import Router from '@koa/router';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Controller, LoadEvent, RequestSummary } from '../scheduler/controller.js';
import type { Transition } from '../scheduler/context.js';
import type { HubState } from './app.js';
import { backendMetrics } from './backend-metrics.js';
import { SeriesCounter, SeriesHistogram, type CounterSeries, type HistogramSeries } from './metric-series.js';
import type { ModelStats } from './model-stats.js';

const PREFIX = 'modelhub_';
/** Seconds: from a cached reply on loopback (5 ms) to a long generation (5 min). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Paths a request with a model can take, as route labels; anything else is `other`. */
const ROUTES = new Set([
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/responses',
  '/v1/messages',
  '/v1/messages/count_tokens',
  '/v1/audio/speech',
  '/v1/audio/transcriptions',
  '/v1/audio/translations',
  '/v1/images/generations',
  '/v1/images/edits',
  '/v1/rerank',
  '/v1/reranking',
  '/rerank',
]);

/** One model's and route's series (see HubMetrics.perRoute). */
interface RouteSeries {
  requests(status: number): CounterSeries;
  duration: HistogramSeries;
  ttfb: HistogramSeries;
  tokensIn: CounterSeries;
  tokensOut: CounterSeries;
}

/** The route label of a request path: bounded, with no model names in it. */
export function routeOf(path: string): string {
  if (ROUTES.has(path)) return path;
  if (path === '/upstream' || path.startsWith('/upstream/')) return '/upstream';
  return 'other';
}

/** Transition reasons, most specific first; "evicted for x: idle 40s, reload ~0.3s" and "yielded to x: …" are `evicted`. */
const REASONS = ['start failed', 'start timed out', 'request', 'operator', 'idle', 'evicted', 'crash', 'reload', 'shutdown', 'preload'] as const;

export function reasonOf(reason: string): string {
  const r = reason.trim().toLowerCase();
  if (r.startsWith('yielded to ')) return 'evicted';
  return REASONS.find((known) => r === known || r.startsWith(`${known} `) || r.startsWith(`${known}(`)) ?? 'other';
}

/**
 * Node's process metrics (CPU, memory, event-loop delay, GC) describe the process, not a hub: one
 * registry per process, made on first use, shared by every hub in it. collectDefaultMetrics starts
 * monitors that are never stopped, so making them per hub would leak one set per hub.
 */
let nodeRegister: Registry | undefined;
function processMetrics(): Registry {
  if (!nodeRegister) {
    nodeRegister = new Registry();
    collectDefaultMetrics({ register: nodeRegister, prefix: PREFIX });
  }
  return nodeRegister;
}

const PROCESS_STATES = ['stopped', 'starting', 'running', 'stopping', 'failed'];

export interface ModelUsage {
  model: string;
  requests: number;
  /** Responses with status >= 400. */
  errors: number;
  /** Starts and wake-ups of the model (one per start, however many requests waited for it). */
  cold_starts: number;
  cold_start_ms_total: number;
  /** Requests that waited for a start or wake-up. */
  cold_start_waits: number;
  /** Tokens the backends reported (requests whose answer carried no usage add nothing). */
  tokens_in: number;
  tokens_out: number;
}

export class HubMetrics {
  readonly register = new Registry();
  private readonly usage = new Map<string, Omit<ModelUsage, 'model'>>();
  private readonly children = new Map<string, RouteSeries>();
  readonly since: number;
  private readonly requests: SeriesCounter<'model' | 'route' | 'status'>;
  private readonly duration: SeriesHistogram<'model' | 'route'>;
  private readonly ttfb: SeriesHistogram<'model' | 'route'>;
  private readonly tokens: SeriesCounter<'model' | 'direction'>;
  private readonly crashes: Counter<'model'>;
  private readonly unroutedRequests: Counter<'route' | 'status'>;
  private readonly coldStarts: Counter<'model'>;
  private readonly coldStartSeconds: Histogram<'model'>;
  private readonly coldStartWaits: Counter<'model'>;
  private readonly transitions: Counter<'model' | 'axis' | 'to' | 'reason'>;
  private readonly onRequest = (r: RequestSummary) => this.request(r);
  private readonly onTransition = (t: Transition) => this.transition(t);
  private readonly onLoad = (l: LoadEvent) => this.load(l);

  constructor(private readonly controller: Controller) {
    this.since = controller.startedAt;
    const registers = [this.register];
    this.requests = new SeriesCounter({ name: `${PREFIX}requests_total`, help: 'Requests routed to a model, by route and response status.', labelNames: ['model', 'route', 'status'], registers });
    this.duration = new SeriesHistogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'Time from receiving a request to the end of its response (streams included), cold starts and queueing included.',
      labelNames: ['model', 'route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.ttfb = new SeriesHistogram({
      name: `${PREFIX}time_to_first_byte_seconds`,
      help: "Time from receiving a request to the backend's first body byte (the first token of a stream), cold starts and queueing included.",
      labelNames: ['model', 'route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.tokens = new SeriesCounter({
      name: `${PREFIX}tokens_total`,
      help: 'Tokens the backends reported in their answers: direction="in" (prompt/input) or "out" (completion/output).',
      labelNames: ['model', 'direction'],
      registers,
    });
    this.crashes = new Counter({ name: `${PREFIX}crashes_total`, help: 'Backend exits the hub did not ask for.', labelNames: ['model'], registers });
    this.unroutedRequests = new Counter({
      name: `${PREFIX}unrouted_requests_total`,
      help: 'Requests that reached no model (unknown or missing model, bad body, refused key), by route and status.',
      labelNames: ['route', 'status'],
      registers,
    });
    this.coldStarts = new Counter({ name: `${PREFIX}cold_starts_total`, help: 'Starts (spawn to ready) and wake-ups (memory loads) of a model: one per start, however many requests waited for it.', labelNames: ['model'], registers });
    this.coldStartWaits = new Counter({ name: `${PREFIX}cold_start_waits_total`, help: 'Requests that waited for their model to start or load.', labelNames: ['model'], registers });
    this.coldStartSeconds = new Histogram({
      name: `${PREFIX}cold_start_seconds`,
      help: 'How long a start (spawn to ready) or wake-up (memory load) took.',
      labelNames: ['model'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.transitions = new Counter({
      name: `${PREFIX}transitions_total`,
      help: 'Model state transitions, by axis (process or memory), target state and reason.',
      labelNames: ['model', 'axis', 'to', 'reason'],
      registers,
    });

    // Gauges read from the controller's status when scraped.
    const status = () => this.controller.status().models;
    new Gauge({
      name: `${PREFIX}model_in_flight`, help: 'Requests a model is serving now.', labelNames: ['model'], registers,
      collect() { this.reset(); for (const m of status()) this.set({ model: m.name }, m.in_flight); },
    });
    new Gauge({
      name: `${PREFIX}model_queued`, help: 'Requests waiting for a slot on a model.', labelNames: ['model'], registers,
      collect() { this.reset(); for (const m of status()) this.set({ model: m.name }, m.queued); },
    });
    new Gauge({
      name: `${PREFIX}model_up`, help: "1 for a model's current process state, 0 for the others.", labelNames: ['model', 'process'], registers,
      collect() {
        this.reset();
        for (const m of status()) {
          const states = PROCESS_STATES.includes(m.process) ? PROCESS_STATES : [...PROCESS_STATES, m.process];
          for (const p of states) this.set({ model: m.name, process: p }, p === m.process ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: `${PREFIX}model_memory_loaded`, help: "1 when a model's memory is loaded, else 0.", labelNames: ['model'], registers,
      collect() { this.reset(); for (const m of status()) this.set({ model: m.name }, m.memory === 'loaded' ? 1 : 0); },
    });
    new Gauge({
      name: `${PREFIX}model_declared_memory_bytes`, help: 'The memory a model declares in the config (models.<name>.memory).', labelNames: ['model'], registers,
      collect() { this.reset(); for (const m of status()) this.set({ model: m.name }, m.memory_bytes); },
    });
    new Gauge({
      name: `${PREFIX}model_resident_memory_bytes`,
      help: "Measured resident memory (RSS) of a model's backend process, for models whose process is up.",
      labelNames: ['model'],
      registers,
      collect() { this.reset(); for (const m of status()) if (m.rss_bytes !== null) this.set({ model: m.name }, m.rss_bytes); },
    });

    controller.on('request', this.onRequest);
    controller.on('transition', this.onTransition);
    controller.on('load', this.onLoad);
  }

  /** Stops listening to the controller. */
  close(): void {
    this.controller.off('request', this.onRequest);
    this.controller.off('transition', this.onTransition);
    this.controller.off('load', this.onLoad);
  }

  private request(r: RequestSummary): void {
    if (!r.model) return;
    const route = routeOf(r.path);
    const per = this.perRoute(r.model, route);
    per.requests(r.status).inc();
    per.duration.observe(r.ms / 1000);
    if (r.ttfb_ms !== undefined) per.ttfb.observe(r.ttfb_ms / 1000);
    const u = this.usage.get(r.model) ?? zeroUsage();
    u.requests++;
    if (r.tokens_in !== undefined) {
      per.tokensIn.inc(r.tokens_in);
      u.tokens_in += r.tokens_in;
    }
    if (r.tokens_out !== undefined) {
      per.tokensOut.inc(r.tokens_out);
      u.tokens_out += r.tokens_out;
    }
    if (r.status >= 400) u.errors++;
    if (r.cold_start_ms !== undefined) {
      this.coldStartWaits.inc({ model: r.model });
      u.cold_start_waits++;
    }
    this.usage.set(r.model, u);
  }

  /** The series of one model and route, made on its first request and kept (see metric-series.ts). */
  private perRoute(model: string, route: string): RouteSeries {
    const key = `${model}\0${route}`;
    let per = this.children.get(key);
    if (!per) {
      const statuses = new Map<number, CounterSeries>();
      per = {
        requests: (status: number) => statuses.get(status) ?? statuses.set(status, this.requests.series({ model, route, status: String(status) })).get(status)!,
        duration: this.duration.series({ model, route }),
        ttfb: this.ttfb.series({ model, route }),
        // Tokens are by model alone: every route of a model gets the same two series.
        tokensIn: this.tokens.series({ model, direction: 'in' }),
        tokensOut: this.tokens.series({ model, direction: 'out' }),
      };
      this.children.set(key, per);
    }
    return per;
  }

  /** A start or wake-up, counted once however many requests shared it. */
  private load(l: LoadEvent): void {
    this.coldStarts.inc({ model: l.model });
    this.coldStartSeconds.observe({ model: l.model }, l.ms / 1000);
    const u = this.usage.get(l.model) ?? zeroUsage();
    u.cold_starts++;
    u.cold_start_ms_total += l.ms;
    this.usage.set(l.model, u);
  }

  /** A request no model took: counted without a model label, so unknown names cannot grow the series. */
  unrouted(r: RequestSummary): void {
    // Model traffic only: a POST to the model API, or /upstream. Listing models reaches none by design.
    if (!/^\/(v1|upstream|rerank)(\/|$)/.test(r.path) || (r.method !== 'POST' && !r.path.startsWith('/upstream'))) return;
    this.unroutedRequests.inc({ route: routeOf(r.path), status: String(r.status) });
  }

  private transition(t: Transition): void {
    const reason = reasonOf(t.reason);
    this.transitions.inc({ model: t.model, axis: t.axis, to: t.to, reason });
    if (reason === 'crash' && t.axis === 'process') this.crashes.inc({ model: t.model });
  }

  /** The whole scrape: the hub's series, the process's, and (with metrics.backends) the backends'. */
  async text(): Promise<string> {
    const own = (await this.register.metrics()) + (await processMetrics().metrics());
    if (!this.controller.config.metrics.backends) return own;
    return own + (await backendMetrics(this.controller.status().models));
  }

  /** One model's counts since the hub started (zeros when unused). */
  usageFor(model: string): ModelUsage {
    return { model, ...(this.usage.get(model) ?? zeroUsage()) };
  }

  /** Per model since the hub started: every configured model (zeros when unused), then any others seen. */
  usageReport(): { since: string; models: ModelUsage[] } {
    const names = [...new Set([...this.controller.status().models.map((m) => m.name), ...this.usage.keys()])];
    return {
      since: new Date(this.since).toISOString(),
      models: names.map((model) => ({ model, ...(this.usage.get(model) ?? zeroUsage()) })),
    };
  }
}

const zeroUsage = (): Omit<ModelUsage, 'model'> => ({ requests: 0, errors: 0, cold_starts: 0, cold_start_ms_total: 0, cold_start_waits: 0, tokens_in: 0, tokens_out: 0 });

export function metricsRoutes(metrics: HubMetrics, stats?: ModelStats): Router<HubState> {
  const router = new Router<HubState>();
  router.get('/metrics', async (ctx) => {
    ctx.body = await metrics.text();
    ctx.set('content-type', metrics.register.contentType);
  });
  router.get('/hub/api/usage', (ctx) => {
    const report = metrics.usageReport();
    // Since the hub started, then the last 5 minutes and hour (model-stats.ts).
    ctx.body = stats ? { ...report, models: report.models.map((u) => ({ ...u, recent: stats.recent(u.model) })) } : report;
  });
  return router;
}
