// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: a proxy must not
// pass them on. The client's `Connection: close` or `Keep-Alive` are about its connection to the
// hub; the backend's `Keep-Alive: timeout=5` is about the hub's connection to it, and would make
// clients drop their connection to the hub early. Transfer-Encoding is hop-by-hop too, but Node
// frames messages itself and http-proxy-3 already drops it from responses.
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'trailer']);

/**
 * The headers to pass on, copied in one pass (the message's own object is left as it is, and no
 * `delete` turns a hot object into a slow one) into `out`: every hop-by-hop header and each one its
 * Connection header names is left out, and so is every name for which `leaveOut` says so.
 */
export function forwardable(headers: IncomingHttpHeaders, leaveOut?: (name: string) => boolean, out: IncomingHttpHeaders = {}): IncomingHttpHeaders {
  const listed = namedByConnection(headers);
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed?.has(name) || leaveOut?.(name)) continue;
    out[name] = headers[name];
  }
  return out;
}

/** Names the Connection headers list beyond the usual `keep-alive`/`close` (framing ones never count). */
function namedByConnection(headers: IncomingHttpHeaders): Set<string> | undefined {
  const connection = headers.connection;
  const proxy = headers['proxy-connection'];
  if (proxy === undefined && (connection === undefined || connection === 'keep-alive' || connection === 'close')) return undefined; // nearly every message
  let names: Set<string> | undefined;
  for (const header of [connection, proxy]) {
    if (header === undefined) continue;
    const value = String(header);
    if (/^\s*(keep-alive|close)\s*$/i.test(value)) continue;
    for (const part of value.split(',')) {
      const name = part.trim().toLowerCase();
      // Never drop framing by way of a Connection header that names it.
      if (name && name !== 'content-length' && name !== 'transfer-encoding') (names ??= new Set()).add(name);
    }
  }
  return names;
}
