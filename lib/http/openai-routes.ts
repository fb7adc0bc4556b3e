// The OpenAI-compatible surface (SPEC §3.1): model listing, and every POST routed by the `model`
// it names to that model's backend, plus /upstream/{model}/... raw passthrough.
import { finished } from 'node:stream/promises';
import Router from '@koa/router';
import type { Context } from 'koa';
import { HubError } from '../errors.js';
import type { Controller } from '../scheduler/controller.js';
import type { Lease, ModelActor } from '../scheduler/actor.js';
import { BodyBudget } from './body-budget.js';
import { readBody } from './body.js';
import { forward } from './proxy.js';
import { findModel } from './model-lookup.js';
import { fixedModel, jsonModel, multipartModel, writeModel } from './request-model.js';
import { planTranslation, takeoverFor } from './translation.js';
import { mayUse } from './auth.js';
import type { HeldBody } from './body.js';
import { applyParams } from './params.js';
import { LoadStream, progressModeFor } from './load-stream.js';
import type { HubState } from './app.js';

/** Forwards one request to a model (see createForwarder); `fixed` names the model instead of the body. */
export type Routed = (ctx: Context & { state: HubState }, fixed?: FixedRoute) => Promise<void>;

/** A route whose URL names the model (the dashboard's playground): the body's `model` is written over. */
export interface FixedRoute {
  model: string;
  /** The OpenAI path the request stands for, and the backend's path (e.g. /v1/chat/completions). */
  apiPath: string;
}

/** POSTs under /v1 are forwarded to the model their body names (and POST /rerank, by its own route). */
export const ROUTED_BY_BODY = /^\/v1\/.+/;

export function openaiRoutes(controller: Controller, routed: Routed = createForwarder(controller)): Router<HubState> {
  const router = new Router<HubState>();

  const entries = new EntryCache();
  router.get('/v1/models', (ctx) => {
    const { scope } = ctx.state;
    const ids = controller.allIds().filter(({ model }) => mayUse(scope, model.config));
    ctx.type = 'application/json';
    ctx.body = `{"object":"list","data":[${entries.join(ids, controller.startedAt)}]}`;
  });

  router.get(/^\/v1\/models\/(.+)$/, (ctx) => {
    const id = decodeURIComponent(ctx.path.slice('/v1/models/'.length));
    ctx.body = modelEntry(id, lookup(controller, id, ctx.state), controller.startedAt);
  });

  const routedByBody = (ctx: Context & { state: HubState }) => routed(ctx);
  router.post(ROUTED_BY_BODY, routedByBody);
  router.post('/rerank', routedByBody);
  // Everything under /v1 but the model list is a POST: say so, rather than "nothing here".
  router.all(/^\/v1\/.+|^\/rerank$/, (ctx) => {
    if (ctx.method === 'POST') return;
    throw new HubError('method_not_allowed', `${ctx.method} ${ctx.path} is not served: the hub routes POST requests here (by the JSON body's "model"); send a POST, or GET /v1/models for the model list`, {
      headers: { allow: 'POST' },
    });
  });

  router.all(/^\/upstream\/([^/]+)(\/.*)?$/, async (ctx) => {
    const [, name, path] = /^\/upstream\/([^/]+)(\/.*)?$/.exec(ctx.path)!;
    const m = lookup(controller, decodeURIComponent(name), ctx.state);
    ctx.state.model = m.name;
    if (m.config.capture) ctx.state.meter.captureResponse(CAPTURE_BYTES);
    const lease = controller.acquireNow(m) ?? (await acquireWhileConnected(controller, m, ctx));
    ctx.state.coldStartMs = lease.coldStartMs;
    ctx.state.queueMs = lease.queueMs;
    ctx.state.swapMs = lease.swapMs;
    ctx.respond = false;
    await forward(ctx.req, ctx.res, lease, { meter: ctx.state.meter, path: (path ?? '/') + ctx.search, requestId: ctx.state.requestId, stallTimeoutMs: controller.config.limits.stallTimeoutMs });
  });

  return router;
}

/**
 * The gateway's forwarding, shared by every route that carries model traffic (/v1, /rerank, and the
 * dashboard's playground): read the body, find the model, apply its policy, wait for it (admission),
 * forward to its backend; the request log and metrics count it like any other.
 */
