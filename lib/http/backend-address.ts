// Where a model's requests go: its backend's URL as http-proxy-3 takes it (parsed once, plain
// fields), and which paths are sent as they are rather than normalized through a URL per request.
import type { ProxyTarget } from 'http-proxy-3';

/** How a model's requests are sent: to its backend, the answer relayed by the hub, under the backend's base path if it has one. */
export function modelOptions(url: string) {
  const target = parsedTarget(url);
  return { target, changeOrigin: true, xfwd: false, selfHandleResponse: true, prependPath: !isRoot(target) };
}

/**
 * A model's backend URL, parsed once, as plain fields: http-proxy-3 parses a target given as a string on
 * every request, and reads a dozen fields of it (a URL's are getters that slice its href each time).
 */
type Target = Exclude<ProxyTarget, string | URL> & { pathname: string; search: string; href: string };
const parsedTargets = new Map<string, Target>();
function parsedTarget(target: string): Target {
  let parsed = parsedTargets.get(target);
  if (!parsed) {
    if (parsedTargets.size >= 1000) parsedTargets.clear(); // models come and go with reloads; a bound, not a leak
    const url = new URL(target);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    parsed = Object.freeze({ protocol: url.protocol, host: url.host, hostname: url.hostname, port, pathname: url.pathname, search: url.search, href: url.href });
    parsedTargets.set(target, parsed);
  }
  return parsed;
}

/**
 * http-proxy-3 puts each path through a WHATWG URL (two per request: the target's and the request's,
 * ~4 µs of a request's profile) to get its normalized form. A target at / adds nothing to the path
 * (prependPath: false), and a path that is already in that form is sent as it is (toProxy: true): no
 * dot segments, no %-escapes (an escaped dot is one), nothing a URL would escape, no empty query.
 */
const NORMAL_PATH = /^\/[A-Za-z0-9\-_~!$&'()*+,;=:@/]*(\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]+)?$/;
export const isNormalPath = (url: string | undefined): boolean => url !== undefined && NORMAL_PATH.test(url);
const isRoot = (target: Target): boolean => target.pathname === '/' && target.search === '';

/** The backend's URL for a path: a remote model's own base path (http://box/api) is kept in front. */
export function targetWithPath(base: string, path: string): string {
  const url = new URL(base);
  const [pathname, query] = path.split('?');
  url.pathname = url.pathname.replace(/\/+$/, '') + pathname;
  url.search = query ? `?${query}` : '';
  return url.href;
}
