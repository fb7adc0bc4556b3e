// The `auth` section of hub.yaml, normalized: keys without the empty ones, browser origins as the
// exact strings browsers send in `Origin`, host names bare and lower case. Also which names and
// addresses are loopback, which both the Host check (http/browser.ts) and `hub serve`'s warning use.
// Trusted proxies are addresses or ranges, used by http/forwarded.ts.
import { isIPv4, isIPv6 } from 'node:net';
import type { HubFile } from './schema.js';
import type { HubConfig, NamedKey } from './types.js';

type Problem = (segments: string[], message: string) => void;

export function authConfig(auth: HubFile['auth'] = {}, problem: Problem): HubConfig['auth'] {
  const apiKeys = nonEmpty(auth.api_keys, 'auth.api_keys');
  const admin = nonEmpty(auth.admin_keys, 'auth.admin_keys');
  const allowedOrigins: string[] = [];
  (auth.allowed_origins ?? []).forEach((raw, i) => {
    const origin = parseOrigin(raw);
    if (origin) allowedOrigins.push(origin);
    else problem(['auth', 'allowed_origins', String(i)], `expected an origin like "https://app.example.com" or "http://localhost:3000" (scheme://host[:port], no path), got ${JSON.stringify(raw)}`);
  });
  const allowedHosts: string[] = [];
  (auth.allowed_hosts ?? []).forEach((raw, i) => {
    const host = parseHostName(raw);
    if (host) allowedHosts.push(host);
    else problem(['auth', 'allowed_hosts', String(i)], `expected a host name or address without scheme or port, like "hub.example.com" or "192.168.1.5", got ${JSON.stringify(raw)}`);
  });
  const trustedProxies: string[] = [];
  (auth.trusted_proxies ?? []).forEach((raw, i) => {
    const proxy = parseAddressRange(raw);
    if (proxy) trustedProxies.push(proxy);
    else problem(['auth', 'trusted_proxies', String(i)], `expected an IP address or a range like "10.0.0.0/8" (the address your reverse proxy connects from), got ${JSON.stringify(raw)}`);
  });
  return {
    apiKeys: apiKeys.map((k) => k.key),
    // Empty means "same as api_keys", not "open": an open shutdown button beside a locked model API
    // is never what anyone wants (and `admin_keys: ["${env.ADMIN_KEY}"]` with the variable set to ""
    // must not open it either).
    adminKeys: (admin.length ? admin : apiKeys).map((k) => k.key),
    apiKeyNames: apiKeys.map((k) => k.name),
    adminKeyNames: (admin.length ? admin : apiKeys).map((k) => k.name),
    scopedKeys: [], // filled once the models are read (config/policy.ts)
    allowedOrigins,
    allowedHosts,
    trustedProxies,
  };
}

/** `10.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8` → the same, lower case; undefined for anything else. */
export function parseAddressRange(value: string): string | undefined {
  const [address, prefix, extra] = value.trim().toLowerCase().split('/');
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
  if (!family || extra !== undefined) return undefined;
  if (prefix === undefined) return address;
  const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  return bits <= (family === 4 ? 32 : 128) ? `${address}/${bits}` : undefined;
}

/**
 * The keys of a list with where each is listed (`auth.api_keys[1]`), the name the request log shows.
 * An `api_keys: ["${env.K}"]` with K set to "" means "no key", not "the empty key".
 */
export const nonEmpty = (keys: string[] | undefined, at: string): NamedKey[] =>
  (keys ?? []).flatMap((key, i) => (key.length > 0 ? [{ key, name: `${at}[${i}]` }] : []));

/**
 * `scheme://host[:port]` → the form browsers send in `Origin` (lower case, default port dropped);
 * undefined for anything else, including "null", paths, and a trailing slash.
 */
export function parseOrigin(value: string): string | undefined {
  if (!/^https?:\/\/[^/?#@\s\\]+$/i.test(value)) return undefined;
  try {
    const url = new URL(value);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

const DNS_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i;

/** A bare host name or address (IPv6 with or without brackets), lower case, without a final dot. */
export function parseHostName(value: string): string | undefined {
  const v = value.trim().toLowerCase();
  const unbracketed = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
  if (isIPv6(unbracketed)) return unbracketed;
  return DNS_NAME.test(v) ? v.replace(/\.$/, '') : undefined;
}

/** The host name of a `Host` header (port and IPv6 brackets removed, lower case); undefined when malformed. */
export function hostOfHeader(header: string): string | undefined {
  const v = header.trim();
  const bracketed = /^\[([^\]]+)\](?::\d*)?$/.exec(v);
  if (bracketed) return isIPv6(bracketed[1]) ? bracketed[1].toLowerCase() : undefined;
  return parseHostName(v.replace(/:\d*$/, ''));
}

/** localhost (and *.localhost, which browsers resolve to loopback themselves), 127.0.0.0/8 and ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = parseHostName(host);
  if (h === undefined) return false;
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped ? mapped[1].startsWith('127.') : /^(0{0,4}:){2,7}0{0,3}1$/.test(h) || h === '::1';
  }
  return false;
}
