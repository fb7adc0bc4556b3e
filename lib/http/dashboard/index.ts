// The /hub dashboard: server-rendered pages (views/), forms that work without JavaScript (POST →
// 303 → flash), HTML fragments the page's script swaps in as events arrive, and the login. It is a
// thin layer: every action is a controller call (or the hub's reload), as in the control API.
import { createHash } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { ConfigError } from '../../config/errors.js';
import { HubError } from '../../errors.js';
import type { Controller } from '../../scheduler/controller.js';
import { History } from '../../scheduler/history.js';
import type { ConfigDiff } from '../../scheduler/reload.js';
import type { HubState } from '../app.js';
import { checkKey, realmIsOpen } from '../auth.js';
import type { HubActions } from '../control-routes.js';
import { compressBody } from './compress.js';
import { Flashes, type Flash } from './flash.js';
import { modelPage } from './model-page.js';
import { renderView, viewsMiddleware } from './render.js';
import { withMemory } from '../memory-status.js';
import { LoginThrottle } from './login-throttle.js';
import { SESSION_COOKIE, Sessions, setSessionCookie } from './sessions.js';
import { serveStatic } from './static.js';
import { board, boardQuery } from './board-query.js';
import { LEGEND, seconds } from './timeline.js';
import { toolPages } from './tool-pages.js';
import { modelUrl, modelView, summaryView, type SummaryView, type UsageOf } from './view.js';

const ACTIONS = ['start', 'stop', 'load', 'unload'] as const;
type Action = (typeof ACTIONS)[number];
const DONE: Record<Action, string> = { start: 'started', stop: 'stopped', load: 'loaded', unload: 'unloaded' };
const DOING: Record<Action, string> = { start: 'starting', stop: 'stopping', load: 'loading', unload: 'unloading' };

/** A form waits this long for its action; a longer start goes on, and the page shows its progress. */
const FORM_WAIT_MS = 15_000;
const MAX_LOGIN_BODY = 4096;

export interface Dashboard {
  /**
   * Mounted first: every /hub answer gets the framing and content policy headers (refusals too), and
   * the dashboard's pages answer errors as HTML pages (401 → the login form); pages, fragments and
   * static files leave compressed when the browser accepts it.
   */
  errors: Middleware;
  /** Mounted just before the key check: the login, the logout and the static files. */
  session: Middleware;
  /** For requireKey: whether the request carries a live dashboard session (opens the admin realm). */
  hasSession(ctx: Context): boolean;
  routes: Middleware;
}

/**
 * Sent with every /hub answer. No page may frame the dashboard (a page on another site could show it
 * invisibly and have the operator click Stop: the click's request comes from the hub's own origin).
 * The page itself loads only its own script, stylesheet and icon and talks only to the hub; no inline
 * script or style is allowed, so an escaping slip could not run anything either.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY', // for browsers that predate frame-ancestors
  'x-content-type-options': 'nosniff',
};

const underHub = (path: string) => {
  const p = path.toLowerCase();
  return p === '/hub' || p.startsWith('/hub/');
};

/** Pages a person opens (HTML errors); /hub/api, fragments and static files answer like an API. */
const isPage = (path: string) => underHub(path) && !/^\/hub\/(api|fragments|static)(\/|$)/.test(path.toLowerCase());

