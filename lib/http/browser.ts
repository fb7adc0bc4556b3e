// Defences against web pages open in the operator's browser, which can send requests to the hub
// without being able to read most answers (docs/security.md): a Host check against DNS rebinding, an
// Origin check on state-changing requests with CORS answers for the allowed origins, a Fetch Metadata
// check on what pages send without an Origin, and no text/plain bodies on the JSON routes. One middleware each; they read the config per request, so reloads apply.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Context, Middleware } from 'koa';
import { hostOfHeader, isLoopbackHost, parseHostName, parseOrigin } from '../config/auth.js';
import { listenOrigin } from '../config/listen-origin.js';
import type { HubConfig } from '../config/types.js';
import { HubError } from '../errors.js';

type CurrentConfig = () => HubConfig;

/**
 * Bound to loopback, only loopback names, listen.host and auth.allowed_hosts are answered. A page on
 * evil.example whose DNS answer changes to 127.0.0.1 becomes same-origin with the hub; its requests
 * still say `Host: evil.example`. Bound elsewhere the hub is reachable by any name, so nothing is
 * checked (keys protect it there: a rebound page has no key). A request without Host is no browser.
 */
export function checkHost(config: CurrentConfig): Middleware {
  const check = hostCheck(config);
  return async (ctx, next) => {
    check(ctx);
    await next();
  };
}

