// The control API (SPEC §3.3). Each handler is a thin call into the controller (or the hub, for
// reload and shutdown); the dashboard and the CLI use these same routes.
import Router from '@koa/router';
import type { Context } from 'koa';
import { ConfigError } from '../config/errors.js';
import { listenOrigin } from '../config/listen-origin.js';
import { hubLogFile } from '../config/names.js';
import { HubError, plural } from '../errors.js';
import { prettyLines } from '../log.js';
import { VERSION } from '../paths.js';
import { followFile, tailLines } from '../runtime/log-tail.js';
import type { Controller } from '../scheduler/controller.js';
import type { ModelActor } from '../scheduler/actor.js';
import type { ConfigDiff } from '../scheduler/reload.js';
import { configSecrets, inheritedSecrets, LineMasker, maskCache, modelSecrets, type Mask } from '../secrets.js';
import type { HubState } from './app.js';
import { withMemory } from './memory-status.js';
import type { MemoryMonitor } from '../runtime/memory-monitor.js';
import { bulk } from './bulk.js';
import { findModel } from './model-lookup.js';
import { Subscriber } from './subscriber.js';

export interface HubActions {
  /** Re-reads the config file and applies it; throws ConfigError when it is invalid. */
  reload(): ConfigDiff;
  /** Starts a graceful shutdown of the whole hub (returns at once). */
  shutdown(): void;
  /** The file the hub's own log goes to (default: hub.log in log.dir). */
  hubLog?: string;
  /** Measured memory, GPUs, estimates and memory warnings (absent in hubs built without one). */
  memory?: MemoryMonitor;
}

const ACTIONS = ['start', 'stop', 'load', 'unload'] as const;

/**
 * How often an open event stream or log follow asks whether its key or session is still valid, besides
 * before each write: a logout or a reload that removes the key ends it within this, however quiet.
 */
const REVOKED_CHECK_MS = 250;
type Action = (typeof ACTIONS)[number];

export function controlRoutes(controller: Controller, actions: HubActions): Router<HubState> {
  const router = new Router<HubState>({ prefix: '/hub/api' });

  router.get('/status', async (ctx) => {
    const { config } = controller;
    const { host, port } = config.listen;
    ctx.body = {
      hub: {
        version: VERSION,
        uptime_s: Math.round((Date.now() - controller.startedAt) / 1000),
        config: config.path,
        // listen.port 0 lets the OS pick: the port is then the one this request came in on.
        url: `${listenOrigin(host, port || ctx.req.socket.localPort!)}/v1`,
        shutting_down: controller.shuttingDown,
      },
      ...(await withMemory(controller.status(), actions.memory)),
    };
  });

  router.post('/models/:name/:action', async (ctx) => {
    const { action } = ctx.params;
    const name = modelName(controller, ctx.params.name);
    if (!(ACTIONS as readonly string[]).includes(action)) {
      throw new HubError('not_found', `"${action}" is not a model action; the control API has POST /hub/api/models/${name}/{${ACTIONS.join('|')}} (and GET /hub/api/status to see every model)`);
    }
    controller.get(name); // 404 for an unknown model, before anything starts
    const run = controller[action as Action](name);
    if (ctx.query.wait === 'false') {
      run.catch(() => {}); // the outcome shows up in status and events
      ctx.status = 202;
      ctx.body = { model: name, action, accepted: true };
      return;
    }
    await run;
    const m = controller.get(name);
    ctx.body = { model: name, action, process: m.process, memory: m.memory };
  });

  // Several models loaded together, or refused at once (409) when they cannot all be loaded at the
  // same time: loading them one by one would evict the first for the last.
  router.post('/load', async (ctx) => {
    const raw = ctx.query.model;
    const names = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((n) => n !== '');
    if (!names.length) throw new HubError('bad_request', 'name the models to load: POST /hub/api/load?model=a&model=b');
    for (const name of names) controller.get(name); // 404 for an unknown model, before anything starts
    const run = controller.loadMany(names);
    if (ctx.query.wait === 'false') {
      await Promise.race([run, Promise.resolve()]); // a refusal is known at once; the loads go on
      run.catch(() => {});
      ctx.status = 202;
      ctx.body = { models: names, action: 'load', accepted: true };
      return;
    }
    await run;
    ctx.body = { models: names.map((name) => ({ model: name, action: 'load', process: controller.get(name).process, memory: controller.get(name).memory })) };
  });

  // Every model at once (lib/http/bulk.ts): 200 with what was done and what failed.
  router.post('/stop-all', async (ctx) => { ctx.body = await bulk(controller, 'stop'); });
  router.post('/unload-all', async (ctx) => { ctx.body = await bulk(controller, 'unload'); });

  router.post('/reload', (ctx) => {
    try {
      ctx.body = actions.reload();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      throw new HubError('invalid_config', `the config has ${plural(err.problems.length, 'problem')}; the running config stays. ${err.message}`, {
        details: { errors: err.message.split('\n') },
      });
    }
  });

  router.post('/shutdown', (ctx) => {
    ctx.status = 202;
    ctx.body = { shutting_down: true };
    ctx.res.once('finish', () => actions.shutdown());
  });

  router.get('/events', (ctx) => events(ctx, controller));

  router.get('/models/:name/logs', async (ctx) => {
    const m = controller.get(modelName(controller, ctx.params.name));
    await serveLog(ctx, m.logFile, logMask(controller, m));
  });

  // The hub's own log (JSON lines), for `hub logs --hub`.
  // ?format=text: as lines for people (the dashboard's Hub log page follows it so).
  router.get('/logs', async (ctx) => {
    const config = controller.config;
    const mask = maskFor(config, () => [...configSecrets(config), ...inheritedSecrets()]);
    await serveLog(ctx, actions.hubLog ?? hubLogFile(config.log.dir), ctx.query.format === 'text' ? (text) => prettyLines(mask(text)) : mask);
  });

  return router;
}

