// The hub's HTTP server: a Koa app whose middleware each do one job — request id and access log,
// errors as the OpenAI envelope — then the routes. Where a request goes: openai-routes.ts.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import Koa from 'koa';
import type { Limits } from '../config/types.js';
import { HubError } from '../errors.js';
import { errorEnvelope } from './anthropic-errors.js';
import type { Logger } from '../log.js';
import type { Controller, RequestSummary } from '../scheduler/controller.js';
import { keyCheck, requireKey, type Scope } from './auth.js';
import { checkFetchSite, checkHost, checkOrigin, fetchSiteCheck, hostCheck, originCheck, textPlainCheck } from './browser.js';
import { answerClientError } from './client-error.js';
import { controlRoutes, type HubActions } from './control-routes.js';
import { dashboard } from './dashboard/index.js';
import { limitConnections, TIMEOUT_CHECK_MS } from './connections.js';
import { continueOrRefuse } from './expect-continue.js';
import { trustProxies } from './forwarded.js';
import { Meter } from './meter.js';
import { HubMetrics, metricsRoutes } from './metrics.js';
import { registerMemoryMetrics } from './memory-metrics.js';
import { createForwarder, openaiRoutes, ROUTED_BY_BODY } from './openai-routes.js';
import { playgroundRoutes } from './playground-routes.js';
import { ModelStats } from './model-stats.js';
import { RequestLog } from './request-log.js';
import { requestLogRoutes } from './request-log-routes.js';
import { wasCutForStalling } from './stall.js';
import { upstreamCheck } from './upstream-guard.js';

export interface HubState {
  requestId: string;
  model?: string;
  coldStartMs?: number;
  queueMs?: number;
  swapMs?: number;
  /** Bytes, time to first byte and token usage of a proxied exchange. */
  meter: Meter;
  /** Whether the request's key or session would still be let in now (set by requireKey). */
  stillAllowed?: () => boolean;
  /** Where hub.yaml lists the key the request sent, or "session" (set by requireKey; never the key). */
  keyName?: string;
  /** For a key listed under models: the models it may use (set by requireKey; undefined = all). */
  scope?: Scope;
  /** The request body as forwarded, for a model with log.capture (the response's is in the meter). */
  captured?: string;
}

export function createApp(controller: Controller, log: Logger, actions: HubActions): Koa<HubState> {
  const app = new Koa<HubState>();
  app.silent = true;
  // Listens to the controller from now on, so that the preload's transitions are counted too.
  const metrics = new HubMetrics(controller);
  const requests = new RequestLog(controller);
  if (actions.memory) {
    const groups = () => [...Object.values(controller.config.groups), { name: '*', maxMemory: controller.config.maxMemory }];
    registerMemoryMetrics(metrics.register, actions.memory, () => Object.keys(controller.config.models), groups);
  }
  const stats = new ModelStats(controller);
  // First: what a trusted reverse proxy says about the client (https, its address) is read before anything asks.
  app.use(trustProxies(() => controller.config));

  // Request id, and one log line per request once its response is over (streams included).
  app.use(async (ctx, next) => {
    const started = performance.now();
    const id = ctx.get('x-request-id') || randomUUID();
    const path = ctx.path; // before the proxy rewrites req.url to the backend's path (/upstream/m/x -> /x)
    ctx.state.requestId = id;
    ctx.state.meter = new Meter(started);
    ctx.set('x-request-id', id);
    try {
      await next();
    } finally {
      const summary = summarize(ctx, id, path, started);
      // `hub watch` and open dashboards read the status over and over: at info, those reads would
      // bury the requests that matter. They stay in the log at debug; failed ones stay at info.
      if (isPolling(ctx.method, path, ctx.status)) log.debug(summary, 'request');
      else log.info(summary, 'request');
      if (summary.model) {
        controller.noteRequest(summary);
        if (ctx.state.captured !== undefined || ctx.state.meter.capturing) requests.attachCapture(summary, { request: ctx.state.captured, response: ctx.state.meter.capturedResponse() });
      } else metrics.unrouted(summary);
    }
  });

  // Every error the hub itself makes leaves as the OpenAI envelope (Anthropic's on /v1/messages*).
  app.use(async (ctx, next) => {
    const path = ctx.path; // before a proxy rewrite
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined && ctx.respond !== false) {
        throw new HubError('not_found', `there is nothing at ${ctx.method} ${ctx.path}; the OpenAI API is under /v1 (try GET /v1/models)`);
      }
    } catch (err) {
      const error = err instanceof HubError ? err : err instanceof URIError ? malformedPath(ctx.path) : internal(err, log, ctx.state.requestId);
      if (ctx.res.headersSent) return void ctx.res.destroy();
      ctx.respond = true;
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.body = errorEnvelope(path, error);
    }
  });

  const hubPages = dashboard(controller, actions, (model) => ({ ...metrics.usageFor(model), recent: stats.recent(model), series: stats.series(model) }));
  const config = () => controller.config;
  // One forwarder (and so one body budget) for /v1 and the dashboard's playground.
  const forwarder = createForwarder(controller);
  const openai = openaiRoutes(controller, forwarder);

  // Model traffic takes one lean path: the same checks as below (browsers, key, text/plain, the
  // upstream guard) run in one pass, then its routes, without the dashboard's and control API's layers.
  const host = hostCheck(config);
  const origin = originCheck(config);
  const fetchSite = fetchSiteCheck(config);
  const key = keyCheck(() => controller.config.auth, hubPages.hasSession);
  const upstream = upstreamCheck(controller);
  const modelRoutes = openai.routes() as unknown as Koa.Middleware<HubState>;
  app.use((ctx, next) => {
    if (!isModelTraffic(ctx.path)) return next();
    host(ctx);
    if (origin(ctx) === 'answered') return; // a CORS preflight
    fetchSite(ctx);
    key(ctx);
    textPlainCheck(ctx);
    upstream(ctx);
    // Nearly all model traffic: the one route a POST under /v1 can match, taken without the router
    // matching every route's pattern and composing a chain for it on each request.
    if (ctx.method === 'POST' && ROUTED_BY_BODY.test(ctx.path)) return forwarder(ctx);
    return modelRoutes(ctx, next);
  });

  // The dashboard's pages answer their errors (these below included) as HTML pages.
  app.use(hubPages.errors);

  // Browsers first (they need no key to be refused), then /health, which needs no key, then keys.
  app.use(checkHost(config));
  app.use(checkOrigin(config));
  app.use(checkFetchSite(config));
  app.use(async (ctx, next) => {
    if (ctx.path === '/health' && ctx.method === 'GET') {
      ctx.body = { status: controller.shuttingDown ? 'shutting_down' : 'ok' };
      return;
    }
    await next();
  });

  app.use(hubPages.session); // the dashboard's login, logout and static files
  app.use(requireKey(() => controller.config.auth, hubPages.hasSession));

  // Before the control API, whose POST /hub/api/models/{name}/{action} would call "chat" no action.
  app.use(playgroundRoutes(forwarder, () => controller.config.auth).routes());
  const control = controlRoutes(controller, actions);
  app.use(control.routes());
  app.use(metricsRoutes(metrics, stats).routes());
  app.use(hubPages.routes);
  app.use(requestLogRoutes(controller, requests).routes());
  return app;
}