export function dashboard(controller: Controller, actions: HubActions, usageOf: UsageOf = () => undefined): Dashboard {
  const history = new History(controller);
  const sessions = new Sessions();
  const flashes = new Flashes();
  const auth = () => controller.config.auth;
  const keysNeeded = () => !realmIsOpen(auth(), 'admin');
  const throttle = new LoginThrottle();
  const hasSession = (ctx: Context) => sessions.valid(ctx.cookies.get(SESSION_COOKIE), auth());

  const errors: Middleware = async (ctx, next) => {
    if (!underHub(ctx.path)) return next();
    ctx.set(PAGE_HEADERS);
    if (!/^\/hub\/api(\/|$)/i.test(ctx.path)) {
      // Pages, fragments and static files, compressed for browsers that accept it (not the API).
      await pageErrors(ctx, next);
      return compressBody(ctx);
    }
    return next();
  };

  const pageErrors: Middleware = async (ctx, next) => {
    if (!isPage(ctx.path)) return next();
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined && ctx.respond !== false) {
        throw new HubError('not_found', `there is no dashboard page at ${ctx.path}; the dashboard is at /hub`);
      }
    } catch (err) {
      // Browsers get pages; curl, scripts and anything that does not ask for HTML get the JSON envelope.
      if (!(err instanceof HubError) || ctx.res.headersSent || ctx.accepts('json', 'html') !== 'html') throw err;
      if (err.code === 'invalid_api_key') {
        const back = ctx.method === 'GET' ? ctx.originalUrl : '/hub';
        ctx.status = 303;
        return ctx.redirect(`/hub/login?next=${encodeURIComponent(back)}`);
      }
      ctx.status = err.status;
      ctx.set(err.headers);
      ctx.type = 'html';
      ctx.body = renderView('error', { title: `${err.status} ${err.code}`, status: err.status, code: err.code, message: err.message, authed: false });
    }
  };

  const session: Middleware = async (ctx, next) => {
    const p = ctx.path.toLowerCase();
    if (p.startsWith('/hub/static/')) return serveStatic(ctx);
    if (p === '/hub/login' && ctx.method === 'GET') return loginPage(ctx);
    if (p === '/hub/login' && ctx.method === 'POST') return login(ctx);
    if (p === '/hub/logout' && ctx.method === 'POST') {
      sessions.close(ctx.cookies.get(SESSION_COOKIE));
      setSessionCookie(ctx, null);
      ctx.status = 303;
      return ctx.redirect(keysNeeded() ? '/hub/login?out=1' : '/hub');
    }
    await next();
  };

  const safeNext = (next: unknown) => (typeof next === 'string' && /^\/hub(\/|\?|$)/.test(next) && !next.startsWith('//') ? next : '/hub');

  function loginPage(ctx: Context, status = 200, error?: string): void {
    if (!keysNeeded()) return void ctx.redirect('/hub');
    ctx.status = status;
    ctx.type = 'html';
    const notice = ctx.query.out === '1' ? 'You are logged out.' : undefined;
    ctx.body = renderView('login', { title: 'Log in', next: safeNext(ctx.query.next), error, notice, authed: false });
  }

  async function login(ctx: Context): Promise<void> {
    const form = new URLSearchParams(await readSmallBody(ctx));
    const key = form.get('key')?.trim() ?? '';
    const next = safeNext(form.get('next'));
    if (!keysNeeded()) return void ctx.redirect(next);
    const wait = throttle.wait(ctx.ip);
    if (wait.ms > 0) {
      const s = Math.ceil(wait.ms / 1000);
      ctx.query = { next };
      ctx.set('retry-after', String(s));
      return loginPage(ctx, 429, wait.everyone ? `Too many wrong keys sent to this hub in the last minute: logins are paused for everyone; try again in ${s} s.` : `Too many wrong keys from this address: try again in ${s} s.`);
    }
    if (!key || !checkKey(auth(), 'admin', key)) {
      if (key) throttle.failed(ctx.ip, key);
      ctx.query = { next };
      return loginPage(ctx, 401, key ? 'That is not an admin key of this hub. Use a key from auth.admin_keys in hub.yaml (API keys do not open the dashboard).' : 'Enter an admin key.');
    }
    throttle.succeeded(ctx.ip);
    setSessionCookie(ctx, sessions.open(auth()));
    ctx.status = 303;
    ctx.redirect(next);
  }

  const router = new Router<HubState>({ prefix: '/hub' });
  router.use(viewsMiddleware() as unknown as Parameters<typeof router.use>[0]);
  const now = () => controller.driver.clock.now();
  const page = (ctx: Context, extra: object) => ({ authed: keysNeeded(), flash: flashes.take(ctx.query.flash), legend: LEGEND, ...extra });

  // Status with the memory monitor's figures (measured, estimated, warnings, GPUs).
  const status = () => withMemory(controller.status(), actions.memory);
  /** The summary and the board of one status snapshot: the counts, the group bars and the cards agree. */
  const boardData = async (ctx: Context) => {
    const { models, groups, gpus } = await status();
    const t = now();
    return { summary: summaryView(controller, models, groups, originOf(ctx), t, gpus), board: board(models.map((s) => modelView(s, controller, history, t, usageOf)), boardQuery(ctx.query)), legend: LEGEND };
  };

  router.get('/', async (ctx) => {
    await ctx.render('index', page(ctx, { title: 'modelhub', ...(await boardData(ctx)) }));
  });

  router.get('/models/:name', async (ctx) => {
    await ctx.render('model', page(ctx, await modelPage(controller, history, ctx.params.name, now(), usageOf, (await status()).models)));
  });

  router.post('/models/:name/:action', async (ctx) => {
    const { name, action } = ctx.params;
    if (!(ACTIONS as readonly string[]).includes(action)) return; // 404 page
    const flash = await act(name, action as Action);
    const back = ctx.query.from === 'model' && controller.resolve(name) ? modelUrl(name) : '/hub';
    ctx.status = 303;
    ctx.redirect(`${back}?flash=${flashes.put(flash)}`);
  });

  toolPages(router, controller, actions, (ctx, extra) => page(ctx, extra), flashes);

  router.post('/reload', (ctx) => {
    let flash: Flash;
    try {
      flash = diffFlash(actions.reload());
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      flash = { kind: 'error', text: `The config was not reloaded: it has ${err.problems.length} problem(s). The running config stays; fix the file and reload again.`, details: err.message.split('\n') };
    }
    ctx.status = 303;
    ctx.redirect(`/hub?flash=${flashes.put(flash)}`);
  });

  // Fragments for the page's script: the same partials as the page, so a live update looks the same.
  router.get('/fragments/board', async (ctx) => {
    ctx.type = 'html';
    ctx.body = renderView('partials/board', await boardData(ctx));
  });

  router.get('/fragments/models/:name', async (ctx) => {
    const { models, groups, gpus } = await status();
    const t = now();
    const s = models.find((m) => m.name === ctx.params.name && !m.removed) ?? models.find((m) => m.name === ctx.params.name);
    if (!s) throw new HubError('not_found', `there is no model named "${ctx.params.name}"; configured models: ${controller.names().join(', ')}`);
    const m = modelView(s, controller, history, t, usageOf);
    const summary = summaryView(controller, models, groups, originOf(ctx), t, gpus);
    const tag = summaryTag(summary);
    ctx.body = {
      // The table view's row, or the card (on the board or the model's page).
      card: ctx.query.view === 'table' ? renderView('partials/model-row', { m }) : renderView('partials/model-card', { m, from: ctx.query.from === 'model' ? 'model' : '' }),
      // The summary only when it differs from the one the page says it shows (?summary=<its tag>):
      // under steady traffic it rarely changes, and it was a third of each live update.
      summaryTag: tag,
      ...(ctx.query.summary === tag ? {} : { summary: renderView('partials/summary', { summary }) }),
    };
  });

  async function act(name: string, action: Action): Promise<Flash> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      controller.get(name);
      const run = controller[action](name);
      const outcome = await Promise.race([run.then(() => 'done' as const), new Promise<'pending'>((resolve) => { timer = setTimeout(() => resolve('pending'), FORM_WAIT_MS); })]);
      if (outcome === 'pending') {
        run.catch(() => {}); // its outcome shows on the page
        return { kind: 'ok', text: `${name} is still ${DOING[action]} after ${seconds(FORM_WAIT_MS)}; the page shows its progress.`, details: [] };
      }
      const m = controller.get(name);
      return { kind: 'ok', text: `${name} ${DONE[action]} in ${seconds(performance.now() - started)}: process ${m.process}, memory ${m.memory}.`, details: [] };
    } catch (err) {
      if (!(err instanceof HubError)) throw err;
      return { kind: 'error', text: `Could not ${action} ${name}: ${err.message}`, details: [] };
    } finally {
      clearTimeout(timer);
    }
  }

  return { errors, session, hasSession, routes: router.routes() as unknown as Middleware };
}