/** The model's name for a name or alias as `findModel` finds it; unknown ones stay as given (controller.get answers 404). */
const modelName = (controller: Controller, id: string) => (controller.names().includes(id) ? id : findModel(controller, id)?.name ?? id);

/** The end of a log file (?tail=N lines), then with ?follow=1 what is written to it until the client leaves. */
async function serveLog(ctx: Context & { state: HubState }, file: string, mask: Mask): Promise<void> {
  const lines = Math.min(10_000, Math.max(0, Number(ctx.query.tail ?? 200) || 0));
  const { text, end } = await tailLines(file, lines);
  ctx.type = 'text/plain; charset=utf-8';
  if (ctx.query.follow !== '1' && ctx.query.follow !== 'true') {
    ctx.body = mask(text);
    return;
  }
  const stop = new AbortController();
  let recheck: NodeJS.Timeout | undefined;
  const out = new Subscriber(ctx.res, {
    farewell: '\n--- modelhub: this reader fell behind (more than 1 MiB not taken) and was dropped; reconnect to go on following\n',
    onEnd: () => {
      clearInterval(recheck);
      stop.abort();
    },
  });
  const masked = new LineMasker(mask);
  ctx.set('x-accel-buffering', 'no');
  ctx.body = out.body;
  out.write(mask(text));
  // Nothing to send yet (?tail=0): the headers go now, so the client knows it is following.
  if (!text) ctx.flushHeaders();
  const allowed = () => {
    if (ctx.state.stillAllowed?.() !== false) return true;
    out.end(`${masked.flush()}\n--- modelhub: the key or dashboard session this follow was opened with is no longer valid; reconnect with a valid one\n`);
    return false;
  };
  // A quiet log writes nothing for hours: the key is asked after too, not only before each write.
  if (out.open) recheck = setInterval(allowed, REVOKED_CHECK_MS);
  void followFile(file, end, { data: (chunk) => allowed() && out.write(masked.push(chunk)), notice: (line) => out.write(masked.flush() + line) }, stop.signal)
    .then(() => out.end(masked.flush()));
}

const maskFor = maskCache();

/**
 * What a model's log must not show: patterns of secrets, and every secret the config, the model and
 * the hub's environment (which backends inherit) hold as exact strings.
 */
function logMask(controller: Controller, m: ModelActor): Mask {
  const config = controller.config;
  const all = () => [...configSecrets(config), ...inheritedSecrets()];
  // A model removed by a reload, or still running as it was before one, has secrets the config lacks.
  if (config.models[m.name] === m.config) return maskFor(config, all);
  return maskFor(m.config, () => [...all(), ...modelSecrets(m.config)]);
}

/** Every subscriber gets the same event object: it is serialized once, for all of them. */
const frames = new WeakMap<object, string>();
function eventFrame(event: string, data: object): string {
  let frame = frames.get(data);
  if (frame === undefined) frames.set(data, (frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
  return frame;
}

/** Server-sent events: a status snapshot, then every state transition, load progress and request summary. */
function events(ctx: Context & { state: HubState }, controller: Controller): void {
  const onTransition = (t: object) => send('transition', t);
  const onRequest = (r: object) => send('request', r);
  const onProgress = (p: object) => send('progress', p);
  const keepAlive = setInterval(() => allowed() && out.write(': keep-alive\n\n'), 15_000);
  const recheck = setInterval(() => allowed(), REVOKED_CHECK_MS); // a quiet stream ends soon after a logout or reload too
  const allowed = (): boolean => {
    if (ctx.state.stillAllowed?.() !== false) return true;
    out.end(`event: unauthorized\ndata: ${JSON.stringify({ message: 'the key or dashboard session this stream was opened with is no longer valid (logged out, or the keys changed); reconnect with a valid one' })}\n\n`);
    return false;
  };
  const out = new Subscriber(ctx.res, {
    farewell: `event: lagging\ndata: ${JSON.stringify({ message: 'this subscriber fell behind (more than 1 MiB not taken) and was dropped; reconnect for a fresh status' })}\n\n`,
    onEnd: () => {
      clearInterval(keepAlive);
      clearInterval(recheck);
      controller.off('transition', onTransition);
      controller.off('request', onRequest);
      controller.off('progress', onProgress);
    },
  });
  const send = (event: string, data: object) => allowed() && out.write(eventFrame(event, data));
  controller.on('transition', onTransition);
  controller.on('request', onRequest);
  controller.on('progress', onProgress);
  ctx.set({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  ctx.body = out.body;
  send('status', controller.status());
}
