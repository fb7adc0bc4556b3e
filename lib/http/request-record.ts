// What every request gets, through Koa's chain or the gateway's own path (app.ts): an id, a meter,
// one log line (and `request` event) once its response is over, and the hub's own errors as the
// OpenAI envelope (Anthropic's on /v1/messages*).
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { HubError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Controller, RequestSummary } from '../scheduler/controller.js';
import { errorEnvelope } from './anthropic-errors.js';
import type { HubState } from './app.js';
import { Meter } from './meter.js';
import type { HubMetrics } from './metrics.js';
import type { RequestLog } from './request-log.js';
import { wasCutForStalling } from './stall.js';

type Ctx = Koa.ParameterizedContext<HubState>;

/** A request under way: when it began, and its path before a proxy rewrites req.url (/upstream/m/x -> /x). */
export interface Opened {
  started: number;
  path: string;
}

export class RequestRecorder {
  constructor(
    private readonly controller: Controller,
    private readonly log: Logger,
    private readonly metrics: HubMetrics,
    private readonly requests: RequestLog,
  ) {}

  /** Gives the request its id (the client's x-request-id, or a new one) and its meter. */
  open(ctx: Ctx): Opened {
    const started = performance.now();
    const id = (ctx.req.headers['x-request-id'] as string | undefined) || randomUUID();
    ctx.state.requestId = id;
    ctx.state.meter = new Meter(started);
    ctx.res.setHeader('x-request-id', id);
    return { started, path: ctx.path };
  }

  /** The log line and `request` event, once the response is over (streams included). */
  close(ctx: Ctx, opened: Opened): void {
    const summary = summarize(ctx, opened);
    // `hub watch` and open dashboards read the status over and over: at info, those reads would
    // bury the requests that matter. They stay in the log at debug; failed ones stay at info.
    if (isPolling(ctx.method, opened.path, ctx.status)) this.log.debug(summary, 'request');
    else this.log.info(summary, 'request');
    if (summary.model) {
      this.controller.noteRequest(summary);
      if (ctx.state.captured !== undefined || ctx.state.meter.capturing) this.requests.attachCapture(summary, { request: ctx.state.captured, response: ctx.state.meter.capturedResponse() });
    } else this.metrics.unrouted(summary);
  }

  /**
   * Makes `err` the response: the envelope, with the error's status and headers (Koa writes the body;
   * see send). A response already under way can only be cut.
   */
  fail(ctx: Ctx, path: string, err: unknown): void {
    const error = err instanceof HubError ? err : err instanceof URIError ? malformedPath(ctx.path) : internal(err, this.log, ctx.state.requestId);
    if (ctx.res.headersSent) return void ctx.res.destroy();
    ctx.respond = true;
    ctx.status = error.status;
    ctx.set(error.headers);
    ctx.body = errorEnvelope(path, error);
  }
}

/** Writes a JSON body that `fail` set, for a request Koa does not respond to (the gateway's own path). */
export function send(ctx: Ctx): void {
  if (ctx.res.headersSent || ctx.res.destroyed) return;
  const text = JSON.stringify(ctx.body);
  ctx.length = Buffer.byteLength(text);
  ctx.res.end(text);
}

/** What a request that reached no route is told. */
export const nothingHere = (ctx: Ctx) =>
  new HubError('not_found', `there is nothing at ${ctx.method} ${ctx.path}; the OpenAI API is under /v1 (try GET /v1/models)`);

/** The request log line (and `request` event) of one finished exchange: what it asked, what it cost. */
function summarize(ctx: Ctx, { started, path }: Opened): RequestSummary {
  const { model, coldStartMs, queueMs, swapMs, meter, keyName, requestId } = ctx.state;
  const proxied = ctx.respond === false;
  const round = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms));
  return {
    id: requestId,
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

/** A successful read of the control API or of a dashboard fragment: what watchers repeat every few seconds. */
function isPolling(method: string, path: string, status: number): boolean {
  return (method === 'GET' || method === 'HEAD') && status < 400 && (path.startsWith('/hub/api/') || path.startsWith('/hub/fragments/'));
}

/** Routes decode their parameters; a %-escape that is not UTF-8 is the client's mistake, not ours. */
const malformedPath = (path: string) =>
  new HubError('bad_request', `the path ${path} has a malformed %-escape; percent-encode it as UTF-8 (e.g. encodeURIComponent)`);

function internal(err: unknown, log: Logger, requestId: string): HubError {
  log.error({ err, req_id: requestId }, 'unexpected error');
  return new HubError('internal_error', `internal hub error: ${(err as Error).message}; this is a bug, please report it with the hub log`);
}
