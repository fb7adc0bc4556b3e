// GET /metrics (Prometheus text) and GET /hub/api/usage. Counters and histograms are fed by the
// controller's `request` and `transition` events; the per-model gauges are read from
// controller.status() at scrape time, so a scrape only reads state and never starts or wakes a model.
// Each hub has its own Registry (not prom-client's global one), so several hubs in one process do
// not collide.
import Router from '@koa/router';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Controller, RequestSummary } from '../scheduler/controller.js';
import type { Transition } from '../scheduler/model.js';
import type { HubState } from './app.js';

const PREFIX = 'modelhub_';

/** Paths a request with a model can take, as route labels; anything else is `other`. */
const ROUTES = new Set([
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/responses',
  '/v1/audio/speech',
  '/v1/audio/transcriptions',
  '/v1/audio/translations',
  '/v1/images/generations',
  '/v1/images/edits',
  '/v1/rerank',
  '/v1/reranking',
  '/rerank',
]);

/** The route label of a request path: bounded, with no model names in it. */
export function routeOf(path: string): string {
  if (ROUTES.has(path)) return path;
  if (path === '/upstream' || path.startsWith('/upstream/')) return '/upstream';
  return 'other';
}

/** Transition reasons, most specific first; "evicted for x (operator)" is `evicted`. */
const REASONS = ['start failed', 'start timed out', 'request', 'operator', 'idle', 'evicted', 'crash', 'reload', 'shutdown', 'preload'] as const;

export function reasonOf(reason: string): string {
  const r = reason.trim().toLowerCase();
  return REASONS.find((known) => r === known || r.startsWith(`${known} `) || r.startsWith(`${known}(`)) ?? 'other';
}

const PROCESS_STATES = ['stopped', 'starting', 'running', 'stopping', 'failed'];

export interface ModelUsage {
  model: string;
  requests: number;
  /** Responses with status >= 400. */
  errors: number;
  cold_starts: number;
  cold_start_ms_total: number;
  // Token accounting is not implemented yet: the hub does not read usage from backend responses,
  // so these stay null rather than a made-up number.
  tokens_in: null;
  tokens_out: null;
}

export class HubMetrics {
  readonly register = new Registry();
  private readonly usage = new Map<string, Omit<ModelUsage, 'model' | 'tokens_in' | 'tokens_out'>>();
  readonly since: number;
  private readonly requests: Counter<'model' | 'route' | 'status'>;
  private readonly duration: Histogram<'model' | 'route'>;
  private readonly coldStarts: Counter<'model'>;
  private readonly coldStartSeconds: Histogram<'model'>;
  private readonly transitions: Counter<'model' | 'axis' | 'to' | 'reason'>;
  private readonly onRequest = (r: RequestSummary) => this.request(r);
  private readonly onTransition = (t: Transition) => this.transition(t);

  constructor(private readonly controller: Controller) {
    this.since = controller.startedAt;
    const registers = [this.register];
    collectDefaultMetrics({ register: this.register, prefix: PREFIX });
    this.requests = new Counter({ name: `${PREFIX}requests_total`, help: 'Requests routed to a model, by route and response status.', labelNames: ['model', 'route', 'status'], registers });
    this.duration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'Time from receiving a request to the end of its response (streams included), cold starts and queueing included.',
      labelNames: ['model', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.coldStarts = new Counter({ name: `${PREFIX}cold_starts_total`, help: 'Requests that waited for their model to start or load.', labelNames: ['model'], registers });
    this.coldStartSeconds = new Histogram({
      name: `${PREFIX}cold_start_seconds`,
      help: 'How long a request waited for its model to start or load.',
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

    controller.on('request', this.onRequest);
    controller.on('transition', this.onTransition);
  }

  /** Stops listening to the controller. */
  close(): void {
    this.controller.off('request', this.onRequest);
    this.controller.off('transition', this.onTransition);
  }

  private request(r: RequestSummary): void {
    if (!r.model) return;
    const route = routeOf(r.path);
    this.requests.inc({ model: r.model, route, status: String(r.status) });
    this.duration.observe({ model: r.model, route }, r.ms / 1000);
    const u = this.usage.get(r.model) ?? { requests: 0, errors: 0, cold_starts: 0, cold_start_ms_total: 0 };
    u.requests++;
    if (r.status >= 400) u.errors++;
    if (r.cold_start_ms !== undefined) {
      this.coldStarts.inc({ model: r.model });
      this.coldStartSeconds.observe({ model: r.model }, r.cold_start_ms / 1000);
      u.cold_starts++;
      u.cold_start_ms_total += r.cold_start_ms;
    }
    this.usage.set(r.model, u);
  }

  private transition(t: Transition): void {
    this.transitions.inc({ model: t.model, axis: t.axis, to: t.to, reason: reasonOf(t.reason) });
  }

  /** Per model since the hub started: every configured model (zeros when unused), then any others seen. */
  usageReport(): { since: string; models: ModelUsage[] } {
    const names = [...new Set([...this.controller.status().models.map((m) => m.name), ...this.usage.keys()])];
    const zero = { requests: 0, errors: 0, cold_starts: 0, cold_start_ms_total: 0 };
    return {
      since: new Date(this.since).toISOString(),
      models: names.map((model) => ({ model, ...(this.usage.get(model) ?? zero), tokens_in: null, tokens_out: null })),
    };
  }
}

export function metricsRoutes(metrics: HubMetrics): Router<HubState> {
  const router = new Router<HubState>();
  router.get('/metrics', async (ctx) => {
    ctx.body = await metrics.register.metrics();
    ctx.set('content-type', metrics.register.contentType);
  });
  router.get('/hub/api/usage', (ctx) => {
    ctx.body = metrics.usageReport();
  });
  return router;
}
