// The request log over HTTP: GET /hub/api/requests (JSON, or CSV with ?format=csv or Accept: text/csv),
// GET /hub/api/requests/{id} (one request, with its bodies for a model with log.capture), and the
// dashboard page /hub/requests, whose filters are a plain GET form (so it works without JavaScript)
// and whose script adds the requests the events stream reports. Admin realm, like the rest of /hub.
import Router from '@koa/router';
import type { Context } from 'koa';
import { stringify } from 'csv-stringify/sync';
import { MAX_LOGGED_REQUESTS } from '../config/schema.js';
import { HubError } from '../errors.js';
import type { Controller } from '../scheduler/controller.js';
import type { HubState } from './app.js';
import { realmIsOpen } from './auth.js';
import { renderView } from './dashboard/render.js';
import { findModel } from './model-lookup.js';
import { COLUMNS, type LoggedRequest, type RequestFilter, type RequestLog } from './request-log.js';

/** Rows the page shows when it is not given a limit. */
const PAGE_ROWS = 200;

export function requestLogRoutes(controller: Controller, log: RequestLog): Router<HubState> {
  const router = new Router<HubState>({ prefix: '/hub' });

  router.get('/api/requests', (ctx) => {
    const filter = parseFilter(ctx, controller);
    const format = ctx.query.format;
    if (format !== undefined && format !== 'json' && format !== 'csv') throw badParam('format', format, 'json or csv');
    const csv = format === 'csv' || (format === undefined && /\btext\/csv\b/i.test(ctx.get('accept')));
    const requests = log.list(filter);
    if (csv) {
      ctx.type = 'text/csv; charset=utf-8';
      ctx.set('content-disposition', 'inline; filename="requests.csv"');
      ctx.body = stringify(requests, { header: true, columns: [...COLUMNS], cast: { boolean: (b) => String(b) } });
      return;
    }
    ctx.body = { object: 'list', kept: log.capacity, filter: { model: filter.model ?? null }, data: requests };
  });

  router.get('/api/requests/:id', (ctx) => {
    const found = log.find(ctx.params.id);
    if (!found) {
      throw new HubError('not_found', `no request with id "${ctx.params.id}" in the request log (it keeps the last ${log.capacity}, log.requests in hub.yaml); GET /hub/api/requests lists them`);
    }
    ctx.body = found;
  });

  router.get('/requests', (ctx) => {
    const query = { model: one(ctx.query.model), status: one(ctx.query.status), since: one(ctx.query.since), limit: one(ctx.query.limit) };
    const filter = parseFilter(ctx, controller);
    const requests = log.list({ ...filter, limit: filter.limit ?? PAGE_ROWS });
    ctx.type = 'html';
    ctx.body = renderView('requests', {
      title: 'Requests · modelhub',
      authed: !realmIsOpen(controller.config.auth, 'admin'),
      requests: requests.map(rowView),
      query,
      filterModel: filter.model ?? '',
      models: controller.names(),
      kept: log.capacity,
      limit: filter.limit ?? PAGE_ROWS,
      csvUrl: `/hub/api/requests?${new URLSearchParams({ ...definedOnly(query), format: 'csv' })}`,
    });
  });

  return router;
}

/** What a row of the page shows (the script builds the same from an event: views/static/requests.js). */
function rowView(r: LoggedRequest) {
  const ms = (v: number | null) => (v === null ? '' : `${v} ms`);
  return {
    id: r.id,
    time: r.time,
    clock: r.time.slice(11, 23),
    model: r.model ?? '',
    route: r.route,
    key: r.key ?? '',
    status: r.status,
    statusClass: `s${Math.floor(r.status / 100)}xx`,
    // Waiting for the model's start and for a turn, together (the cold start is also in its own column of the API).
    wait: r.queue_ms === null && r.cold_start_ms === null ? '' : `${(r.queue_ms ?? 0) + (r.cold_start_ms ?? 0)} ms`,
    ttft: ms(r.ttft_ms),
    ms: ms(r.ms),
    tokens: r.tokens_in === null && r.tokens_out === null ? '' : `${r.tokens_in ?? '?'} / ${r.tokens_out ?? '?'}`,
    rate: r.tokens_per_s === null ? '' : String(r.tokens_per_s),
    captured: r.captured,
  };
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[v.length - 1] : v === '' ? undefined : v);
const definedOnly = (o: Record<string, string | undefined>) => Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => e[1] !== undefined));

const badParam = (param: string, value: unknown, expected: string) =>
  new HubError('bad_request', `the query parameter ${param} must be ${expected}; got ${JSON.stringify(value)}`, { param });

/** The filters of a query string, each checked; a bad one is a 400 that names it. */
export function parseFilter(ctx: Context, controller: Controller): RequestFilter {
  const filter: RequestFilter = {};
  const model = one(ctx.query.model);
  // An alias or another case finds the model's name; a name no longer configured is kept as given.
  if (model !== undefined) filter.model = findModel(controller, model)?.name ?? model;
  const status = one(ctx.query.status);
  if (status !== undefined) {
    if (/^[1-5]\d\d$/.test(status)) filter.status = { code: Number(status) };
    else if (/^[1-5]xx$/i.test(status)) filter.status = { class: Number(status[0]) };
    else throw badParam('status', status, 'a status code like 404 or a class like 5xx');
  }
  const since = one(ctx.query.since);
  if (since !== undefined) {
    const at = /^\d+$/.test(since) ? Number(since) : /^\d{4}-\d\d-\d\d/.test(since) ? Date.parse(since) : NaN;
    if (!Number.isFinite(at)) throw badParam('since', since, 'an ISO 8601 time like 2026-01-31T12:00:00Z or milliseconds since 1970');
    filter.since = at;
  }
  const limit = one(ctx.query.limit);
  if (limit !== undefined) {
    const n = /^\d+$/.test(limit) ? Number(limit) : NaN;
    if (!(n >= 1 && n <= MAX_LOGGED_REQUESTS)) throw badParam('limit', limit, `a whole number from 1 to ${MAX_LOGGED_REQUESTS}`);
    filter.limit = n;
  }
  return filter;
}