/** The request log line (and `request` event) of one finished exchange: what it asked, what it cost. */
function summarize(ctx: Koa.ParameterizedContext<HubState>, id: string, path: string, started: number): RequestSummary {
  const { model, coldStartMs, queueMs, swapMs, meter, keyName } = ctx.state;
  const proxied = ctx.respond === false;
  const round = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms));
  return {
    id,
    method: ctx.method,
    path,
    model,
    status: proxied ? ctx.res.statusCode : ctx.status,
    ms: Math.round(performance.now() - started),
    ttfb_ms: proxied ? round(meter.ttfbMs) : undefined,
    cold_start_ms: round(coldStartMs),
    queue_ms: round(queueMs),
    swap_ms: round(swapMs),
    bytes_in: proxied ? meter.bytesIn : (ctx.request.length ?? 0),
    bytes_out: proxied ? meter.bytesOut : ctx.response.length,
    // A response that ended before all of it was sent: the client left, or stopped reading and was cut.
    cut: proxied && !ctx.res.writableFinished ? (wasCutForStalling(ctx.res) ? 'stalled' : 'closed early') : undefined,
    tokens_in: meter.usage.tokens_in,
    tokens_out: meter.usage.tokens_out,
    key: keyName,
  };
}

/** Routes decode their parameters; a %-escape that is not UTF-8 is the client's mistake, not ours. */
const malformedPath = (path: string) =>
  new HubError('bad_request', `the path ${path} has a malformed %-escape; percent-encode it as UTF-8 (e.g. encodeURIComponent)`);

function internal(err: unknown, log: Logger, requestId: string): HubError {
  log.error({ err, req_id: requestId }, 'unexpected error');
  return new HubError('internal_error', `internal hub error: ${(err as Error).message}; this is a bug, please report it with the hub log`);
}

export function createHttpServer(app: Koa<HubState>, limits: () => Limits, log?: Logger): Server {
  const server = createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_MS });
  const handle = limitConnections(server, limits, app.callback());
  server.on('request', handle);
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  // An oversized upload is refused before it starts, outside the app: its request line is written here.
  server.on('checkContinue', continueOrRefuse(handle, () => limits().maxBodyBytes, (r) => log?.info({ ...r, ms: 0, bytes_in: 0 }, 'request')));
  return server;
}

/** /v1/…, /upstream/… and /rerank (any case: the router matches paths case-insensitively). */
export function isModelTraffic(path: string): boolean {
  const p = path.length > 10 ? path.slice(0, 10).toLowerCase() : path.toLowerCase();
  return p.startsWith('/v1/') || p.startsWith('/upstream/') || p === '/rerank';
}

/** A successful read of the control API or of a dashboard fragment: what watchers repeat every few seconds. */
export function isPolling(method: string, path: string, status: number): boolean {
  return (method === 'GET' || method === 'HEAD') && status < 400 && (path.startsWith('/hub/api/') || path.startsWith('/hub/fragments/'));
}
