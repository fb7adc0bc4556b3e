// The hub's HTTP server: a Koa app whose middleware each do one job — request id and access log,
// errors as the OpenAI envelope — then the routes. Where a request goes: openai-routes.ts.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import Koa from 'koa';
import { HubError } from '../errors.js';
import { errorEnvelope } from './anthropic-errors.js';
import type { Logger } from '../log.js';
import type { Controller } from '../scheduler/controller.js';
import { requireKey } from './auth.js';
import { checkFetchSite, checkHost, checkOrigin, rejectTextPlain } from './browser.js';
import { answerClientError } from './client-error.js';
import { controlRoutes, type HubActions } from './control-routes.js';
import { continueOrRefuse } from './expect-continue.js';
import { HubMetrics, metricsRoutes } from './metrics.js';
import { openaiRoutes } from './openai-routes.js';
import { upstreamGuard } from './upstream-guard.js';

export interface HubState {
  requestId: string;
  model?: string;
  coldStartMs?: number;
  queueMs?: number;
}

export function createApp(controller: Controller, log: Logger, actions: HubActions): Koa<HubState> {
  const app = new Koa<HubState>();
  app.silent = true;
  // Listens to the controller from now on, so that the preload's transitions are counted too.
  const metrics = new HubMetrics(controller);

  // Request id, and one log line per request once its response is over (streams included).
  app.use(async (ctx, next) => {
    const started = performance.now();
    const id = ctx.get('x-request-id') || randomUUID();
    const path = ctx.path; // before the proxy rewrites req.url to the backend's path (/upstream/m/x -> /x)
    ctx.state.requestId = id;
    ctx.set('x-request-id', id);
    try {
      await next();
    } finally {
      const { model, coldStartMs, queueMs } = ctx.state;
      const summary = {
        id,
        method: ctx.method,
        path,
        model,
        status: ctx.respond === false ? ctx.res.statusCode : ctx.status,
        ms: Math.round(performance.now() - started),
        cold_start_ms: coldStartMs === undefined ? undefined : Math.round(coldStartMs),
        queue_ms: queueMs === undefined ? undefined : Math.round(queueMs),
      };
      log.info(summary, 'request');
      if (model) controller.noteRequest(summary);
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

  // Browsers first (they need no key to be refused), then /health, which needs no key, then keys.
  const config = () => controller.config;
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

  app.use(requireKey(() => controller.config.auth));
  app.use(rejectTextPlain);

  const openai = openaiRoutes(controller);
  const control = controlRoutes(controller, actions);
  app.use(upstreamGuard(controller));
  app.use(openai.routes());
  app.use(control.routes());
  app.use(metricsRoutes(metrics).routes());
  return app;
}

/** Routes decode their parameters; a %-escape that is not UTF-8 is the client's mistake, not ours. */
const malformedPath = (path: string) =>
  new HubError('bad_request', `the path ${path} has a malformed %-escape; percent-encode it as UTF-8 (e.g. encodeURIComponent)`);

function internal(err: unknown, log: Logger, requestId: string): HubError {
  log.error({ err, req_id: requestId }, 'unexpected error');
  return new HubError('internal_error', `internal hub error: ${(err as Error).message}; this is a bug, please report it with the hub log`);
}

export function createHttpServer(app: Koa<HubState>, maxBodyBytes: () => number): Server {
  const handle = app.callback();
  const server = createServer(handle);
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  server.on('checkContinue', continueOrRefuse(handle, maxBodyBytes)); // an oversized upload is refused before it starts
  return server;
}
