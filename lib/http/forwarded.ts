// Behind a reverse proxy that terminates TLS, the hub sees plain HTTP from the proxy's address. The
// proxy says what the client used in X-Forwarded-Proto and X-Forwarded-For; anyone can send those
// headers, so they are believed only from the addresses in auth.trusted_proxies. From such a peer
// the request's protocol and client address become the forwarded ones, for everything that asks Koa
// (ctx.protocol, ctx.secure, ctx.ip): the session cookie is Secure, the Origin check compares with
// https://, the dashboard shows an https:// base URL, and the login throttle counts each client.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Context, Middleware } from 'koa';
import type { HubConfig } from '../config/types.js';

type AuthConfig = HubConfig['auth'];

const lists = new WeakMap<AuthConfig, BlockList | null>();

/** The trusted proxies as a BlockList (null when there are none), made once per config. */
function trustedList(auth: AuthConfig): BlockList | null {
  let list = lists.get(auth);
  if (list === undefined) {
    list = auth.trustedProxies.length ? new BlockList() : null;
    for (const entry of auth.trustedProxies) {
      const [address, prefix] = entry.split('/');
      const type = isIPv4(address) ? 'ipv4' : 'ipv6';
      if (prefix === undefined) list!.addAddress(address, type);
      else list!.addSubnet(address, Number(prefix), type);
    }
    lists.set(auth, list);
  }
  return list;
}

/** `::ffff:10.0.0.1` (an IPv4 client of a socket bound to `::`) is 10.0.0.1. */
const plain = (address: string) => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

export function isTrustedProxy(auth: AuthConfig, address: string | undefined): boolean {
  const list = trustedList(auth);
  if (!list || !address) return false;
  const a = plain(address.trim());
  if (isIPv4(a)) return list.check(a, 'ipv4');
  return isIPv6(a) && list.check(a, 'ipv6');
}

/**
 * The client of a request that came through trusted proxies: X-Forwarded-For read from the right
 * (each proxy appends the address it was connected from), skipping trusted proxies; the first other
 * address is the client. Undefined when the header names no one.
 */
function forwardedClient(auth: AuthConfig, header: string): string | undefined {
  const hops = header.split(',').map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!isTrustedProxy(auth, hops[i]) || i === 0) return plain(hops[i]);
  return undefined;
}

/** Must run before anything reads ctx.protocol, ctx.ip or ctx.cookies (they are cached). */
export function trustProxies(config: () => HubConfig): Middleware {
  return async (ctx, next) => {
    trustProxy(ctx, config);
    await next();
  };
}

/** trustProxies for one request (the gateway's own path, outside Koa's chain). */
export function trustProxy(ctx: Context, config: () => HubConfig): void {
  const { auth } = config();
  if (!isTrustedProxy(auth, ctx.req.socket.remoteAddress)) return;
  // The first value is the client's side (a proxy behind another one appends its own).
  const proto = ctx.get('x-forwarded-proto').split(',')[0].trim().toLowerCase();
  if (proto === 'https' || proto === 'http') Object.defineProperty(ctx.request, 'protocol', { value: proto, configurable: true });
  const client = forwardedClient(auth, ctx.get('x-forwarded-for'));
  if (client) ctx.request.ip = client;
}