export function createForwarder(controller: Controller): Routed {
  // Request bodies held in memory, hub-wide (limits.max_body_total).
  const budget = new BodyBudget(() => controller.config.limits.maxBodyTotalBytes);

  const routed: Routed = async (ctx, fixed) => {
    const limits = controller.config.limits;
    const contentType = ctx.req.headers['content-type'] ?? '';
    // Multipart bodies are forwarded byte for byte; JSON ones too, unless served_model rewrites `model`.
    const multipart = !fixed && contentType.toLowerCase().startsWith('multipart/form-data');
    const finder = fixed ? fixedModel(fixed.model) : multipart ? multipartModel(contentType) : jsonModel();
    const apiPath = fixed?.apiPath ?? ctx.path;
    const body = await readBody(ctx.req, { maxBytes: limits.maxBodyBytes, idleTimeoutMs: limits.bodyTimeoutMs, budget }, finder.write);
    try {
      const found = await finder.result(body);
      const m = lookup(controller, found.model, ctx.state);
      const served = m.config.servedModel;
      if (served !== undefined && served !== found.model && found.span) body.splice(found.span.start, found.span.end, Buffer.from(JSON.stringify(served)));
      if (fixed) writeModel(body, served ?? m.name);
      if (m.config.params !== undefined && !multipart) applyParams(body, m.config.params);
      ctx.state.model = m.name;
      if (m.config.capture) capture(ctx, body, multipart);
      // Responses or Messages for a backend without them: refused now if it cannot be translated.
      const plan = planTranslation(m, apiPath, body);
      let lease = controller.acquireNow(m);
      let stream: LoadStream | undefined;
      if (!lease) {
        // Must wait for a load: a streaming client that asked for it gets the progress in its stream.
        // The scan's `stream` holds unless params rewrote the body; a multipart body never streams.
        const streams = multipart ? false : m.config.params !== undefined ? undefined : found.stream;
        const mode = progressModeFor(ctx.req, apiPath, m, body, streams);
        if (mode) {
          ctx.respond = false;
          stream = new LoadStream(ctx.res, apiPath, m, controller, mode);
          stream.open();
        }
        try {
          lease = await acquireWhileConnected(controller, m, ctx);
        } catch (err) {
          if (!stream) throw err;
          stream.fail(err);
          await finished(ctx.res).catch(() => {});
          return;
        }
        stream?.close();
      }
      ctx.state.coldStartMs = lease.coldStartMs;
      ctx.state.queueMs = lease.queueMs;
      ctx.state.swapMs = lease.swapMs;
      ctx.respond = false;
      const translation = plan && takeoverFor(plan, m, fixed?.apiPath ?? ctx.req.url ?? ctx.path, body);
      const takeover = stream ? stream.takeover(translation, body, fixed?.apiPath ?? ctx.req.url ?? ctx.path) : translation;
      await forward(ctx.req, ctx.res, lease, { body, path: fixed?.apiPath, meter: ctx.state.meter, requestId: ctx.state.requestId, stallTimeoutMs: limits.stallTimeoutMs, takeover });
    } finally {
      body.release(); // forward() already did once the backend answered
    }
  };
  return routed;
}

/**
 * The model a request names, if its key may use it. To a key listed under models the hub looks as if
 * it had only those models: another one is "not found", and the list of models is the key's own. A
 * model with keys asked for without one (the API is otherwise open) needs a key: 401.
 */
function lookup(controller: Controller, id: string, state: HubState): ModelActor {
  const m = findModel(controller, id);
  const scope = state.scope;
  if (m && (scope === undefined || mayUse(scope, m.config))) return m;
  if (m && state.keyName === undefined) {
    throw new HubError('invalid_api_key', `the model "${m.name}" needs an API key: send one of its keys (models.${m.name}.api_keys or its group's in hub.yaml) as "Authorization: Bearer <key>" or "x-api-key: <key>"`, {
      headers: { 'www-authenticate': 'Bearer' },
    });
  }
  const known = controller.allIds().filter((x) => mayUse(scope, x.model.config)).map((x) => x.id);
  throw new HubError('model_not_found', `the model "${id}" does not exist; available models: ${known.join(', ') || '(none configured)'}`, {
    param: 'model',
    headers: { 'x-should-retry': 'false' },
  });
}

/** How much of each body a model with log.capture keeps (request and response each). */
export const CAPTURE_BYTES = 16 * 1024;

/** Keeps the start of the body as forwarded and has the meter keep the start of the answer. */
function capture(ctx: Context & { state: HubState }, body: HeldBody, multipart: boolean): void {
  // Only the kept start is copied: concatenating a 30 MiB body to keep 16 KiB held the loop for it.
  ctx.state.captured = multipart ? `(multipart/form-data, ${body.length} bytes: not kept)` : body.head(CAPTURE_BYTES).toString('utf8');
  ctx.state.meter.captureResponse(CAPTURE_BYTES);
}

/** Each id's entry as JSON, kept while its model, config and state stay the same: with hundreds of
 *  models, most of the list is the same from one GET to the next, and serializing it all each time
 *  (Koa does it twice: once for the length) took ~4 ms of a 500-model list's ~5. */
class EntryCache {
  private byId = new Map<string, { m: ModelActor; config: ModelActor['config']; process: string; memory: string; json: string }>();

  join(ids: Array<{ id: string; model: ModelActor }>, created: number): string {
    // Ids removed by a reload would stay forever; past twice the ids in use, start over.
    if (this.byId.size > 2 * ids.length + 16) this.byId.clear();
    let out = '';
    for (const { id, model: m } of ids) {
      let hit = this.byId.get(id);
      if (!hit || hit.m !== m || hit.config !== m.config || hit.process !== m.process || hit.memory !== m.memory) {
        hit = { m, config: m.config, process: m.process, memory: m.memory, json: JSON.stringify(modelEntry(id, m, created)) };
        this.byId.set(id, hit);
      }
      out += out ? `,${hit.json}` : hit.json;
    }
    return out;
  }
}

function modelEntry(id: string, m: ModelActor, created: number) {
  return {
    id,
    object: 'model',
    created: Math.floor(created / 1000),
    owned_by: 'modelhub',
    hub: {
      model: m.name,
      alias: id !== m.name,
      backend: m.config.backend,
      process: m.process,
      memory: m.memory,
      group: m.config.group ?? null,
    },
  };
}

/** Acquires the model for a request; a client that hangs up while it waits leaves the queue (and
 *  stops counting as demand for a start or a swap) instead of being served to nobody. */
function acquireWhileConnected(controller: Controller, m: ModelActor, ctx: Context): Promise<Lease> {
  const gone = new AbortController();
  const onClose = () => { if (!ctx.res.writableFinished) gone.abort(); };
  ctx.res.once('close', onClose);
  const lease = controller.acquire(m, gone.signal);
  void lease.then(() => ctx.res.off('close', onClose), () => ctx.res.off('close', onClose));
  return lease;
}