/** What a reload did, in words. */
export function diffFlash(diff: ConfigDiff): Flash {
  const list = (names: string[]) => names.join(', ');
  const details = [
    diff.added.length && `added: ${list(diff.added)}`,
    diff.removed.length && `removed (stop once their requests finish): ${list(diff.removed)}`,
    diff.restarted.length && `restarted with new launch settings (once idle): ${list(diff.restarted)}`,
    diff.updated.length && `updated live: ${list(diff.updated)}`,
    diff.unchanged.length && `unchanged: ${list(diff.unchanged)}`,
  ].filter((d): d is string => Boolean(d));
  const changed = diff.added.length + diff.removed.length + diff.restarted.length + diff.updated.length;
  return { kind: 'ok', text: changed ? `Config reloaded: ${changed} model(s) changed.` : 'Config reloaded: nothing changed.', details };
}

/** Names a summary's content; not its uptime text, which the page keeps ticking by itself. */
const summaryTag = (summary: SummaryView) => createHash('sha256').update(JSON.stringify({ ...summary, uptime: '' })).digest('base64url').slice(0, 16);

/** The origin the browser used (what a client on that machine pastes). */
const originOf = (ctx: Context) => `${ctx.protocol}://${ctx.host}`;

/** A login form's body: small, read whole, refused beyond MAX_LOGIN_BODY. */
async function readSmallBody(ctx: Context): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_LOGIN_BODY) throw new HubError('body_too_large', `the login form sent more than ${MAX_LOGIN_BODY} bytes; send only the key`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