/** checkHost's test alone (throws the refusal), for the model-traffic path that runs every check in one pass. */
export function hostCheck(config: CurrentConfig): (ctx: Context) => void {
  // The Host the last request passed with, under that config: nearly every request sends the same one.
  let passed: { header: string; config: HubConfig } | undefined;
  return (ctx) => {
    const current = config();
    const { listen, auth } = current;
    const header = ctx.req.headers.host ?? '';
    if (passed?.header === header && passed.config === current) return;
    if (header && isLoopbackHost(listen.host)) {
      const host = hostOfHeader(header);
      if (host === undefined || !(isLoopbackHost(host) || host === parseHostName(listen.host) || auth.allowedHosts.includes(host))) {
        const direct = listenOrigin(listen.host, ctx.req.socket.localPort!);
        throw new HubError(
          'forbidden',
          `this hub listens on ${listen.host} and does not answer to the name ${JSON.stringify(header.slice(0, 100))} (a defence against DNS rebinding); ` +
            `use ${direct}, or add ${JSON.stringify(host ?? header.slice(0, 100))} to auth.allowed_hosts in hub.yaml`,
        );
      }
    }
    passed = { header, config: current };
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Sent by every SDK or page that talks to the hub, whether or not the preflight names them. */
const ALLOWED_HEADERS = ['authorization', 'content-type', 'x-api-key', 'x-request-id'];
const EXPOSED_HEADERS = 'x-request-id, x-hub-model, x-hub-cold-start-ms, x-hub-queue-ms, retry-after, x-should-retry';
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/**
 * A request with an `Origin` that is neither the hub's own (scheme://host:port it came to) nor in
 * auth.allowed_origins may read nothing (no CORS headers) and change nothing: any method but
 * GET/HEAD/OPTIONS gets 403, /v1 and /upstream POSTs included, since running a model is a change.
 * Allowed origins get preflights answered and CORS headers on every answer, proxied ones included
 * (set on ctx.res now, so they survive `ctx.respond = false`). Requests without Origin pass.
 */
export function checkOrigin(config: CurrentConfig): Middleware {
  const check = originCheck(config);
  return async (ctx, next) => {
    if (check(ctx) === 'answered') return;
    await next();
  };
}

/** checkOrigin's test alone: throws the refusal, or says 'answered' when it answered a preflight. */
export function originCheck(config: CurrentConfig): (ctx: Context) => 'answered' | undefined {
  return (ctx) => {
    const sent = ctx.get('origin');
    if (!sent) return undefined;
    ctx.vary('Origin');
    const origin = parseOrigin(sent);
    const own = origin !== undefined && origin === parseOrigin(`${ctx.protocol}://${ctx.get('host')}`);
    const listed = origin !== undefined && config().auth.allowedOrigins.includes(origin);
    const preflight = ctx.method === 'OPTIONS' && ctx.get('access-control-request-method') !== '';
    if (!own && !listed && (preflight || !SAFE_METHODS.has(ctx.method))) throw foreign(sent, ctx);
    if (preflight) {
      answerPreflight(ctx, origin!);
      return 'answered';
    }
    if (listed) ctx.set({ 'access-control-allow-origin': origin!, 'access-control-expose-headers': EXPOSED_HEADERS });
    return undefined;
  };
}

/**
 * What a page can still send without an Origin header: a "no-cors" GET (an <img> or <script> tag
 * pointing at /upstream/<model>/ would start that model) or a navigation. Browsers label those with
 * Fetch Metadata; one from another site (`cross-site`, or `same-site`: another port on localhost)
 * that carries no allowed Origin is refused, except top-level navigations that read the dashboard
 * (GET /hub…, which needs its own key; never in a frame) and /health. Requests without Fetch Metadata (curl, SDKs, old browsers) pass.
 */
export function checkFetchSite(config: CurrentConfig): Middleware {
  const check = fetchSiteCheck(config);
  return async (ctx, next) => {
    check(ctx);
    await next();
  };
}

/** checkFetchSite's test alone (throws the refusal). */
export function fetchSiteCheck(config: CurrentConfig): (ctx: Context) => void {
  return (ctx) => {
    const site = ctx.get('sec-fetch-site');
    if (site === 'cross-site' || site === 'same-site') {
      const origin = parseOrigin(ctx.get('origin'));
      const listed = origin !== undefined && config().auth.allowedOrigins.includes(origin);
      const path = ctx.path.toLowerCase();
      const hubPath = path === '/hub' || path.startsWith('/hub/');
      // Never inside another site's page: a framed dashboard (invisible, say) could be clicked through.
      const dest = ctx.get('sec-fetch-dest');
      if (hubPath && ['iframe', 'frame', 'embed', 'object'].includes(dest)) {
        throw new HubError('forbidden', `${ctx.path} may not be shown inside a page of another site (Sec-Fetch-Dest: ${dest}); open the dashboard in a tab of its own`);
      }
      // Only reading: a form another site posts to the dashboard is a navigation too.
      const dashboard = ctx.get('sec-fetch-mode') === 'navigate' && SAFE_METHODS.has(ctx.method) && hubPath;
      if (!listed && !dashboard && path !== '/health') {
        throw new HubError(
          'forbidden',
          `${ctx.method} ${ctx.path} was sent by a page on another site (Sec-Fetch-Site: ${site}), which may not use this hub; ` +
            `if you trust that page, add its origin to auth.allowed_origins in hub.yaml (curl and SDKs are not affected)`,
        );
      }
    }
  };
}

function answerPreflight(ctx: Context, origin: string): void {
  const requested = ctx.get('access-control-request-headers').split(',').map((h) => h.trim().toLowerCase()).filter((h) => HEADER_NAME.test(h));
  ctx.status = 204;
  ctx.set({
    'access-control-allow-origin': origin,
    'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
    'access-control-allow-headers': [...new Set([...ALLOWED_HEADERS, ...requested])].join(', '),
    'access-control-max-age': '7200',
  });
  // Chrome asks before a public page may reach a loopback or private address (Private Network Access).
  if (ctx.get('access-control-request-private-network') === 'true') ctx.set('access-control-allow-private-network', 'true');
  ctx.vary('Access-Control-Request-Method');
  ctx.vary('Access-Control-Request-Headers');
}

function foreign(origin: string, ctx: Context): HubError {
  const shown = JSON.stringify(origin.slice(0, 100));
  return new HubError(
    'forbidden',
    `${ctx.method} ${ctx.path} comes from the web page at ${shown}, which may not change anything on this hub; ` +
      `if you trust that page, add ${shown} to auth.allowed_origins in hub.yaml (requests without an Origin header, such as curl and SDKs, are not affected)`,
  );
}

/**
 * The JSON routes refuse bodies labelled text/plain, the one type besides forms that any web page
 * may send anywhere without a preflight: a second line of defence behind the Origin check. curl's
 * default (`-d`: application/x-www-form-urlencoded) and no content type at all are still read as
 * JSON, because people forget `-H 'content-type: application/json'` all the time.
 */
export function textPlainCheck(ctx: Context): void {
  const path = ctx.path.toLowerCase();
  const jsonRoute = path.startsWith('/v1/') || path === '/rerank';
  if (ctx.method === 'POST' && jsonRoute && /^\s*text\/plain\s*(;|$)/i.test(ctx.get('content-type'))) {
    throw new HubError(
      'unsupported_media_type',
      `POST ${ctx.path} was sent as text/plain; send the JSON body with "Content-Type: application/json" (fetch() labels a string body text/plain unless told otherwise)`,
    );
  }
}

/** The hub owns CORS: a backend's own Access-Control-* headers (llama-server allows every origin) are not passed on. */
export const isCorsHeader = (name: string): boolean => name.startsWith('access-control-');

/**
 * For proxied answers (proxy.ts calls this before the backend's headers are copied onto `res`): a
 * backend's Vary is merged into the hub's (Origin, for CORS) instead of replacing it.
 */
export function mergeVary(upstream: IncomingHttpHeaders, res: ServerResponse): void {
  const ours = res.getHeader('vary');
  if (ours === undefined || upstream.vary === undefined) return;
  const fields = new Map<string, string>();
  for (const field of `${String(ours)},${upstream.vary}`.split(',').map((f) => f.trim()).filter(Boolean)) fields.set(field.toLowerCase(), field);
  upstream.vary = [...fields.values()].join(', ');
}
