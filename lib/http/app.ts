// The hub's HTTP server: a Koa app whose middleware each do one job — request id and access log,
// errors as the OpenAI envelope — then the routes; and, beside it, the gateway's own path for
// POST /v1/…, which takes the same steps without the chain. Where a request goes: openai-routes.ts.
import { createServer, type RequestListener, type Server } from 'node:http';
import Koa from 'koa';
import type { Limits } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Controller } from '../scheduler/controller.js';
import { keyCheck, requireKey, type Scope } from './auth.js';
import { checkFetchSite, checkHost, checkOrigin, fetchSiteCheck, hostCheck, originCheck, textPlainCheck } from './browser.js';
import { answerClientError } from './client-error.js';
import { controlRoutes, type HubActions } from './control-routes.js';
import { dashboard } from './dashboard/index.js';
import { limitConnections, TIMEOUT_CHECK_MS } from './connections.js';
import { continueOrRefuse } from './expect-continue.js';
import { trustProxies, trustProxy } from './forwarded.js';
import type { Meter } from './meter.js';
import { HubMetrics, metricsRoutes } from './metrics.js';
import { registerMemoryMetrics } from './memory-metrics.js';
import { createForwarder, openaiRoutes, ROUTED_BY_BODY } from './openai-routes.js';
import { playgroundRoutes } from './playground-routes.js';
import { ModelStats } from './model-stats.js';
import { RequestLog } from './request-log.js';
import { requestLogRoutes } from './request-log-routes.js';
import { nothingHere, RequestRecorder, send } from './request-record.js';
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

export function createApp(controller: Controller, log: Logger, actions: HubActions): HubHttp {
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

  const recorder = new RequestRecorder(controller, log, metrics, requests);
  // Request id, and one log line per request once its response is over (streams included).
  app.use(async (ctx, next) => {
    const opened = recorder.open(ctx);
    try {
      await next();
    } finally {
      recorder.close(ctx, opened);
    }
  });

  // Every error the hub itself makes leaves as the OpenAI envelope (Anthropic's on /v1/messages*).
  app.use(async (ctx, next) => {
    const path = ctx.path; // before a proxy rewrite
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined && ctx.respond !== false) throw nothingHere(ctx);
    } catch (err) {
      recorder.fail(ctx, path, err);
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
  const checks = (ctx: Koa.ParameterizedContext<HubState>): 'answered' | undefined => {
    host(ctx);
    if (origin(ctx) === 'answered') return 'answered'; // a CORS preflight
    fetchSite(ctx);
    key(ctx);
    textPlainCheck(ctx);
    upstream(ctx);
    return undefined;
  };
  const modelRoutes = openai.routes() as unknown as Koa.Middleware<HubState>;
  app.use((ctx, next) => {
    if (!isModelTraffic(ctx.path)) return next();
    if (checks(ctx) === 'answered') return;
    // (A POST under /v1 comes here only with an absolute-form target, POST http://host/v1/…; the
    // others are served by modelPost below.)
    if (ctx.method === 'POST' && ROUTED_BY_BODY.test(ctx.path)) return forwarder(ctx);
    return modelRoutes(ctx, next);
  });

  // POST /v1/… (nearly all the traffic a hub sees) does not even take Koa's middleware chain: the
  // same steps as the chain above (proxies, id and log line, checks, errors as the envelope) run in
  // one function, on a Koa context of its own, without a promise per layer and Koa's watch for the
  // response's end (see docs/architecture.md).
  const modelPost = async (ctx: Koa.ParameterizedContext<HubState>): Promise<void> => {
    trustProxy(ctx, config);
    const opened = recorder.open(ctx);
    try {
      checks(ctx); // a POST is never a preflight
      await forwarder(ctx);
      if (ctx.respond !== false && !ctx.res.headersSent) throw nothingHere(ctx);
    } catch (err) {
      recorder.fail(ctx, opened.path, err);
      send(ctx);
    } finally {
      recorder.close(ctx, opened);
    }
  };

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

  const chain = app.callback(); // after the last app.use: it composes what is there
  const handle: RequestListener = (req, res) => {
    if (req.method === 'POST' && isModelPost(req.url ?? '')) {
      // What Koa does with a throw it did not expect (a listener of the request's log line, say):
      // log it and end the response, rather than leave a rejection nobody handles.
      return void modelPost(app.createContext(req, res)).catch((err: unknown) => {
        log.error({ err }, 'unexpected error after a request');
        if (!res.writableEnded) res.destroy();
      });
    }
    return chain(req, res);
  };
  return { app, handle };
}

/** The hub's HTTP side: its Koa app, and the server's request listener (which also serves POST /v1/… itself). */
export interface HubHttp {
  app: Koa<HubState>;
  handle: RequestListener;
}

export function createHttpServer(listener: RequestListener, limits: () => Limits, log?: Logger): Server {
  const server = createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_MS });
  const handle = limitConnections(server, limits, listener);
  server.on('request', handle);
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  // An oversized upload is refused before it starts, outside the app: its request line is written here.
  server.on('checkContinue', continueOrRefuse(handle, () => limits().maxBodyBytes, (r) => log?.info({ ...r, ms: 0, bytes_in: 0 }, 'request')));
  return server;
}

/** POST /v1/{anything} (before any query): the requests served outside Koa's chain. */
function isModelPost(url: string): boolean {
  const query = url.indexOf('?');
  return ROUTED_BY_BODY.test(query < 0 ? url : url.slice(0, query));
}

/** /v1/…, /upstream/… and /rerank (any case: the router matches paths case-insensitively). */
export function isModelTraffic(path: string): boolean {
  const p = path.length > 10 ? path.slice(0, 10).toLowerCase() : path.toLowerCase();
  return p.startsWith('/v1/') || p.startsWith('/upstream/') || p === '/rerank';
}
